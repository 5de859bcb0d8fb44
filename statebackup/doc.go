// Package statebackup takes verified online snapshots of a user's t3 state
// database (SQLite, WAL mode, written by a running server), lists and prunes
// them, and restores one crash-safely.
//
// # Taking a snapshot
//
// [Store] is the [Backuper] over SQLite. Backup opens the live database
// read-only (no write lock, so the server's writer is never blocked), copies
// it in one read transaction into a staging file under the destination (the
// online backup API in steps of 16 MiB, the context checked between steps,
// or VACUUM INTO: [Options.Method]),
// writes it back to disk in chunks as the copy grows and fsyncs it, runs
// PRAGMA quick_check (integrity_check with [Options.IntegrityCheck]) and a
// sha256, records its metadata and renames both into place. A copy that fails its check is deleted and
// reported as a [*CheckError]; it is never listed.
//
//	st := statebackup.NewStore("/var/backups/t3-state", statebackup.Options{})
//	snap, err := st.Backup(ctx, statebackup.Target{
//		User: "emil", UserdataDir: "/home/emil/.t3/userdata", Version: "0.0.28",
//	}, statebackup.PrebumpLabel("0.0.29"))
//
// # Layout
//
// The seed's names are kept so existing backups stay usable:
//
//	<dest>/<user>/state-<YYYYmmdd-HHMMSS>.sqlite                  daily
//	<dest>/<user>/state-prebump-<version>-<YYYYmmdd-HHMMSS>.sqlite before a bump
//	<dest>/<user>/state-<label>-<YYYYmmdd-HHMMSS>.sqlite          other labels
//	<dest>/<user>/<snapshot>.json                                  metadata
//
// Directories are 0700 and files 0600, owned by the live database's owner.
// A snapshot without metadata (an old one) lists from its name, unverified,
// and still restores. [LiveDB] picks the database a build actually uses:
// statev2.sqlite where it exists and is at least as new as state.sqlite.
//
// # Running as root
//
// The user owns every directory under their home and can swap one for a
// symlink into another user's tree at any time. A target whose path has a
// symlink anywhere is refused with [ErrUnsafePath] (SQLite's rule with
// SQLITE_OPEN_NOFOLLOW), and the user's directory is opened once, without
// following a link, for every rename, link, removal and chown that follows.
//
// SQLite still opens a database, its -wal and -shm by path, after its own
// check: a swap in between would have root read or write another user's
// database. Every SQLite open in the user's directory runs in [AsOwner]
// with the live database's owner (read in the directory opened once):
// the backup's read of the live database, and the restore's check of its
// copy and checkpoint of the old database. A swap then reaches nothing
// that user could not reach anyway. [LiveDBOwner] gives other packages
// (the idle gate) the live database and that owner.
//
// Opening a WAL database creates -wal and -shm files; created by root they
// would lock the user's server out. Opened as the owner, they are the
// owner's; the backup still follows its read, and every check, with
// [FixSidecars], which gives a sidecar anyone else owns back to the
// database's owner.
//
// # Restoring
//
// Restore (instance stopped) copies the snapshot beside the live database,
// verifies sha256 and integrity, checkpoints the old database so its main
// file is whole (both as the database's owner), hard-links it aside, moves
// its -wal/-shm aside, and renames the copy onto the live name, then
// deletes what it set aside (kept with [Options.KeepReplaced]). A crash at any [RestoreStep] leaves the old or
// the new database whole under the live name.
//
// # What it does not do
//
// It does not stop or start instances (the caller does), ship snapshots off
// the host, or decide when to back up: rollout and the updater do that.
package statebackup

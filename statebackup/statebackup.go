package statebackup

import (
	"context"
	"time"
)

// Target is one user's state: where their live database is.
type Target struct {
	// User is the OS user that owns the state (validated by the caller).
	User string
	// UserdataDir is <base-dir>/userdata, holding state.sqlite (and
	// statev2.sqlite on newer builds). Backup and Restore refuse a Target
	// without one (ErrNoUserdataDir); List and Prune need only User.
	UserdataDir string
	// Version is the t3 version the instance runs, recorded when known.
	Version string
}

// Snapshot is one verified copy of a user's live database.
type Snapshot struct {
	Path        string
	User        string
	Label       string    // "daily", "prebump-<version>", "manual"
	Time        time.Time // when taken; never before the user's previous snapshot
	Size        int64
	SHA256      string
	SchemaLevel int    // max migration_id of effect_sql_migrations; 0 when absent
	Version     string // t3 version, when known
	Source      string // base name of the live database it was taken from
	Verified    bool   // checked when taken; false for an old snapshot without metadata
}

// Backuper takes, restores, lists and prunes snapshots of a target.
type Backuper interface {
	Backup(ctx context.Context, t Target, label string) (Snapshot, error)
	Restore(ctx context.Context, t Target, s Snapshot) error
	List(ctx context.Context, t Target) ([]Snapshot, error)
	Prune(ctx context.Context, t Target, keep int) error
}

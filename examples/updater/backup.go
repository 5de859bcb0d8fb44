package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/t3fleet/t3fleet/statebackup"
)

// cmdBackup is `updater backup [--user U] [--label L] [--keep N]`: a
// snapshot of each user's live database, then retention. Every user is
// tried; the exit code is 1 if any failed. A user without a database yet is
// skipped, not failed.
func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return opsCLI{}.backup(ctx, args, stdout, stderr)
}

func (o opsCLI) backup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := o.config()
	if err != nil {
		return usageError(stderr, "backup", err)
	}
	fs := newFlags("backup", stderr)
	user := fs.String("user", "", "only this user (OS user, or SSO user of the map)")
	label := fs.String("label", statebackup.LabelDaily, "daily, manual or prebump-<version>")
	version := fs.String("t3-version", "", "t3 version the instances run, recorded in the metadata")
	keep := fs.Int("keep", c.BackupKeep, "snapshots kept per user and kind after the backup (T3_BACKUP_KEEP); 0 keeps all")
	if err := parseFlags(fs, args, stderr); err != nil {
		return usageExit(err)
	}
	if err := statebackup.ValidLabel(*label); err != nil {
		return usageError(stderr, "backup", err)
	}
	users, err := o.users(c, *user, stderr)
	if err != nil {
		return cmdError(stderr, "backup", err)
	}
	st := o.store(c, textLogger(stderr))
	failed := 0
	for _, u := range users {
		t := c.target(u)
		t.Version = *version
		start := time.Now()
		snap, err := st.Backup(ctx, t, *label)
		switch {
		case errors.Is(err, statebackup.ErrNoDatabase):
			fmt.Fprintf(stdout, "%s: skipped, no state database in %s\n", u, t.UserdataDir)
			continue
		case err != nil:
			failed++
			fmt.Fprintf(stdout, "%s: FAILED: %s\n", u, errText(err))
			continue
		}
		fmt.Fprintf(stdout, "%s: %s (%s, schema %d, %s)\n", u, snap.Path, humanBytes(snap.Size),
			snap.SchemaLevel, time.Since(start).Round(time.Millisecond))
		if *keep > 0 {
			if err := st.Prune(ctx, t, *keep); err != nil {
				failed++
				fmt.Fprintf(stdout, "%s: prune FAILED: %s\n", u, errText(err))
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "updater backup: %d of %d user(s) failed\n", failed, len(users))
		return 1
	}
	return 0
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

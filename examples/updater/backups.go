package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/t3fleet/t3fleet"
)

// cmdBackups is `updater backups [--user U]`: every snapshot, newest first,
// with label, time, size, schema level and whether it was verified. Path,
// label and version are the user's to choose (a file they name in their
// backup directory, metadata they plant beside it): t3fleet.Printable.
func cmdBackups(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return opsCLI{}.backups(ctx, args, stdout, stderr)
}

func (o opsCLI) backups(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := o.config()
	if err != nil {
		return usageError(stderr, "backups", err)
	}
	fs := newFlags("backups", stderr)
	user := fs.String("user", "", "only this user")
	if err := parseFlags(fs, args, stderr); err != nil {
		return usageExit(err)
	}
	users, err := o.users(c, *user, stderr)
	if err != nil {
		return cmdError(stderr, "backups", err)
	}
	st := o.store(c, nil)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tLABEL\tTIME\tSIZE\tSCHEMA\tVERIFIED\tVERSION\tPATH")
	code := 0
	for _, u := range users {
		snaps, err := st.List(ctx, c.target(u))
		if err != nil {
			fmt.Fprintf(stderr, "updater backups: %s\n", errText(err))
			code = 1
			continue
		}
		for _, s := range snaps {
			schema := fmt.Sprint(s.SchemaLevel)
			verified := "yes"
			if !s.Verified {
				schema, verified = "?", "no (no metadata)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u, t3fleet.Printable(s.Label), s.Time.UTC().Format(time.RFC3339),
				humanBytes(s.Size), schema, verified, dash(t3fleet.Printable(s.Version)), t3fleet.Printable(s.Path))
		}
	}
	tw.Flush()
	return code
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

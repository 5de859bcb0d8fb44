package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// cmdRestore is `updater restore --user U (--snapshot PATH | --latest-prebump)
// [--stop]`. It refuses while the user's unit is active unless --stop is
// given; then it stops the unit, restores, and starts it again (also after
// a failed restore, which leaves the old database in place).
func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return opsCLI{}.restore(ctx, args, stdout, stderr)
}

func (o opsCLI) restore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := o.config()
	if err != nil {
		return usageError(stderr, "restore", err)
	}
	fs := newFlags("restore", stderr)
	user := fs.String("user", "", "the user whose database to restore (required)")
	path := fs.String("snapshot", "", "the snapshot file to restore")
	latest := fs.Bool("latest-prebump", false, "restore the user's newest prebump snapshot")
	stop := fs.Bool("stop", false, "stop the unit if it is active, restore, start it again")
	lockWait := fs.Duration("lock-wait", rollout.DefaultLockWait, "how long to wait for a run, drain or watchdog tick holding the lock")
	var uf unitChoice
	uf.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return usageExit(err)
	}
	if *user == "" || (*path == "") == !*latest {
		fmt.Fprintln(stderr, "updater restore: want --user and exactly one of --snapshot or --latest-prebump")
		return 2
	}
	users, err := o.users(c, *user, stderr)
	if err != nil {
		return cmdError(stderr, "restore", err)
	}
	u := users[0]
	t := c.target(u)
	st := o.store(c, textLogger(stderr))

	var snap statebackup.Snapshot
	if *latest {
		snap, err = st.LatestPrebump(ctx, t)
	} else {
		snap, err = statebackup.ReadSnapshot(*path)
	}
	if err != nil {
		return cmdError(stderr, "restore", err)
	}

	// Under the updater's lock: a drain or a watchdog tick must not restart
	// the unit while its database is put back, nor a run move it.
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return cmdError(stderr, "restore", err)
	}
	lock, err := rollout.AcquireLock(ctx, filepath.Join(c.StateDir, rollout.LockFile), "restore", *lockWait)
	if err != nil {
		return cmdError(stderr, "restore", err)
	}
	defer lock.Release()

	units, closeUnits, err := o.units(ctx, uf)
	if err != nil {
		return cmdError(stderr, "restore", err)
	}
	defer closeUnits()
	stopped := false
	if units == nil {
		if *stop {
			return cmdError(stderr, "restore", errors.New("--stop needs a unit manager (-units systemd)"))
		}
		fmt.Fprintf(stderr, "updater restore: -units none: assuming %s's instance is stopped\n", u)
	} else {
		unit := unitFor(uf, u)
		status, err := units.Status(ctx, unit)
		if err != nil {
			return cmdError(stderr, "restore", fmt.Errorf("status of %s: %w", unit.Name, err))
		}
		// At rest only when nothing of it runs: an activating unit (a crash
		// loop's auto-restart too), a deactivating or reloading one has a
		// process that may open the database mid-restore.
		atRest := !status.Active && status.MainPID == 0 && (status.State == "inactive" || status.State == "failed")
		if !atRest {
			if !*stop {
				return cmdError(stderr, "restore", fmt.Errorf("%s is %s: stop it first, or pass --stop", unit.Name, status.State))
			}
			if err := units.Stop(ctx, unit); err != nil {
				return cmdError(stderr, "restore", fmt.Errorf("stop %s: %w", unit.Name, err))
			}
			stopped = true
			fmt.Fprintf(stdout, "stopped %s\n", unit.Name)
		}
		defer func() {
			if !stopped {
				return
			}
			// Start again whatever happened: a failed restore left the old
			// database whole.
			if err := units.Start(context.WithoutCancel(ctx), unit); err != nil {
				fmt.Fprintf(stderr, "updater restore: start %s: %s\n", unit.Name, errText(err))
				return
			}
			fmt.Fprintf(stdout, "started %s\n", unit.Name)
		}()
	}
	if err := st.Restore(ctx, t, snap); err != nil {
		return cmdError(stderr, "restore", err)
	}
	// A snapshot's name and its label are its user's to choose.
	fmt.Fprintf(stdout, "%s: restored %s (%s, schema %s)\n", u, t3fleet.Printable(snap.Path), t3fleet.Printable(snap.Label), schemaText(snap))
	if units != nil && !stopped {
		// It was down before (a rollback that failed leaves it so), and a
		// restore alone does not bring the user back: say how.
		unit := unitFor(uf, u)
		fmt.Fprintf(stdout, "%s was not running and stays stopped: start it with `%s`\n", unit.Name, startCommand(uf, unit))
	}
	return 0
}

// startCommand is the command an operator types to start unit.
func startCommand(uf unitChoice, unit rollout.Unit) string {
	if uf.UserBus {
		return "systemctl --user start " + unit.Name
	}
	return "systemctl start " + unit.Name
}

func schemaText(s statebackup.Snapshot) string {
	if !s.Verified {
		return "unknown"
	}
	return fmt.Sprint(s.SchemaLevel)
}

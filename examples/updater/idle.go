package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/proctree"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
)

// cmdIdle is `updater idle [--user U]`: each instance's idle verdict, from
// its state database and (with a unit manager) its process tree. Exit 0 when
// every instance is idle, 1 otherwise.
func cmdIdle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return opsCLI{}.idle(ctx, args, stdout, stderr)
}

func (o opsCLI) idle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := o.config()
	if err != nil {
		return usageError(stderr, "idle", err)
	}
	fs := newFlags("idle", stderr)
	user := fs.String("user", "", "only this user")
	quiet := fs.Duration("quiet", c.MigrateQuiet, "quiet threshold (T3_MIGRATE_QUIET_SECONDS)")
	ceiling := fs.Duration("busy-ceiling", idlegate.DefaultBusyCeiling, "a turn in flight longer than this is flagged suspicious")
	var uf unitChoice
	uf.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return usageExit(err)
	}
	users, err := o.users(c, *user, stderr)
	if err != nil {
		return cmdError(stderr, "idle", err)
	}
	units, closeUnits, err := o.units(ctx, uf)
	if err != nil {
		return cmdError(stderr, "idle", err)
	}
	defer closeUnits()
	gate := idleGate(units, uf, idlegate.DBOptions{QuietThreshold: *quiet, BusyCeiling: *ceiling})
	code := 0
	for _, u := range users {
		in := t3fleet.Instance{User: u, OSUser: u, StateDir: c.stateDir(u)}
		v, err := gate.Idle(ctx, in)
		if err != nil || !v.Idle {
			code = 1
		}
		fmt.Fprintf(stdout, "%s: idle=%t active=%d quiet=%s suspicious=%t reason=%q\n",
			u, v.Idle && err == nil, v.ActiveTurns, v.QuietFor.Round(time.Second), v.Suspicious, v.Reason)
	}
	return code
}

// idleGate is the DB oracle, and with a unit manager also the process-tree
// oracle fed by the unit's main PID and, where the manager has a cgroup per
// unit (systemd), by the unit's cgroup: stopping the unit kills an agent
// there even once it has left the main process's tree.
func idleGate(units rollout.UnitManager, uf unitChoice, opts idlegate.DBOptions) idlegate.IdleOracle {
	db := idlegate.NewDBOracle(opts)
	if units == nil {
		return idlegate.All(db)
	}
	tree := &proctree.Oracle{MainPID: func(ctx context.Context, in t3fleet.Instance) (int, error) {
		st, err := units.Status(ctx, unitFor(uf, in.OSUser))
		if err != nil {
			return 0, err
		}
		if !st.Active {
			return 0, fmt.Errorf("unit %s is %s", unitFor(uf, in.OSUser).Name, st.State)
		}
		return st.MainPID, nil
	}}
	// The supervisor has no cgroup per unit: its children stay tree only.
	if cgs := controlGroups(units); cgs != nil {
		tree.Cgroup = func(ctx context.Context, in t3fleet.Instance) (string, error) {
			return cgs.ControlGroup(ctx, unitFor(uf, in.OSUser))
		}
	}
	return idlegate.All(db, tree)
}

// cgroupUnits is a unit manager that runs each unit in a cgroup of its own,
// as systemd.Manager does.
type cgroupUnits interface {
	ControlGroup(ctx context.Context, u rollout.Unit) (string, error)
}

// controlGroups returns units as a cgroupUnits, looking through the
// wrappers that hide its methods (t3.ReportingUnits, which `updater run`
// puts around systemd), or nil.
func controlGroups(units rollout.UnitManager) cgroupUnits {
	for units != nil {
		if c, ok := units.(cgroupUnits); ok {
			return c
		}
		w, ok := units.(interface{ Unwrap() rollout.UnitManager })
		if !ok {
			return nil
		}
		units = w.Unwrap()
	}
	return nil
}

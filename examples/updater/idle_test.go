package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/supervisor"
	"github.com/t3fleet/t3fleet/adapters/systemd"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// withCgroups is a unit manager with a cgroup per unit, whose cgroup
// cannot be read: the gate's reason then says whether it was asked.
type withCgroups struct {
	*rollouttest.UnitManager
	asked *[]string
}

func (w withCgroups) ControlGroup(_ context.Context, u rollout.Unit) (string, error) {
	*w.asked = append(*w.asked, u.Name)
	return "", errors.New("cgroup unreadable")
}

// `updater idle` gets systemd bare, `updater run` wrapped in t3.ReportingUnits;
// both must ask for the unit's cgroup. Without one, the tree alone decides.
func TestIdleGateAsksForTheUnitsCgroup(t *testing.T) {
	running := &rollouttest.UnitManager{StatusFunc: func(context.Context, rollout.Unit) (rollout.UnitStatus, error) {
		return rollout.UnitStatus{Active: true, State: "active", MainPID: os.Getpid()}, nil
	}}
	var asked []string
	cgroups := withCgroups{UnitManager: running, asked: &asked}
	cases := []struct {
		name  string
		units rollout.UnitManager
		asked bool
	}{
		{"systemd-like manager", cgroups, true},
		{"systemd-like manager inside reportingUnits", t3a.ReportingUnits{UnitManager: cgroups}, true},
		{"manager without cgroups", running, false},
		{"manager without cgroups inside reportingUnits", t3a.ReportingUnits{UnitManager: running}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			asked = nil
			gate := idleGate(c.units, unitChoice{Template: "t3-serve@.service"}, idlegate.DBOptions{})
			v, _ := gate.Idle(context.Background(), t3fleet.Instance{OSUser: "alice", User: "alice", StateDir: t.TempDir()})
			assert.False(t, v.Idle, "no state database: not idle whatever the tree says")
			if c.asked {
				assert.Equal(t, []string{"t3-serve@alice.service"}, asked)
				assert.Contains(t, v.Reason, "unit cgroup: cgroup unreadable")
				return
			}
			assert.Empty(t, asked)
			assert.Regexp(t, fmt.Sprintf(`idle: no agent process under pid %d$`, os.Getpid()), v.Reason)
		})
	}
}

// Which real managers offer a cgroup per unit.
func TestControlGroupsOfTheManagers(t *testing.T) {
	require.NotNil(t, controlGroups(&systemd.Manager{}))
	require.NotNil(t, controlGroups(t3a.ReportingUnits{UnitManager: &systemd.Manager{}}))
	// Plain child processes share the updater's cgroup: tree only.
	require.Nil(t, controlGroups(&supervisor.Supervisor{}))
	require.Nil(t, controlGroups(nil))
}

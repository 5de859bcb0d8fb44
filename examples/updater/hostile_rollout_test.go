package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// hostileFleet wires the simulated fleet with s wherever a user can put
// it: the version alice's instance reports, the name of a snapshot in her
// backup directory, why bob's idle gate finds him busy, the last probe
// error the watchdog recorded for alice.
func hostileFleet(t *testing.T, f *cliFixture, s string) rolloutCLI {
	t.Helper()
	dir := filepath.Join(f.sim.Dir, "backups", "alice")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state-"+s+".sqlite"), []byte("1\n"), 0o644))
	f.env["T3_WD_STATE_DIR"] = filepath.Join(f.sim.Dir, "wd")
	require.NoError(t, os.MkdirAll(f.env["T3_WD_STATE_DIR"], 0o755))
	b, err := json.Marshal(rollout.UnitCounters{Failures: 1, LastError: s})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(f.env["T3_WD_STATE_DIR"], "alice.json"), b, 0o644))

	r := f.cli()
	r.Wire = func(_ context.Context, c engineConfig) (*rollout.Engine, func(), error) {
		e := f.sim.Engine(c.Options)
		um := e.Units.(*rollouttest.UnitManager)
		version := um.RunningVersionFunc
		um.RunningVersionFunc = func(ctx context.Context, u rollout.Unit) (string, error) {
			if u.User == "alice" {
				return s, nil
			}
			return version(ctx, u)
		}
		e.Idle = &rollouttest.IdleOracle{IdleFunc: func(_ context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
			if in.OSUser == "bob" {
				return idlegate.Verdict{Reason: s, ActiveTurns: 1}, nil
			}
			return idlegate.Verdict{Idle: true, Reason: "quiet"}, nil
		}}
		return e, func() {}, nil
	}
	return r
}

// plantState adds the state files whose content status prints: a stale
// deferral marker for bob naming s, and a freeze whose reason is s.
func plantState(t *testing.T, f *cliFixture, s string) {
	t.Helper()
	deferred := filepath.Join(f.env["T3_STATE_DIR"], rollout.DeferredDir)
	require.NoError(t, os.MkdirAll(deferred, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(deferred, "bob"), []byte(s+"\n"), 0o644))
	old := time.Now().Add(-30 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(deferred, "bob"), old, old))
	require.NoError(t, os.WriteFile(f.env["T3_FREEZE_FILE"], []byte("reason: "+s+"\nwho: ops\n"), 0o644))
}

// TestRolloutCommandsEscapeUserNames runs each command that prints a
// string a user controls, once with an ordinary value (the line count
// every hostile one must keep) and once per hostile one.
func TestRolloutCommandsEscapeUserNames(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, f *cliFixture, s string)
		cmd   string
		// quoted: the command prints s alone in a field, so its quoted
		// form must be there.
		quoted bool
	}{
		{"status", func(t *testing.T, f *cliFixture, s string) { plantState(t, f, s) }, "status", true},
		{"plan", nil, "plan", true},
		{"dry run", func(_ *testing.T, f *cliFixture, _ string) { f.env["T3_DRY_RUN"] = "1" }, "run", true},
		{"run", nil, "run", false},
		{"run, health check failed", func(_ *testing.T, f *cliFixture, s string) { f.sim.FailHealth(tv2, s) }, "run", false},
		{"migrate-idle", func(t *testing.T, f *cliFixture, _ string) {
			// An ordinary run defers bob; the drain then finds him busy.
			f.sim.SetBusy("bob", true)
			code, out, _ := call(f, "run")
			require.Equal(t, 0, code, out)
			require.Contains(t, out, "deferred=1")
			f.env["T3_MIGRATE_WINDOW"] = "always"
		}, "migrate-idle", false},
	}
	run := func(t *testing.T, cmd string, setup func(*testing.T, *cliFixture, string), s string) (int, string, string) {
		f := newCLIFixture(t)
		r := hostileFleet(t, f, s)
		if setup != nil {
			setup(t, f, s)
		}
		var out, errb bytes.Buffer
		code := rolloutCommand(t, cmd)(r, context.Background(), nil, &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantCode, plain, plainErr := run(t, c.cmd, c.setup, "plain-value")
			lines, errLines := lineCount(plain), lineCount(plainErr)
			for _, h := range hostileNames {
				t.Run(h.name, func(t *testing.T) {
					code, out, errs := run(t, c.cmd, c.setup, h.s)
					require.Equal(t, wantCode, code, "stdout:\n%s\nstderr:\n%s\nordinary stderr:\n%s", out, errs, plainErr)
					assertPlain(t, out, lines)
					if errs != "" {
						assertPlain(t, errs, errLines)
					}
					if c.quoted {
						assert.Contains(t, out, strconv.Quote(h.s))
					}
				})
			}
		})
	}
}

// A freeze file can hold what a user controls: a rollback's reason quotes
// their instance's answer. unfreeze prints the freeze it lifted.
func TestUnfreezeEscapesTheFreezeItLifts(t *testing.T) {
	for _, h := range hostileNames {
		t.Run(h.name, func(t *testing.T) {
			f := newCLIFixture(t)
			require.NoError(t, os.WriteFile(f.env["T3_FREEZE_FILE"], []byte("reason: rolled back: "+h.s+" answered\nwho: ops\n"), 0o644))
			code, out, errs := call(f, "unfreeze")
			require.Equal(t, 0, code, errs)
			assertPlain(t, out, 1)
			assert.Contains(t, out, "unfrozen (was: ")
		})
	}
}

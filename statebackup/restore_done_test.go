package statebackup_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Once the swap has put the snapshot under the live name, the restore is
// done: a context that ends then (the restore's Timeout running out after
// a long copy, an operator's Ctrl-C) must neither skip the cleanup (a
// statev2.sqlite left to shadow the restored state.sqlite, the set-aside
// copy left behind) nor report the restore as failed. A failure there made
// a rollback report "restore U" as failed and leave the unit stopped, its
// runbook line saying "it is stopped on a migrated database", when the
// database was back.
func TestRestoreIsDoneOnceSwapped(t *testing.T) {
	cases := []struct {
		name   string
		era    t3test.Era
		toEraE bool // the live state moved to statev2.sqlite after the snapshot
	}{
		{"state.sqlite", t3test.EraC, false},
		{"state.sqlite over a statev2.sqlite it predates", t3test.EraD, true},
		{"statev2.sqlite", t3test.EraE, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			st, _ := newStore(t, statebackup.Options{BeforeRestoreStep: func(s statebackup.RestoreStep) error {
				if s == statebackup.StepSwap {
					cancel()
				}
				return nil
			}})
			tg, snap := snapshotWithMarker(t, c.era, st, 1, 2)
			if c.toEraE {
				require.NoError(t, t3test.Migrate(bg, filepath.Dir(tg.UserdataDir), t3test.EraE))
			}

			require.NoError(t, st.Restore(ctx, tg, snap))
			live := mustLive(t, tg)
			require.Equal(t, snap.Source, filepath.Base(live))
			require.Equal(t, 1, marker(t, live))
			require.Empty(t, asideFiles(t, tg.UserdataDir), "the set-aside database is cleaned up")
		})
	}
}

// A set-aside database the cleanup cannot delete leaves the restore done
// (the snapshot is live) and says so in a warning naming the file, for
// the operator to remove it (a whole copy of the database in the user's
// directory). It used to be dropped without a word.
func TestRestoreWarnsWhenTheSetAsideCopyStays(t *testing.T) {
	realtest.NeedRoot(t) // chattr +i
	var logs bytes.Buffer
	var userdata, aside string
	st, _ := newStore(t, statebackup.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		BeforeRestoreStep: func(s statebackup.RestoreStep) error {
			if s != statebackup.StepCleanup {
				return nil
			}
			m, _ := filepath.Glob(filepath.Join(userdata, statebackup.StateDB+".replaced-*"))
			if len(m) != 1 {
				return fmt.Errorf("want one set-aside database, have %v", m)
			}
			aside = m[0]
			setImmutable(t, aside)
			return nil
		},
	})
	tg, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	userdata = tg.UserdataDir

	require.NoError(t, st.Restore(bg, tg, snap))
	require.Equal(t, 1, marker(t, mustLive(t, tg)))
	require.FileExists(t, aside)
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), filepath.Base(aside))
}

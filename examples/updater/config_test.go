package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every command that wires the engine reads the seed's environment the way
// the operations commands do: a flag's default must not hide it.
func TestEngineCommandsReadTheEnvironment(t *testing.T) {
	for _, cmd := range []string{"run", "plan", "status", "migrate-idle", "watchdog"} {
		t.Run(cmd, func(t *testing.T) {
			f := newCLIFixture(t)
			f.env["T3_HOME_ROOT"] = "/srv/homes"
			f.env["T3_BACKUP_TIMEOUT"] = "3600"
			f.env["T3_BACKUP_KEEP"] = "9"
			f.env["T3_WD_STATE_DIR"] = t.TempDir()
			f.env["T3_ENV_DIR"] = t.TempDir()
			c := f.cli()
			var out, errb devNull
			ctx := context.Background()
			switch cmd {
			case "run":
				c.run(ctx, nil, &out, &errb)
			case "plan":
				c.plan(ctx, nil, &out, &errb)
			case "status":
				c.status(ctx, nil, &out, &errb)
			case "migrate-idle":
				c.migrateIdle(ctx, []string{"--window", "always"}, &out, &errb)
			case "watchdog":
				c.watchdog(ctx, nil, &out, &errb)
			}
			require.Equal(t, "/srv/homes", f.last.HomeRoot)
			require.Equal(t, time.Hour, f.last.BackupTimeout)
			require.Equal(t, 9, f.last.Options.BackupKeep)
		})
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

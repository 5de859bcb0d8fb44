package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/rollout"
)

// shippedUnit is what a test needs of a unit file under systemd/.
type shippedUnit struct {
	env      map[string]string
	execArgs []string // ExecStart, split on spaces (the shipped ones quote nothing)
	timerFor string   // a timer's Unit=
	schedule string   // a timer's OnCalendar= or OnUnitActiveSec=
}

func readShippedUnit(t *testing.T, path string) shippedUnit {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := shippedUnit{env: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch k {
		case "Environment":
			ek, ev, ok := strings.Cut(v, "=")
			require.True(t, ok, "%s: %s", path, line)
			u.env[ek] = ev
		case "ExecStart":
			u.execArgs = strings.Fields(v)
		case "Unit":
			u.timerFor = v
		case "OnCalendar", "OnUnitActiveSec":
			u.schedule = v
		}
	}
	require.NoError(t, sc.Err())
	return u
}

// The units shipped in systemd/ are what an operator installs as they are:
// each must name a real subcommand, set only variables the updater reads,
// agree with the updater's defaults on the seed's paths and the dispatch's
// address (a timer pointed at the wrong port fails every night), and have
// its environment accepted by the command it runs.
func TestShippedUnits(t *testing.T) {
	var src strings.Builder
	gofiles, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, p := range gofiles {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		src.Write(b)
	}
	defaults := map[string]string{
		"T3_DISPATCH":    defaultDispatch,
		"T3_STATE_DIR":   defaultStateDir,
		"T3_BACKUP_DEST": defaultBackupDest,
		"T3_FREEZE_FILE": rollout.DefaultFreezeFile,
		"T3_USER_MAP":    hostfiles.DefaultUserMap,
		"T3_ENV_DIR":     hostfiles.DefaultEnvDir,
		"T3_HOME_ROOT":   defaultHomeRoot,
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	services, err := filepath.Glob("systemd/*.service")
	require.NoError(t, err)
	require.NotEmpty(t, services)
	for _, path := range services {
		t.Run(filepath.Base(path), func(t *testing.T) {
			u := readShippedUnit(t, path)
			require.GreaterOrEqual(t, len(u.execArgs), 2, "ExecStart")
			assert.Equal(t, "/usr/local/bin/t3fleet-updater", u.execArgs[0])
			sub := u.execArgs[1]
			require.Contains(t, names, sub, "ExecStart runs a subcommand the updater has")
			for k, v := range u.env {
				assert.Regexp(t, regexp.MustCompile(`"`+regexp.QuoteMeta(k)+`"`), src.String(), "%s is read by the updater", k)
				if d, ok := defaults[k]; ok {
					assert.Equal(t, d, v, "%s agrees with the updater's default", k)
				}
			}
			// The rollout commands read the environment, then wire: reaching
			// Wire means the unit's environment and arguments were accepted.
			switch sub {
			case "run", "migrate-idle", "watchdog":
			case "backup":
				// An empty user map stops it once its environment, flags
				// and label have been accepted, before anything is read.
				empty := filepath.Join(t.TempDir(), "ttyd-user-map")
				require.NoError(t, os.WriteFile(empty, nil, 0o644))
				o := opsCLI{Getenv: func(k string) string {
					if k == "T3_USER_MAP" {
						return empty
					}
					return u.env[k]
				}}
				var stderr strings.Builder
				o.backup(context.Background(), u.execArgs[2:], io.Discard, &stderr)
				require.Contains(t, stderr.String(), "no users in "+empty, "the unit's environment and arguments are accepted")
				return
			default:
				t.Fatalf("no check of what %s does with the unit's environment and arguments", sub)
			}
			errWired := errors.New("wired")
			var got engineConfig
			r := rolloutCLI{
				Getenv: func(k string) string { return u.env[k] },
				Wire: func(_ context.Context, c engineConfig) (*rollout.Engine, func(), error) {
					got = c
					return nil, nil, errWired
				},
			}
			var stderr strings.Builder
			rolloutCommand(t, sub)(r, context.Background(), u.execArgs[2:], io.Discard, &stderr)
			require.Contains(t, stderr.String(), "wired", "the unit's environment is accepted")
			assert.Equal(t, defaultDispatch, got.Dispatch)
		})
	}
	timers, err := filepath.Glob("systemd/*.timer")
	require.NoError(t, err)
	for _, path := range timers {
		u := readShippedUnit(t, path)
		assert.FileExists(t, filepath.Join("systemd", u.timerFor), "%s starts a shipped service", path)
		assert.NotEmpty(t, u.schedule, "%s has a schedule", path)
		assert.True(t, slices.Contains(services, filepath.Join("systemd", u.timerFor)), path)
	}
}

// systemd itself reads the shipped units (the updater's path swapped for
// /bin/true, which verify wants to exist): a misspelt key or value is only
// a warning to systemd, so any output fails the test.
func TestShippedUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		realtest.Missing(t, "no systemd-analyze: %v (apt-get install systemd)", err)
	}
	dir := t.TempDir()
	files, err := filepath.Glob("systemd/*")
	require.NoError(t, err)
	var args []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/t3fleet-updater", "/bin/true"))
		dst := filepath.Join(dir, filepath.Base(f))
		require.NoError(t, os.WriteFile(dst, b, 0o644))
		args = append(args, dst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, append([]string{"verify", "--man=no"}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has something to say")
}

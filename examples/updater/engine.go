package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/rollout"
)

// Installer kinds for --installer.
const (
	installerSideBySide = "side-by-side"
	installerGlobal     = "global"
)

// Defaults of the rollout commands that are not rollout's own.
const (
	defaultPrefix     = "/opt/t3fleet/t3"
	defaultBackupDest = "/var/backups/t3-state"
	defaultTemplate   = "t3-serve@.service"
)

// engineConfig is everything the rollout commands read from the environment
// and their flags; wire turns it into an Engine.
type engineConfig struct {
	Options    rollout.Options
	DryRun     bool   // T3_DRY_RUN=1: run prints the plan
	Installer  string // --installer
	Prefix     string // --prefix / T3_PREFIX: the side-by-side tree
	BackupDest string // T3_BACKUP_DEST
	// BackupTimeout bounds one snapshot or restore (T3_BACKUP_TIMEOUT).
	BackupTimeout time.Duration
	Dispatch      string // T3_DISPATCH: the dispatch's URL, for verification
	SmokePort     int    // T3_SMOKE_PORT: checked and kept, not used (the health check picks a free loopback port)
	UserBus       bool   // --user-bus: a systemd user manager (rootless)
	Template      string // --template
	HomeRoot      string // --home-root / T3_HOME_ROOT: /home/<user>/.t3 by default
	UserMap       string // T3_USER_MAP: SSO names for the verifier
	Check         bool   // --check-candidate (plan)
	// Quiet is the idle gate's quiet threshold (T3_MIGRATE_QUIET_SECONDS,
	// idlegate's default when unset), the same for run and migrate-idle.
	Quiet time.Duration
	// EnvDir holds <user>.env with T3_PORT (T3_ENV_DIR): where to ask an
	// instance which version it runs.
	EnvDir string
}

// rolloutCLI is the run, plan, freeze, unfreeze and status commands. Its
// fields let tests replace the environment and the adapters; the zero value
// uses the process environment and the real adapters.
type rolloutCLI struct {
	Getenv func(string) string
	// Wire builds the engine for a config; close releases what it opened.
	Wire func(ctx context.Context, c engineConfig) (e *rollout.Engine, close func(), err error)
}

func (r rolloutCLI) getenv(k string) string {
	if r.Getenv == nil {
		return os.Getenv(k)
	}
	return r.Getenv(k)
}

func (r rolloutCLI) wire(ctx context.Context, c engineConfig) (*rollout.Engine, func(), error) {
	if r.Wire == nil {
		return wireReal(ctx, c)
	}
	return r.Wire(ctx, c)
}

// config reads the environment, then parses the flags of command name.
// extra adds the command's own flags. Every error is on stderr by the time
// it returns (the flag package prints its own), for the caller's exit 2.
func (r rolloutCLI) config(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet, *engineConfig)) (engineConfig, error) {
	c, err := r.parseConfig(name, args, stderr, extra)
	var fe flagError
	if err != nil && !errors.As(err, &fe) {
		fmt.Fprintf(stderr, "updater %s: %s\n", name, errText(err))
	}
	return c, err
}

// flagError is an error the flag package has printed already.
type flagError struct{ error }

func (e flagError) Unwrap() error { return e.error }

func (r rolloutCLI) parseConfig(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet, *engineConfig)) (engineConfig, error) {
	c := engineConfig{Installer: installerSideBySide, Template: defaultTemplate}
	o := &c.Options
	o.Pin = r.getenv("T3_PIN")
	if o.Pin != "" {
		if _, err := rollout.ParseVersion(o.Pin); err != nil {
			return c, fmt.Errorf("T3_PIN=%q: %w", o.Pin, err)
		}
	}
	o.Track = r.getenv("T3_TRACK")
	o.FreezeFile = r.getenv("T3_FREEZE_FILE")
	o.StateDir = r.getenv("T3_STATE_DIR")
	o.TmpDir = r.getenv("T3_TMPDIR")
	dry, err := parseFlagValue(r.getenv("T3_DRY_RUN"))
	if err != nil {
		return c, fmt.Errorf("T3_DRY_RUN=%q: %w", r.getenv("T3_DRY_RUN"), err)
	}
	c.DryRun = dry
	c.Dispatch = r.getenv("T3_DISPATCH")
	// What the operations commands read too, read the same way.
	oc, err := loadConfig(r.getenv)
	if err != nil {
		return c, err
	}
	c.BackupDest, c.BackupTimeout, c.HomeRoot, c.UserMap = oc.BackupDest, oc.BackupTimeout, oc.HomeRoot, oc.UserMap
	o.BackupKeep = oc.BackupKeep // a finished run prunes to it
	c.Quiet = oc.MigrateQuiet
	c.Prefix = envOr(r.getenv("T3_PREFIX"), defaultPrefix)
	c.EnvDir = envOr(r.getenv("T3_ENV_DIR"), hostfiles.DefaultEnvDir)
	if p := r.getenv("T3_SMOKE_PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return c, fmt.Errorf("T3_SMOKE_PORT=%q: not a port", p)
		}
		c.SmokePort = n
	}

	fs := flag.NewFlagSet("updater "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var order string
	if name == "run" || name == "plan" || name == "status" {
		fs.DurationVar(&o.MinAge, "min-age", 0, "refuse a target published less than this ago (e.g. 6h)")
		fs.BoolVar(&o.AllowMissingBackup, "allow-missing-backup", false, "let a user with no database yet go without a backup")
		fs.IntVar(&o.BackupConcurrency, "backup-concurrency", rollout.DefaultBackupConcurrency, "prebump snapshots taken at once (1: one by one, gentlest on a busy disk)")
		fs.BoolVar(&o.SkipPathCheck, "skip-path-check", false, "start even if nobody pairs through the dispatch on the current build (a current build that broke pairing for everyone)")
		fs.StringVar(&o.SeedUser, "seed-user", "", "user whose newest prebump snapshot feeds the health check (default: largest database)")
		fs.StringVar(&order, "order", "", "comma-separated users to restart first, in this order")
		fs.StringVar(&o.OperatorUser, "operator", "", "the operator's own user, restarted last")
		fs.StringVar(&c.Installer, "installer", c.Installer, "side-by-side or global (the seed's npm i -g layout)")
		fs.StringVar(&c.Prefix, "prefix", c.Prefix, "side-by-side install prefix (T3_PREFIX)")
		fs.DurationVar(&o.LockWait, "lock-wait", rollout.DefaultLockWait, "how long to wait for another run holding the lock")
		fs.BoolVar(&c.UserBus, "user-bus", false, "manage units on the systemd user manager")
		fs.StringVar(&c.Template, "template", c.Template, "systemd template unit of the fleet")
		fs.StringVar(&c.HomeRoot, "home-root", c.HomeRoot, "parent of the users' homes (T3_HOME_ROOT)")
	}
	if extra != nil {
		extra(fs, &c)
	}
	if err := fs.Parse(args); err != nil {
		return c, flagError{err}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	if order != "" {
		o.Order = strings.Split(order, ",")
	}
	if c.Installer != installerSideBySide && c.Installer != installerGlobal {
		return c, fmt.Errorf("--installer %q: want %s or %s", c.Installer, installerSideBySide, installerGlobal)
	}
	if fs.Lookup("backup-concurrency") != nil && o.BackupConcurrency < 1 {
		return c, fmt.Errorf("--backup-concurrency %d: want 1 or more", o.BackupConcurrency)
	}
	if o.LockWait == 0 {
		o.LockWait = -1 // "--lock-wait 0" means try once
	}
	return c, nil
}

func envOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// textLogger logs to w in slog's text format: the alert strings ("FROZEN",
// "HEALTH-CHECK FAILED", "rolled back", "ROLLBACK FAILED") appear in msg.
func textLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				a.Value = slog.StringValue(a.Value.Time().UTC().Format(time.RFC3339))
			}
			return a
		},
	}))
}

// cmdError prints err as "updater <name>: <errText>" and returns 1.
func cmdError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "updater %s: %s\n", name, errText(err))
	return 1
}

// errText is err as the operator reads it. An error's text quotes what
// users control (the path of a snapshot in their directory, what their
// instance answered), so it is rendered with t3fleet.Printable like any
// such string; every error the updater prints goes through here. The
// lines errors.Join puts between errors stay lines, each error rendered
// on its own.
func errText(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var raw, out []string
		for _, e := range j.Unwrap() {
			raw = append(raw, e.Error())
			out = append(out, errText(e))
		}
		// fmt.Errorf with several %w has the same method, not the lines.
		if strings.Join(raw, "\n") == err.Error() {
			return strings.Join(out, "\n")
		}
	}
	return t3fleet.Printable(err.Error())
}

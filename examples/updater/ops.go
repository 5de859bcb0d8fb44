package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/adapters/systemd"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Unit managers for -units.
const (
	unitsSystemd = "systemd"
	unitsNone    = "none"
)

// opsCLI is the backup, backups, restore and idle commands. The zero value
// reads the process environment and dials systemd; tests set the fields.
type opsCLI struct {
	Getenv func(string) string
	// Units returns the unit manager for -units; close releases it. Nil:
	// dialUnits.
	Units func(ctx context.Context, f unitChoice) (rollout.UnitManager, func(), error)
	// Store options beyond what the config sets (tests: Now, fault hooks).
	StoreOptions statebackup.Options
}

// unitChoice selects and configures the unit manager.
type unitChoice struct {
	Kind     string // systemd | none
	UserBus  bool
	Template string
}

func (f *unitChoice) register(fs *flag.FlagSet) {
	fs.StringVar(&f.Kind, "units", unitsSystemd, "unit manager: systemd or none (none: nothing is checked, stopped or started)")
	fs.BoolVar(&f.UserBus, "user-bus", false, "use the systemd user manager")
	fs.StringVar(&f.Template, "template", defaultTemplate, "systemd template unit of the fleet")
}

// dialUnits wires the real unit manager. "none" returns nil.
func dialUnits(ctx context.Context, f unitChoice) (rollout.UnitManager, func(), error) {
	switch f.Kind {
	case unitsNone:
		return nil, func() {}, nil
	case unitsSystemd:
		opts := systemd.Options{Template: f.Template}
		var m *systemd.Manager
		var err error
		if f.UserBus {
			m, err = systemd.DialUser(ctx, opts)
		} else {
			m, err = systemd.DialSystem(ctx, opts)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("systemd: %w (use -units none where there is no systemd)", err)
		}
		return m, func() { m.Close() }, nil
	}
	return nil, nil, fmt.Errorf("-units %q: want %s or %s", f.Kind, unitsSystemd, unitsNone)
}

func (o opsCLI) config() (config, error) { return loadConfig(o.Getenv) }

func (o opsCLI) units(ctx context.Context, f unitChoice) (rollout.UnitManager, func(), error) {
	if o.Units != nil {
		return o.Units(ctx, f)
	}
	return dialUnits(ctx, f)
}

func (o opsCLI) store(c config, log *slog.Logger) *statebackup.Store {
	opts := o.StoreOptions
	opts.Timeout = c.BackupTimeout
	if opts.Logger == nil {
		opts.Logger = log
	}
	return statebackup.NewStore(c.BackupDest, opts)
}

// unitFor is the unit of an OS user under the template.
func unitFor(f unitChoice, user string) rollout.Unit {
	tpl := f.Template
	if tpl == "" {
		tpl = defaultTemplate
	}
	pre, suf, _ := cutTemplate(tpl)
	return rollout.Unit{Name: pre + user + suf, User: user}
}

func cutTemplate(tpl string) (string, string, bool) {
	for i := 0; i+1 < len(tpl); i++ {
		if tpl[i] == '@' && tpl[i+1] == '.' {
			return tpl[:i+1], tpl[i+1:], true
		}
	}
	return tpl, "", false
}

// users resolves --user (an OS user, or an SSO user of the map) or, when
// empty, every OS user of the map. Bad map lines are reported on stderr and
// skipped.
func (o opsCLI) users(c config, user string, stderr io.Writer) ([]string, error) {
	if user != "" {
		// An SSO name of the map first (its valid lines are enough to
		// tell): "bob" may be a valid OS name and still be SSO bob, whose
		// instance runs as t3bob.
		m, _ := hostfiles.ReadUserMap(c.UserMap)
		if u, ok := m.Lookup(user); ok {
			if u != user && slices.Contains(m.OSUsers(), user) {
				return nil, fmt.Errorf("--user %q is ambiguous in %s: SSO user %s runs as %s, and OS user %s belongs to another SSO user; name %s, or that other SSO user",
					user, c.UserMap, user, u, user, u)
			}
			return []string{u}, nil
		}
		if t3fleet.ValidOSUser(user) == nil {
			return []string{user}, nil
		}
		return nil, fmt.Errorf("--user %q: not a valid OS user, nor an SSO user of %s", user, c.UserMap)
	}
	m, err := hostfiles.ReadUserMap(c.UserMap)
	if err != nil {
		if m == nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "warning: %s\n", errText(err))
	}
	users := m.OSUsers()
	if len(users) == 0 {
		return nil, fmt.Errorf("no users in %s", c.UserMap)
	}
	return users, nil
}

// newFlags is a FlagSet for command name writing to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("updater "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and rejects stray arguments; an error goes through
// usageExit.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		return err // the flag package has printed it, or the usage for -h
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// usageExit is the exit status for an error from parseFlags or config:
// 0 when -h asked for the usage (as `updater -h` does), 2 otherwise.
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// usageError prints err as cmdError does and returns 2: a flag or
// environment value the command cannot read, caught before it does anything.
func usageError(stderr io.Writer, name string, err error) int {
	cmdError(stderr, name, err)
	return 2
}

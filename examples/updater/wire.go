package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/systemd"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// wireReal builds the engine over the real adapters: systemd units, the npm
// registry and installers, statebackup snapshots under T3_BACKUP_DEST.
func wireReal(ctx context.Context, c engineConfig) (*rollout.Engine, func(), error) {
	lg := c.Options.Logger
	e := &rollout.Engine{Options: c.Options}
	e.Locator = userMapLocator{home: rollout.HomeLocator{Root: c.HomeRoot}, path: c.UserMap}
	var units *systemd.Manager
	var err error
	sopts := systemd.Options{Template: c.Template, Logger: lg}
	if c.UserBus {
		units, err = systemd.DialUser(ctx, sopts)
	} else {
		units, err = systemd.DialSystem(ctx, sopts)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("systemd: %w", err)
	}
	closeFn := func() { units.Close() }
	// Each instance at the port its /etc/t3-serve/<user>.env names.
	e.Units = t3a.ReportingUnits{UnitManager: units, BaseURL: hostfiles.EnvFileBaseURL(c.EnvDir)}
	e.Registry = npm.NewRegistry(npm.RegistryOptions{Logger: lg})
	switch c.Installer {
	case installerGlobal:
		g, err := npm.NewGlobal(npm.GlobalOptions{Logger: lg})
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("installer: %w", err)
		}
		e.Installer = g
	default:
		s, err := npm.NewSideBySide(c.Prefix, npm.SideBySideOptions{Logger: lg})
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("installer: %w", err)
		}
		e.Installer = s
	}
	e.CandidateInstaller = func(dir string) rollout.Installer {
		s, err := npm.NewSideBySide(filepath.Join(dir, "candidate"), npm.SideBySideOptions{Logger: lg})
		if err != nil {
			return failingInstaller{err}
		}
		return s
	}
	e.Backups = statebackup.NewStore(c.BackupDest, statebackup.Options{Logger: lg, Timeout: c.BackupTimeout})
	if err := wireChecks(e, c); err != nil {
		closeFn()
		return nil, nil, err
	}
	return e, closeFn, nil
}

// failingInstaller reports the error that kept an installer from being made.
type failingInstaller struct{ err error }

func (f failingInstaller) Current(context.Context) (string, error) { return "", f.err }
func (f failingInstaller) Stage(context.Context, string) (rollout.Build, error) {
	return rollout.Build{}, f.err
}
func (f failingInstaller) Activate(context.Context, rollout.Build) error { return f.err }
func (f failingInstaller) Drop(context.Context, string) error            { return f.err }

// userMapLocator places each user's base dir under the home root and names
// them by their SSO name from the seed's user map (sso=os_user lines), the
// name the dispatch verifies; a user missing from the map (or no map) keeps
// the OS name. A map with bad lines still places the users of its good
// ones; a user it lacks is then an error (a bad line may be theirs), for
// that user alone.
type userMapLocator struct {
	home rollout.HomeLocator
	path string
}

func (l userMapLocator) Locate(ctx context.Context, u rollout.Unit) (t3fleet.Instance, error) {
	in, err := l.home.Locate(ctx, u)
	if err != nil || l.path == "" {
		return in, err
	}
	m, err := hostfiles.ReadUserMap(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return in, nil
	}
	if m == nil && err != nil {
		return in, fmt.Errorf("locate %s: %w", u.User, err)
	}
	for _, mm := range m {
		if mm.OSUser == u.User {
			in.User = mm.SSO
			return in, nil
		}
	}
	if err != nil {
		return in, fmt.Errorf("locate %s: not among the good lines of the user map, which has bad ones: %w", u.User, err)
	}
	return in, nil
}

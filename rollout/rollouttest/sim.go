package rollouttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// SimUser is one simulated instance.
type SimUser struct {
	Running  bool
	Version  string // the build the running process was started from
	Busy     bool   // the idle gate says no
	DBSize   int    // bytes of payload written at creation; 0 = no database
	Restarts int
}

// Sim is a simulated fleet on real files: each user's database is a file
// <Dir>/home/<user>/.t3/userdata/state.sqlite whose first line is the schema
// version it was migrated to. Restarting a unit runs the active build, which
// migrates the database forward; a build older than its database breaks
// pairing (the 2026-06-09 outage). Backups are file copies.
//
// Its fakes (Units, Installer, ...) are safe for concurrent use.
type Sim struct {
	Dir string

	mu        sync.Mutex
	users     map[string]*SimUser
	current   string
	staged    map[string]bool
	releases  map[string]rollout.Release // channel -> release
	badHealth map[string]string          // version -> reason
	badCanary map[string]map[string]bool // version -> user -> verify fails
	snapSeq   int
	calls     []string
}

// NewSim makes a fleet at version current with the given users (running,
// idle, databases of distinct sizes in the order given: the first is smallest).
func NewSim(dir, current string, users ...string) (*Sim, error) {
	s := &Sim{Dir: dir, users: map[string]*SimUser{}, current: current,
		staged: map[string]bool{current: true}, releases: map[string]rollout.Release{},
		badHealth: map[string]string{}, badCanary: map[string]map[string]bool{}}
	for i, u := range users {
		if err := s.AddUser(u, &SimUser{Running: true, Version: current, DBSize: 100 * (i + 1)}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddUser adds an instance; a DBSize > 0 creates its database at its Version.
func (s *Sim) AddUser(name string, u *SimUser) error {
	if err := t3fleet.ValidOSUser(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[name] = u
	if u.DBSize > 0 {
		if err := os.MkdirAll(filepath.Dir(s.DBPath(name)), 0o755); err != nil {
			return err
		}
		body := append([]byte(u.Version+"\n"), bytes.Repeat([]byte{'x'}, u.DBSize)...)
		return os.WriteFile(s.DBPath(name), body, 0o644)
	}
	return nil
}

// DBPath is a user's live database.
func (s *Sim) DBPath(user string) string {
	return filepath.Join(s.Dir, "home", user, ".t3", "userdata", "state.sqlite")
}

// DBSchema reads the version a user's database was migrated to.
func (s *Sim) DBSchema(user string) (string, error) {
	b, err := os.ReadFile(s.DBPath(user))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line, nil
}

// Publish points channel at version.
func (s *Sim) Publish(channel, version string, published time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases[channel] = rollout.Release{Version: version, Published: published}
}

// FailHealth makes the health check of version fail with reason.
func (s *Sim) FailHealth(version, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badHealth[version] = reason
}

// FailCanary makes pairing verification of user fail while it runs version.
func (s *Sim) FailCanary(version, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.badCanary[version] == nil {
		s.badCanary[version] = map[string]bool{}
	}
	s.badCanary[version][user] = true
}

// SetBusy sets what the idle gate says about user.
func (s *Sim) SetBusy(user string, busy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user].Busy = busy
}

// User returns a copy of a user's state.
func (s *Sim) User(name string) SimUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.users[name]
}

// Current is the active version.
func (s *Sim) Current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Calls lists the calls made on the fakes, e.g. "restart alice".
func (s *Sim) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Users lists the user names, sorted.
func (s *Sim) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names()
}

func (s *Sim) names() []string {
	var out []string
	for n := range s.users {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *Sim) call(format string, args ...any) {
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

// Engine returns an engine wired to the simulation, its state directory and
// freeze file under Dir.
func (s *Sim) Engine(o rollout.Options) *rollout.Engine {
	if o.StateDir == "" {
		o.StateDir = filepath.Join(s.Dir, "state")
	}
	if o.FreezeFile == "" {
		o.FreezeFile = filepath.Join(s.Dir, "t3-autoupdate.freeze")
	}
	if o.LockWait == 0 {
		o.LockWait = -1
	}
	return &rollout.Engine{Units: s.UnitManager(), Registry: s.Registry(), Installer: s.Installer(),
		Health: s.HealthChecker(), Verifier: s.Verifier(), Backups: s.Backuper(), Idle: s.IdleOracle(),
		Locator: rollout.HomeLocator{Root: filepath.Join(s.Dir, "home")}, Options: o}
}

// start runs the active build for user, migrating its database forward.
func (s *Sim) start(name string) error {
	u, ok := s.users[name]
	if !ok {
		return fmt.Errorf("sim: no unit for %s", name)
	}
	u.Running, u.Version = true, s.current
	u.Restarts++
	if u.DBSize == 0 {
		return nil
	}
	b, err := os.ReadFile(s.DBPath(name))
	if err != nil {
		return err
	}
	schema, rest, _ := strings.Cut(string(b), "\n")
	if rollout.CompareVersions(s.current, schema) > 0 {
		return os.WriteFile(s.DBPath(name), []byte(s.current+"\n"+rest), 0o644)
	}
	return nil
}

// UnitManager returns the simulation's units.
func (s *Sim) UnitManager() *UnitManager {
	unit := func(n string) rollout.Unit { return rollout.Unit{Name: "t3-serve@" + n + ".service", User: n} }
	return &UnitManager{
		UnitsFunc: func(context.Context) ([]rollout.Unit, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			var out []rollout.Unit
			for _, n := range s.names() {
				out = append(out, unit(n))
			}
			return out, nil
		},
		RestartFunc: func(_ context.Context, u rollout.Unit) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.call("restart %s", u.User)
			return s.start(u.User)
		},
		StartFunc: func(_ context.Context, u rollout.Unit) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.call("start %s", u.User)
			return s.start(u.User)
		},
		StopFunc: func(_ context.Context, u rollout.Unit) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.call("stop %s", u.User)
			if su, ok := s.users[u.User]; ok {
				su.Running = false
			}
			return nil
		},
		RunningVersionFunc: func(_ context.Context, u rollout.Unit) (string, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if su, ok := s.users[u.User]; ok && su.Running {
				return su.Version, nil
			}
			return "", nil
		},
		StatusFunc: func(_ context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			su, ok := s.users[u.User]
			if !ok || !su.Running {
				return rollout.UnitStatus{State: "inactive"}, nil
			}
			return rollout.UnitStatus{Active: true, State: "active", MainPID: 1000 + su.Restarts}, nil
		},
	}
}

// Registry resolves channels published with Publish.
func (s *Sim) Registry() *Registry {
	return &Registry{ResolveFunc: func(_ context.Context, ch string) (rollout.Release, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		r, ok := s.releases[ch]
		if !ok {
			return rollout.Release{}, fmt.Errorf("sim: no dist-tag %s", ch)
		}
		return r, nil
	}}
}

// Installer stages and activates versions (any version can be staged).
func (s *Sim) Installer() *Installer {
	build := func(v string) rollout.Build {
		return rollout.Build{Version: v, Dir: filepath.Join(s.Dir, "versions", v), Bin: filepath.Join(s.Dir, "versions", v, "t3")}
	}
	return &Installer{
		CurrentFunc: func(context.Context) (string, error) { return s.Current(), nil },
		StageFunc: func(_ context.Context, v string) (rollout.Build, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.staged[v] = true
			return build(v), nil
		},
		ActivateFunc: func(_ context.Context, b rollout.Build) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.staged[b.Version] {
				return fmt.Errorf("sim: %s not staged", b.Version)
			}
			s.call("activate %s", b.Version)
			s.current = b.Version
			return nil
		},
		DropFunc: func(_ context.Context, v string) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if v == s.current {
				return fmt.Errorf("sim: drop of the current version %s", v)
			}
			s.call("drop %s", v)
			delete(s.staged, v)
			return nil
		},
	}
}

// HealthChecker fails versions marked with FailHealth and requires the seed
// to exist.
func (s *Sim) HealthChecker() *HealthChecker {
	return &HealthChecker{CheckFunc: func(_ context.Context, b rollout.Build, seed string) (rollout.HealthReport, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.call("health %s", b.Version)
		if seed != "" {
			if _, err := os.Stat(seed); err != nil {
				return rollout.HealthReport{}, fmt.Errorf("sim: seed: %w", err)
			}
		}
		if r, bad := s.badHealth[b.Version]; bad {
			return rollout.HealthReport{Passed: false, Reason: r}, nil
		}
		return rollout.HealthReport{Passed: true, Endpoint: "/api/auth/browser-session", Cookie: "t3_session"}, nil
	}}
}

// ErrPairing is what the simulated verification fails with.
var ErrPairing = errors.New("sim: pairing failed")

// Verifier fails for a stopped unit, a canary marked with FailCanary, and a
// build older than the user's database.
func (s *Sim) Verifier() *Verifier {
	return &Verifier{VerifyPairingFunc: func(_ context.Context, user string) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		u, ok := s.users[user]
		if !ok || !u.Running {
			return fmt.Errorf("%w: %s not running", ErrPairing, user)
		}
		if s.badCanary[u.Version][user] {
			return fmt.Errorf("%w: %s on %s", ErrPairing, user, u.Version)
		}
		if u.DBSize > 0 {
			b, err := os.ReadFile(s.DBPath(user))
			if err != nil {
				return err
			}
			schema, _, _ := strings.Cut(string(b), "\n")
			if rollout.CompareVersions(u.Version, schema) < 0 {
				return fmt.Errorf("%w: table auth_pairing_links has no column named role (%s on a %s database)", ErrPairing, u.Version, schema)
			}
		}
		return nil
	}}
}

// IdleOracle reports users set busy with SetBusy as busy.
func (s *Sim) IdleOracle() *IdleOracle {
	return &IdleOracle{IdleFunc: func(_ context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if u, ok := s.users[in.OSUser]; ok && u.Busy {
			return idlegate.Verdict{Idle: false, Reason: "1 active turn", ActiveTurns: 1}, nil
		}
		return idlegate.Verdict{Idle: true, Reason: "quiet"}, nil
	}}
}

// Backuper copies databases to <Dir>/backups/<user>/.
func (s *Sim) Backuper() *Backuper {
	dir := func(user string) string { return filepath.Join(s.Dir, "backups", user) }
	return &Backuper{
		BackupFunc: func(_ context.Context, t statebackup.Target, label string) (statebackup.Snapshot, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			src := filepath.Join(t.UserdataDir, "state.sqlite")
			b, err := os.ReadFile(src)
			if errors.Is(err, fs.ErrNotExist) {
				return statebackup.Snapshot{}, fmt.Errorf("backup %s: %w", t.User, statebackup.ErrNoDatabase)
			}
			if err != nil {
				return statebackup.Snapshot{}, err
			}
			s.snapSeq++
			p := filepath.Join(dir(t.User), fmt.Sprintf("state-%s-%04d.sqlite", label, s.snapSeq))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return statebackup.Snapshot{}, err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return statebackup.Snapshot{}, err
			}
			schema, _, _ := strings.Cut(string(b), "\n")
			s.call("backup %s %s", t.User, label)
			return statebackup.Snapshot{Path: p, User: t.User, Label: label, Time: time.Now(), Size: int64(len(b)),
				Version: schema, Source: "state.sqlite", Verified: true}, nil
		},
		RestoreFunc: func(_ context.Context, t statebackup.Target, snap statebackup.Snapshot) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if u, ok := s.users[t.User]; ok && u.Running {
				return fmt.Errorf("sim: restore %s under a running server", t.User)
			}
			b, err := os.ReadFile(snap.Path)
			if err != nil {
				return err
			}
			s.call("restore %s", t.User)
			return os.WriteFile(filepath.Join(t.UserdataDir, "state.sqlite"), b, 0o644)
		},
		ListFunc: func(_ context.Context, t statebackup.Target) ([]statebackup.Snapshot, error) {
			ents, err := os.ReadDir(dir(t.User))
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			var out []statebackup.Snapshot
			for _, e := range ents {
				fi, err := e.Info()
				if err != nil {
					return nil, err
				}
				out = append(out, statebackup.Snapshot{Path: filepath.Join(dir(t.User), e.Name()), User: t.User,
					Size: fi.Size(), Time: fi.ModTime(), Label: strings.TrimSuffix(strings.TrimPrefix(e.Name(), "state-"), ".sqlite")})
			}
			return out, nil
		},
	}
}

package rollout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/t3fleet/t3fleet"
)

// Locator maps a unit to the instance it serves (state directory, base URL),
// which the backups and the idle gate need.
type Locator interface {
	Locate(ctx context.Context, u Unit) (t3fleet.Instance, error)
}

// LocatorFunc adapts a function to Locator.
type LocatorFunc func(ctx context.Context, u Unit) (t3fleet.Instance, error)

// Locate calls f.
func (f LocatorFunc) Locate(ctx context.Context, u Unit) (t3fleet.Instance, error) { return f(ctx, u) }

// Defaults of HomeLocator: the seed's layout, /home/<user>/.t3.
const (
	DefaultHomeRoot = "/home"
	DefaultBaseDir  = ".t3"
)

// HomeLocator places each user's t3 base dir at <Root>/<user>/<BaseDir>.
// Zero fields take the defaults.
type HomeLocator struct {
	Root    string
	BaseDir string
}

// Locate implements Locator. It validates the user name before it reaches a path.
func (h HomeLocator) Locate(_ context.Context, u Unit) (t3fleet.Instance, error) {
	if err := t3fleet.ValidOSUser(u.User); err != nil {
		return t3fleet.Instance{}, fmt.Errorf("locate %s: %w", u.Name, err)
	}
	root, base := h.Root, h.BaseDir
	if root == "" {
		root = DefaultHomeRoot
	}
	if base == "" {
		base = DefaultBaseDir
	}
	return t3fleet.Instance{User: u.User, OSUser: u.User, StateDir: filepath.Join(root, u.User, base)}, nil
}

// Database file names under <base-dir>/userdata; newer builds use statev2.
var liveDBNames = []string{"statev2.sqlite", "state.sqlite"}

// LiveDBSize returns the size of the instance's live database, 0 when it has
// none or its state directory is not on this host.
func LiveDBSize(in t3fleet.Instance) int64 {
	if in.StateDir == "" {
		return 0
	}
	for _, n := range liveDBNames {
		if fi, err := os.Stat(filepath.Join(in.StateDir, "userdata", n)); err == nil {
			return fi.Size()
		}
	}
	return 0
}

// HasDatabase reports whether the instance has a live database on this host.
func HasDatabase(in t3fleet.Instance) bool {
	if in.StateDir == "" {
		return false
	}
	for _, n := range liveDBNames {
		if _, err := os.Stat(filepath.Join(in.StateDir, "userdata", n)); err == nil {
			return true
		}
	}
	return false
}

// UserdataDir returns <StateDir>/userdata, or "" when the instance has no
// state directory on this host (a Backuper then has the user name alone;
// statebackup.Store refuses such a target).
func UserdataDir(in t3fleet.Instance) string {
	if in.StateDir == "" {
		return ""
	}
	return filepath.Join(in.StateDir, "userdata")
}

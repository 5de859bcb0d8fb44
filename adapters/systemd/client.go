package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Client is the part of a systemd D-Bus connection the Manager uses.
// *github.com/coreos/go-systemd/v22/dbus.Conn satisfies it; tests fake it.
type Client interface {
	ListUnitsByPatternsContext(ctx context.Context, states, patterns []string) ([]sddbus.UnitStatus, error)
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	GetUnitTypePropertiesContext(ctx context.Context, unit, unitType string) (map[string]any, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	// Connected reports whether the connection still stands: a job's
	// result comes as a signal, which a lost connection never delivers.
	Connected() bool
	Close()
}

var _ Client = (*sddbus.Conn)(nil)

// SystemPrivateSocket is where the system manager listens for direct
// (bus-less) connections from root.
const SystemPrivateSocket = "/run/systemd/private"

// DialSystem connects to the system manager: through the system bus, or, for
// root on a machine without a bus daemon, directly to SystemPrivateSocket.
//
// ctx bounds the dial (a wedged manager that never answers the handshake),
// nothing after: the connection lives until Manager.Close.
func DialSystem(ctx context.Context, opts Options) (*Manager, error) {
	c, err := bounded(ctx, func() (*sddbus.Conn, error) { return sddbus.NewWithContext(context.WithoutCancel(ctx)) })
	if err != nil {
		return nil, fmt.Errorf("dial system manager: %w", err)
	}
	return newOwning(c, opts)
}

// DialUser connects to the calling user's own manager (what `systemctl
// --user` talks to), the rootless deployment: directly to
// $XDG_RUNTIME_DIR/systemd/private when that socket exists, else through the
// session bus.
func DialUser(ctx context.Context, opts Options) (*Manager, error) {
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		sock := filepath.Join(rt, "systemd", "private")
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return DialSocket(ctx, sock, opts)
		}
	}
	c, err := bounded(ctx, func() (*sddbus.Conn, error) { return sddbus.NewUserConnectionContext(context.WithoutCancel(ctx)) })
	if err != nil {
		return nil, fmt.Errorf("dial user manager: %w", err)
	}
	return newOwning(c, opts)
}

// DialSocket connects directly to a manager's private socket (for a user
// manager, $XDG_RUNTIME_DIR/systemd/private), authenticating as the calling
// uid, with no bus daemon and so no Hello.
func DialSocket(ctx context.Context, path string, opts Options) (*Manager, error) {
	if path == "" {
		return nil, errors.New("dial systemd socket: empty path")
	}
	addr := "unix:path=" + path
	uid := strconv.Itoa(os.Getuid())
	dial := func() (*godbus.Conn, error) {
		// The connection's own context is left uncancelled: ctx bounds the
		// dial, not the life of the connection.
		conn, err := godbus.Dial(addr, godbus.WithContext(context.WithoutCancel(ctx)))
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(uid)}); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dial systemd socket %s: %w", path, err)
	}
	c, err := bounded(ctx, func() (*sddbus.Conn, error) { return sddbus.NewConnection(dial) })
	if err != nil {
		return nil, fmt.Errorf("dial systemd socket %s: %w", path, err)
	}
	return newOwning(c, opts)
}

// bounded returns what dial returns, or ctx's error when ctx ends first
// (the connection's own context is never cancelled, so a manager that
// accepts and never answers would hold the caller forever). A connection
// made after that is closed.
func bounded(ctx context.Context, dial func() (*sddbus.Conn, error)) (*sddbus.Conn, error) {
	type result struct {
		c   *sddbus.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := dial()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// newOwning is New for a connection the caller will not close itself.
func newOwning(c Client, opts Options) (*Manager, error) {
	m, err := New(c, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

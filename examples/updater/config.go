package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Defaults of the environment the operations commands read.
const (
	defaultHomeRoot = "/home"
	defaultStateDir = "/var/lib/t3-autoupdate"
)

// config is the seed's environment, read once and passed explicitly to the
// operations commands (backup, backups, restore, idle).
type config struct {
	UserMap       string        // T3_USER_MAP, default /etc/ttyd-user-map
	HomeRoot      string        // T3_HOME_ROOT, default /home: data at <root>/<u>/.t3/userdata
	BackupDest    string        // T3_BACKUP_DEST, default /var/backups/t3-state
	BackupKeep    int           // T3_BACKUP_KEEP, default 6 per user and kind
	BackupTimeout time.Duration // T3_BACKUP_TIMEOUT (Go duration or seconds), default 15m
	MigrateQuiet  time.Duration // T3_MIGRATE_QUIET_SECONDS, default 900
	StateDir      string        // T3_STATE_DIR, default /var/lib/t3-autoupdate
	Dispatch      string        // T3_DISPATCH: the dispatch's URL
}

// loadConfig reads the environment through getenv (os.Getenv when nil).
func loadConfig(getenv func(string) string) (config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := config{
		UserMap:       envOr(getenv("T3_USER_MAP"), hostfiles.DefaultUserMap),
		HomeRoot:      envOr(getenv("T3_HOME_ROOT"), defaultHomeRoot),
		BackupDest:    envOr(getenv("T3_BACKUP_DEST"), defaultBackupDest),
		BackupKeep:    statebackup.DefaultKeep,
		BackupTimeout: statebackup.DefaultTimeout,
		MigrateQuiet:  idlegate.DefaultQuietThreshold,
		StateDir:      envOr(getenv("T3_STATE_DIR"), defaultStateDir),
		Dispatch:      getenv("T3_DISPATCH"),
	}
	if v := getenv("T3_BACKUP_KEEP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("T3_BACKUP_KEEP=%q: want a positive integer", v)
		}
		c.BackupKeep = n
	}
	if v := getenv("T3_BACKUP_TIMEOUT"); v != "" {
		d, err := parseSecondsOrDuration(v)
		if err != nil {
			return c, fmt.Errorf("T3_BACKUP_TIMEOUT=%q: %w", v, err)
		}
		c.BackupTimeout = d
	}
	if v := getenv("T3_MIGRATE_QUIET_SECONDS"); v != "" {
		d, err := parseSecondsOrDuration(v)
		if err != nil {
			return c, fmt.Errorf("T3_MIGRATE_QUIET_SECONDS=%q: %w", v, err)
		}
		c.MigrateQuiet = d
	}
	return c, nil
}

// parseSecondsOrDuration accepts "900" (seconds, the seed's form) or a Go
// duration ("15m").
func parseSecondsOrDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("want a positive number of seconds")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want seconds or a positive duration such as 15m")
	}
	return d, nil
}

// stateDir is the user's t3 --base-dir, <home root>/<user>/.t3.
func (c config) stateDir(user string) string { return filepath.Join(c.HomeRoot, user, ".t3") }

// target is the statebackup view of a user's state.
func (c config) target(user string) statebackup.Target {
	return statebackup.Target{User: user, UserdataDir: filepath.Join(c.stateDir(user), "userdata")}
}

// parseFlagValue reads a yes/no variable such as T3_DRY_RUN: "" and 0,
// false, no, off are no; 1, true, yes, on are yes; anything else is an
// error rather than a guess (a dry run mistaken for a real one bumps the
// fleet).
func parseFlagValue(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, fmt.Errorf("want 1 or 0 (true/false, yes/no, on/off)")
}

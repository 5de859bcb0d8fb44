package systemdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// standIns are the only units besides the test's own: what a user manager
// needs to start and to exit cleanly.
func standIns() map[string]string {
	return map[string]string{
		"default.target": "[Unit]\nDescription=t3fleet test default\nRequires=basic.target\nAfter=basic.target\n",
		"basic.target":   "[Unit]\nDescription=t3fleet test basic\n",
		"shutdown.target": "[Unit]\nDescription=t3fleet test shutdown\nDefaultDependencies=no\n" +
			"RefuseManualStart=yes\n",
		"app.slice": "[Unit]\nDescription=t3fleet test apps\n",
		"exit.target": "[Unit]\nDescription=t3fleet test exit\nDefaultDependencies=no\n" +
			"Requires=systemd-exit.service\nAfter=systemd-exit.service\nAllowIsolate=yes\n",
		// Outside app.slice: app.slice is stopped by shutdown.target, which
		// this service needs started.
		"systemd-exit.service": "[Unit]\nDescription=t3fleet test exit\nDefaultDependencies=no\n" +
			"Requires=shutdown.target\nAfter=shutdown.target\nSuccessAction=exit-force\n\n[Service]\nSlice=-.slice\n",
	}
}

func writeUnitFile(dir, name, content string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("unit file name %q", name)
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
}

// Service describes a service unit for WriteService.
type Service struct {
	Description string
	// Type is the service type; "exec" when empty, so a start job fails
	// when the binary cannot be executed.
	Type string
	// ExecStart is the command line, an absolute path first; each element
	// is quoted, so it reaches the process as one argument, verbatim.
	// Specifiers such as %i are not available: write a unit with
	// WriteUnit for those.
	ExecStart []string
	// Environment is "KEY=value" pairs for the process.
	Environment []string
	// WorkingDirectory, when set, is the process's directory.
	WorkingDirectory string
	// Log receives stdout and stderr (appended); LogDir/<unit name>.log
	// when empty.
	Log string
	// Extra is raw text appended to the [Service] section.
	Extra string
}

// Text returns the unit file for s.
func (s Service) Text() string {
	var b strings.Builder
	desc := s.Description
	if desc == "" {
		desc = "t3fleet test service %n"
	}
	fmt.Fprintf(&b, "[Unit]\nDescription=%s\n\n[Service]\n", desc)
	typ := s.Type
	if typ == "" {
		typ = "exec"
	}
	fmt.Fprintf(&b, "Type=%s\n", typ)
	q := make([]string, len(s.ExecStart))
	for i, a := range s.ExecStart {
		q[i] = quote(a)
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(q, " "))
	for _, e := range s.Environment {
		fmt.Fprintf(&b, "Environment=%s\n", quote(e))
	}
	if s.WorkingDirectory != "" {
		fmt.Fprintf(&b, "WorkingDirectory=%s\n", escapeSpecifiers(s.WorkingDirectory))
	}
	if s.Log != "" {
		fmt.Fprintf(&b, "StandardOutput=append:%s\nStandardError=inherit\n", escapeSpecifiers(s.Log))
	}
	if s.Extra != "" {
		b.WriteString(strings.TrimRight(s.Extra, "\n") + "\n")
	}
	return b.String()
}

// quote makes one ExecStart/Environment word that systemd passes verbatim.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// WriteUnit writes a unit file into UnitDir and reloads the manager.
func (m *UserManager) WriteUnit(tb testing.TB, name, content string) {
	tb.Helper()
	if err := writeUnitFile(m.UnitDir, name, content); err != nil {
		tb.Fatalf("write unit %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Reload(ctx); err != nil {
		tb.Fatalf("reload after writing %s: %v", name, err)
	}
}

// WriteService writes a service unit (a template when name is like
// "t3-serve@.service") and reloads the manager. Its output goes to
// UnitLog(<instance name>) unless s.Log says otherwise.
func (m *UserManager) WriteService(tb testing.TB, name string, s Service) {
	tb.Helper()
	text := s.Text()
	if s.Log == "" {
		text += "StandardOutput=append:" + escapeSpecifiers(m.LogDir) + "/%n.log\nStandardError=inherit\n"
	}
	m.WriteUnit(tb, name, text)
}

// UnitLog is where a service written by WriteService with no Log logs.
func (m *UserManager) UnitLog(unit string) string {
	return filepath.Join(m.LogDir, unit+".log")
}

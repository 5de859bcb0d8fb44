package hostfiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/t3fleet/t3fleet"
)

// DefaultUserMap is the seed's SSO-to-OS user map (T3_USER_MAP).
const DefaultUserMap = "/etc/ttyd-user-map"

// UserMapping is one line of the user map: an SSO user and the OS account
// their instance runs as.
type UserMapping struct {
	SSO    string
	OSUser string
	Line   int // 1-based line in the file
}

// UserMap is the parsed user map, in file order.
type UserMap []UserMapping

// LineError is one line of a host file that was skipped.
type LineError struct {
	Path string
	Line int
	Text string
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %q: %v", e.Path, e.Line, e.Text, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ErrMalformedLine: a line that is not KEY=VALUE.
var ErrMalformedLine = errors.New("malformed line")

// ReadUserMap reads the user map at path (DefaultUserMap when empty).
func ReadUserMap(path string) (UserMap, error) {
	if path == "" {
		path = DefaultUserMap
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("user map: %w", err)
	}
	return ParseUserMap(path, b)
}

// ParseUserMap parses `sso_user=os_user` lines; blank lines and lines
// starting with '#' are ignored, spaces around names are trimmed. Every
// valid line is returned even when others are bad: the error then joins a
// *LineError per skipped line (a malformed line, a name failing
// t3fleet.ValidSSOName / ValidOSUser, or an SSO user given twice: the first
// line wins), so one bad edit does not stop the others' backups. name is
// used in errors.
func ParseUserMap(name string, data []byte) (UserMap, error) {
	var out UserMap
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		bad := func(err error) { errs = append(errs, &LineError{Path: name, Line: n, Text: text, Err: err}) }
		sso, osUser, ok := strings.Cut(text, "=")
		sso, osUser = strings.TrimSpace(sso), strings.TrimSpace(osUser)
		if !ok {
			bad(ErrMalformedLine)
			continue
		}
		if err := t3fleet.ValidSSOName(sso); err != nil {
			bad(err)
			continue
		}
		if err := t3fleet.ValidOSUser(osUser); err != nil {
			bad(err)
			continue
		}
		if first, dup := seen[sso]; dup {
			bad(fmt.Errorf("SSO user %q already mapped on line %d", sso, first))
			continue
		}
		seen[sso] = n
		out = append(out, UserMapping{SSO: sso, OSUser: osUser, Line: n})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("user map: %w", err)
	}
	return out, nil
}

// OSUsers returns the distinct OS users of the map, sorted.
func (m UserMap) OSUsers() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range m {
		if !seen[e.OSUser] {
			seen[e.OSUser] = true
			out = append(out, e.OSUser)
		}
	}
	sort.Strings(out)
	return out
}

// Lookup returns the OS user an SSO user maps to.
func (m UserMap) Lookup(sso string) (string, bool) {
	for _, e := range m {
		if e.SSO == sso {
			return e.OSUser, true
		}
	}
	return "", false
}

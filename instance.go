package t3fleet

import (
	"errors"
	"fmt"
)

// Instance is one user's t3 server. It assumes nothing about where the server
// runs: a base URL, not a port; a state directory only where the host has one.
type Instance struct {
	// User is the SSO name the proxy saw, e.g. "emil.barzin".
	User string
	// OSUser is the account the instance runs as, e.g. "emil". It is checked
	// with ValidOSUser before it reaches a path or an exec.
	OSUser string
	// BaseURL is where the instance answers, e.g. "http://127.0.0.1:3801",
	// without a trailing slash.
	BaseURL string
	// StateDir is the instance's t3 --base-dir (e.g. /home/emil/.t3), empty
	// when it is not on this host.
	StateDir string
}

// ErrInvalidName is returned (wrapped) for a user name that fails validation.
var ErrInvalidName = errors.New("invalid user name")

// MaxSSONameLen bounds an SSO user name.
const MaxSSONameLen = 64

// OSUserPattern is the rule ValidOSUser applies, as a regular expression.
const OSUserPattern = `^[a-z_][a-z0-9_-]{0,31}$`

// The dispatch checks both rules on every request, so they are byte loops
// rather than regular expressions.

func ssoNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func osUserByte(c byte, first bool) bool {
	return c >= 'a' && c <= 'z' || c == '_' || !first && (c >= '0' && c <= '9' || c == '-')
}

// ValidSSOName reports whether s is an acceptable SSO user name: letters,
// digits, '.', '_' and '-', at most MaxSSONameLen bytes, and never "." or ".."
// or a name starting with '.' or '-'.
func ValidSSOName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(s) > MaxSSONameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, MaxSSONameLen)
	case !allBytes(s, ssoNameByte):
		return fmt.Errorf("%w: %q has characters outside [A-Za-z0-9._-]", ErrInvalidName, s)
	case s[0] == '.' || s[0] == '-':
		return fmt.Errorf("%w: %q starts with %q", ErrInvalidName, s, s[0])
	}
	return nil
}

// ValidOSUser reports whether s is an acceptable OS account name, the rule the
// seed's t3-mint applies: ^[a-z_][a-z0-9_-]{0,31}$. A name that passes can be
// used as one path element and one argv element.
func ValidOSUser(s string) error {
	ok := len(s) >= 1 && len(s) <= 32
	for i := 0; ok && i < len(s); i++ {
		ok = osUserByte(s[i], i == 0)
	}
	if !ok {
		return fmt.Errorf("%w: OS user %q does not match %s", ErrInvalidName, s, OSUserPattern)
	}
	return nil
}

func allBytes(s string, valid func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !valid(s[i]) {
			return false
		}
	}
	return true
}

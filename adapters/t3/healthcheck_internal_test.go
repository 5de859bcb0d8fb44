package t3

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		log  string
		want string
	}{
		{"ready\nall good\n", ""},
		{"Running migration 31_AuthAuthorizationScopes\nMigrations applied: 31..32", ""},
		{`Migration "31_AuthAuthorizationScopes" failed: SqlError`, `Migration "31_AuthAuthorizationScopes" failed: SqlError`},
		{`time=x level=ERROR msg="Migration \"31_AuthAuthorizationScopes\" failed: boom"`, `time=x level=ERROR msg="Migration \"31_AuthAuthorizationScopes\" failed: boom"`},
		{"ok\nerror: FAILED TO MIGRATE database\n", "error: FAILED TO MIGRATE database"},
		{"x table auth_pairing_links has no column named role", "x table auth_pairing_links has no column named role"},
		{"NOT NULL constraint failed: auth_pairing_links.scopes", "NOT NULL constraint failed: auth_pairing_links.scopes"},
		{"persistencesqlerror: insert", "persistencesqlerror: insert"},
		{"the migration failed", "the migration failed"},
	} {
		assert.Equal(t, tc.want, matchPattern(tc.log), tc.log)
	}
}

func TestFormatTTL(t *testing.T) {
	assert.Equal(t, "5m", formatTTL(DefaultMintTTL))
	assert.Equal(t, "90s", formatTTL(90e9))
	assert.Equal(t, "2h", formatTTL(7200e9))
}

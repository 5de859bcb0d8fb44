package t3test

import (
	"encoding/json"
	"errors"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// errInvalidCredential: unknown, consumed, revoked or expired credential.
var errInvalidCredential = errors.New("invalid credential")

func execSQL(conn *sqlite.Conn, q string, args ...any) error {
	return sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args})
}

// grant is what a link or session allows: a role before migration 31,
// scopes after.
type grant struct {
	Role   string
	Scopes []string
}

// issueSession consumes a one-time credential and inserts a session, in one
// transaction, with the SQL of the server's own era: an old build on a
// forward-migrated DB fails here with "no such column: role" or "no column
// named role".
func (s *Server) issueSession(credential, userAgent, remoteAddr string) (c sessionClaims, exp time.Time, err error) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return c, exp, errors.New("server closed")
	}
	now := s.now()
	end, err := sqlitex.ImmediateTransaction(s.db)
	if err != nil {
		return c, exp, &PersistenceSqlError{Op: "begin session issuance", Err: err}
	}
	defer end(&err)
	col := "role"
	if s.Era.UsesScopes() {
		col = "scopes"
	}
	var linkID, subject, raw string
	err = sqlitex.Execute(s.db, `SELECT id, subject, `+col+` FROM auth_pairing_links
		WHERE credential = ? AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
		&sqlitex.ExecOptions{Args: []any{credential, formatTime(now)}, ResultFunc: func(st *sqlite.Stmt) error {
			linkID, subject, raw = st.ColumnText(0), st.ColumnText(1), st.ColumnText(2)
			return nil
		}})
	if err != nil {
		return c, exp, &PersistenceSqlError{Op: "read pairing link", Err: err}
	}
	if linkID == "" {
		return c, exp, errInvalidCredential
	}
	if err = execSQL(s.db, `UPDATE auth_pairing_links SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL`,
		formatTime(now), linkID); err != nil {
		return c, exp, &PersistenceSqlError{Op: "consume pairing link", Err: err}
	}
	exp = now.Add(DefaultSessionLifetime)
	c = sessionClaims{V: 1, Kind: "session", SID: newUUID(), Sub: subject, Method: SessionMethod,
		IAT: now.UnixMilli(), EXP: exp.UnixMilli()}
	if s.Era.UsesScopes() {
		_ = json.Unmarshal([]byte(raw), &c.Scopes)
	} else {
		c.Role = raw
	}
	if err = execSQL(s.db, `INSERT INTO auth_sessions (session_id, subject, `+col+`, method, issued_at, expires_at,
		client_ip_address, client_user_agent, last_connected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		c.SID, subject, raw, SessionMethod, formatTime(now), formatTime(exp), remoteAddr, userAgent); err != nil {
		return c, exp, &PersistenceSqlError{Op: "insert session", Err: err}
	}
	return c, exp, nil
}

// liveSession is an authenticated session as the session check reports it.
type liveSession struct {
	token   string
	claims  sessionClaims
	grant   grant
	expires string
}

// lookupSession checks a token's signature and expiry, then that its
// session row exists, is not revoked and not expired.
func (s *Server) lookupSession(token string) (liveSession, bool, error) {
	now := s.now()
	c, err := verifyToken(s.key, token, now)
	if err != nil {
		return liveSession{}, false, nil
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return liveSession{}, false, errors.New("server closed")
	}
	col := "role"
	if s.Era.UsesScopes() {
		col = "scopes"
	}
	var found bool
	ls := liveSession{token: token, claims: c}
	err = sqlitex.Execute(s.db, `SELECT `+col+`, expires_at FROM auth_sessions
		WHERE session_id = ? AND revoked_at IS NULL AND expires_at > ?`,
		&sqlitex.ExecOptions{Args: []any{c.SID, formatTime(now)}, ResultFunc: func(st *sqlite.Stmt) error {
			found = true
			if s.Era.UsesScopes() {
				_ = json.Unmarshal([]byte(st.ColumnText(0)), &ls.grant.Scopes)
			} else {
				ls.grant.Role = st.ColumnText(0)
			}
			ls.expires = st.ColumnText(1)
			return nil
		}})
	if err != nil {
		return liveSession{}, false, &PersistenceSqlError{Op: "read session", Err: err}
	}
	return ls, found, nil
}

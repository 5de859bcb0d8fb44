package t3test

import (
	"encoding/json"
	"os"
	"path/filepath"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// SettingsFile is the server settings file beside the state database.
const SettingsFile = "settings.json"

// ContinuedMarker is the file a serve leaves in a thread's workspace when it
// continues that thread at start, standing in for the provider CLI that t3
// starts there.
func ContinuedMarker(workspace, threadID string) string {
	return filepath.Join(workspace, ".t3-continued-"+threadID)
}

// continueThreads does what t3's "continue threads after restarts" does at
// start, on by default (settings.json continueThreadsAfterServerUpdate): a
// thread whose turn or run was in flight is taken up again, its provider
// started in the thread's project workspace. The fake leaves
// ContinuedMarker there instead, when the workspace exists.
func (s *Server) continueThreads() {
	if !continueSetting(s.BaseDir) {
		return
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	active := `SELECT s.thread_id, p.workspace_root FROM projection_thread_sessions s
		JOIN projection_threads t ON t.thread_id = s.thread_id JOIN projection_projects p ON p.project_id = t.project_id
		WHERE s.active_turn_id IS NOT NULL`
	if ok, _ := hasTable(s.db, "orchestration_v2_projection_runs"); ok {
		active = `SELECT DISTINCT r.thread_id, p.workspace_root FROM orchestration_v2_projection_runs r
			JOIN projection_threads t ON t.thread_id = r.thread_id JOIN projection_projects p ON p.project_id = t.project_id
			WHERE r.status IN ('preparing','starting','running','waiting')`
	}
	_ = sqlitex.Execute(s.db, active, &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		id, ws := st.ColumnText(0), st.ColumnText(1)
		s.log.Info("Continuing thread after restart", "thread", id, "workspace", ws)
		if fi, err := os.Stat(ws); err == nil && fi.IsDir() {
			_ = os.WriteFile(ContinuedMarker(ws, id), nil, 0o644)
		}
		return nil
	}})
}

func continueSetting(baseDir string) bool {
	b, err := os.ReadFile(filepath.Join(UserDataDir(baseDir), SettingsFile))
	if err != nil {
		return true
	}
	var st struct {
		Continue *bool `json:"continueThreadsAfterServerUpdate"`
	}
	if json.Unmarshal(b, &st) != nil || st.Continue == nil {
		return true
	}
	return *st.Continue
}

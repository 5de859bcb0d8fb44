package t3test

import "strconv"

// migration is one step of the state database's schema, recorded in the
// effect_sql_migrations ledger as (ID, Name).
type migration struct {
	ID   int
	Name string
	SQL  string
}

// Label is how t3 names a migration in its logs: "31_AuthAuthorizationScopes".
func (m migration) Label() string { return strconv.Itoa(m.ID) + "_" + m.Name }

// authPairingLinksRole and authSessionsRole are the auth tables as builds
// before migration 31 know them.
const authPairingLinksRole = `
CREATE TABLE auth_pairing_links (
  id TEXT PRIMARY KEY NOT NULL,
  credential TEXT NOT NULL UNIQUE,
  method TEXT NOT NULL,
  role TEXT NOT NULL,
  subject TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  consumed_at TEXT,
  revoked_at TEXT,
  label TEXT
);`

const authSessionsRole = `
CREATE TABLE auth_sessions (
  session_id TEXT PRIMARY KEY NOT NULL,
  subject TEXT NOT NULL,
  role TEXT NOT NULL,
  method TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked_at TEXT
);`

// schema is every migration any build knows, in order. An era's build knows
// a prefix of it (see migrationsFor).
var schema = [...]migration{
	{1, "OrchestrationEvents", `
CREATE TABLE orchestration_events (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  aggregate_kind TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  stream_version INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  occurred_at TEXT NOT NULL,
  payload_json TEXT NOT NULL
);
CREATE INDEX idx_orchestration_events_stream ON orchestration_events(aggregate_kind, stream_id, stream_version);`},
	{2, "OrchestrationCommandReceipts", `
CREATE TABLE orchestration_command_receipts (
  command_id TEXT PRIMARY KEY NOT NULL,
  aggregate_kind TEXT NOT NULL,
  aggregate_id TEXT NOT NULL,
  accepted_at TEXT NOT NULL,
  result_sequence INTEGER NOT NULL,
  status TEXT NOT NULL,
  error TEXT
);`},
	{3, "CheckpointDiffBlobs", `
CREATE TABLE checkpoint_diff_blobs (
  thread_id TEXT NOT NULL,
  from_turn_count INTEGER NOT NULL,
  to_turn_count INTEGER NOT NULL,
  diff TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (thread_id, from_turn_count, to_turn_count)
);`},
	{4, "ProviderSessionRuntime", `
CREATE TABLE provider_session_runtime (
  thread_id TEXT PRIMARY KEY NOT NULL,
  provider_name TEXT NOT NULL,
  adapter_key TEXT NOT NULL,
  status TEXT NOT NULL,
  last_seen_at TEXT NOT NULL,
  resume_cursor_json TEXT,
  runtime_payload_json TEXT
);`},
	{5, "Projections", `
CREATE TABLE projection_projects (
  project_id TEXT PRIMARY KEY NOT NULL,
  title TEXT NOT NULL,
  workspace_root TEXT NOT NULL,
  default_model TEXT,
  scripts_json TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT
);
CREATE TABLE projection_threads (
  thread_id TEXT PRIMARY KEY NOT NULL,
  project_id TEXT NOT NULL,
  title TEXT NOT NULL,
  model TEXT NOT NULL,
  branch TEXT,
  worktree_path TEXT,
  latest_turn_id TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT
);
CREATE TABLE projection_thread_messages (
  message_id TEXT PRIMARY KEY NOT NULL,
  thread_id TEXT NOT NULL,
  turn_id TEXT,
  role TEXT NOT NULL,
  text TEXT NOT NULL,
  is_streaming INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE projection_thread_activities (
  activity_id TEXT PRIMARY KEY NOT NULL,
  thread_id TEXT NOT NULL,
  turn_id TEXT,
  tone TEXT NOT NULL,
  kind TEXT NOT NULL,
  summary TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE projection_thread_sessions (
  thread_id TEXT PRIMARY KEY NOT NULL,
  status TEXT NOT NULL,
  provider_name TEXT,
  provider_session_id TEXT,
  provider_thread_id TEXT,
  active_turn_id TEXT,
  last_error TEXT,
  updated_at TEXT NOT NULL
);
CREATE TABLE projection_state (
  projector TEXT PRIMARY KEY NOT NULL,
  last_applied_sequence INTEGER NOT NULL,
  updated_at TEXT NOT NULL
);`},
	{6, "ProjectionThreadMessagesThreadIndex", `CREATE INDEX idx_projection_thread_messages_thread ON projection_thread_messages(thread_id, created_at);`},
	{7, "ProjectionThreadActivitiesThreadIndex", `CREATE INDEX idx_projection_thread_activities_thread ON projection_thread_activities(thread_id, created_at);`},
	{8, "ProjectionTurns", `
CREATE TABLE projection_turns (
  row_id INTEGER PRIMARY KEY AUTOINCREMENT,
  thread_id TEXT NOT NULL,
  turn_id TEXT,
  pending_message_id TEXT,
  assistant_message_id TEXT,
  state TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  started_at TEXT,
  completed_at TEXT,
  checkpoint_turn_count INTEGER,
  checkpoint_ref TEXT,
  checkpoint_status TEXT,
  checkpoint_files_json TEXT NOT NULL DEFAULT '[]',
  UNIQUE (thread_id, turn_id)
);`},
	{9, "ProjectionPendingApprovals", `
CREATE TABLE projection_pending_approvals (
  request_id TEXT PRIMARY KEY NOT NULL,
  thread_id TEXT NOT NULL,
  turn_id TEXT,
  status TEXT NOT NULL,
  decision TEXT,
  created_at TEXT NOT NULL,
  resolved_at TEXT
);`},
	{10, "ProjectionThreadsInteractionMode", `ALTER TABLE projection_threads ADD COLUMN interaction_mode TEXT NOT NULL DEFAULT 'default';`},
	{11, "OrchestrationEventsCommandId", `ALTER TABLE orchestration_events ADD COLUMN command_id TEXT;`},
	{12, "OrchestrationEventsCausation", `ALTER TABLE orchestration_events ADD COLUMN causation_event_id TEXT;`},
	{13, "OrchestrationEventsCorrelation", `ALTER TABLE orchestration_events ADD COLUMN correlation_id TEXT;`},
	{14, "ProjectionThreadSessionsRuntimeMode", `ALTER TABLE projection_thread_sessions ADD COLUMN runtime_mode TEXT NOT NULL DEFAULT 'full-access';`},
	{15, "ProjectionThreadsRuntimeMode", `ALTER TABLE projection_threads ADD COLUMN runtime_mode TEXT NOT NULL DEFAULT 'full-access';`},
	{16, "ProjectionTurnsSourceProposedPlan", `ALTER TABLE projection_turns ADD COLUMN source_proposed_plan_json TEXT;`},
	{17, "ProjectionThreadProposedPlans", `
CREATE TABLE projection_thread_proposed_plans (
  plan_id TEXT PRIMARY KEY NOT NULL,
  thread_id TEXT NOT NULL,
  turn_id TEXT,
  plan_markdown TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);`},
	{18, "ProjectionThreadMessageAttachments", `ALTER TABLE projection_thread_messages ADD COLUMN attachments_json TEXT;`},
	{19, "ProjectionThreadActivitySequence", `ALTER TABLE projection_thread_activities ADD COLUMN sequence INTEGER;`},
	{20, "ProjectionThreadsArchivedAt", `ALTER TABLE projection_threads ADD COLUMN archived_at TEXT;`},
	{21, "AuthPairingLinks", authPairingLinksRole},
	{22, "AuthSessions", authSessionsRole},
	{23, "AuthSessionClientMetadata", `
ALTER TABLE auth_sessions ADD COLUMN client_label TEXT;
ALTER TABLE auth_sessions ADD COLUMN client_ip_address TEXT;
ALTER TABLE auth_sessions ADD COLUMN client_user_agent TEXT;
ALTER TABLE auth_sessions ADD COLUMN client_device_type TEXT;
ALTER TABLE auth_sessions ADD COLUMN client_os TEXT;
ALTER TABLE auth_sessions ADD COLUMN client_browser TEXT;`},
	{24, "AuthSessionLastConnectedAt", `ALTER TABLE auth_sessions ADD COLUMN last_connected_at TEXT;`},
	{25, "ProjectionProjectsDefaultModelSelection", `ALTER TABLE projection_projects ADD COLUMN default_model_selection_json TEXT;`},
	{26, "ProjectionThreadsModelSelection", `ALTER TABLE projection_threads ADD COLUMN model_selection_json TEXT;`},
	{27, "ProjectionThreadSessionsLastErrorIndex", `CREATE INDEX idx_projection_thread_sessions_status ON projection_thread_sessions(status);`},
	{28, "ProjectionThreadSessionsProviderInstance", `ALTER TABLE projection_thread_sessions ADD COLUMN provider_instance_id TEXT;`},
	{29, "ProjectionTurnsThreadIndex", `CREATE INDEX idx_projection_turns_thread ON projection_turns(thread_id, requested_at);`},
	{30, "AuthPairingLinksLabelBackfill", `UPDATE auth_pairing_links SET label = NULL WHERE label = '';`},
	// 31 drops and recreates both auth tables: every session and pairing link
	// is gone afterwards, which is what makes every old cookie read dead.
	{31, "AuthAuthorizationScopes", `
DROP TABLE auth_pairing_links;
DROP TABLE auth_sessions;
CREATE TABLE auth_pairing_links (
  id TEXT PRIMARY KEY NOT NULL,
  credential TEXT NOT NULL UNIQUE,
  method TEXT NOT NULL,
  scopes TEXT NOT NULL,
  subject TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  consumed_at TEXT,
  revoked_at TEXT,
  label TEXT
);
CREATE TABLE auth_sessions (
  session_id TEXT PRIMARY KEY NOT NULL,
  subject TEXT NOT NULL,
  scopes TEXT NOT NULL,
  method TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked_at TEXT,
  client_label TEXT,
  client_ip_address TEXT,
  client_user_agent TEXT,
  client_device_type TEXT,
  client_os TEXT,
  client_browser TEXT,
  last_connected_at TEXT
);`},
	{32, "AuthPairingProofKeyThumbprint", `ALTER TABLE auth_pairing_links ADD COLUMN proof_key_thumbprint TEXT;`},
	{33, "OrchestrationV2ProjectionRuns", `
CREATE TABLE orchestration_v2_projection_runs (
  run_id TEXT PRIMARY KEY NOT NULL,
  thread_id TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  provider TEXT NOT NULL,
  provider_thread_id TEXT,
  status TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  completed_at TEXT,
  payload_json TEXT NOT NULL,
  provider_instance_id TEXT
);`},
	{34, "OrchestrationV2ProjectionRunsStatusIndex", `CREATE INDEX idx_orchestration_v2_projection_runs_status ON orchestration_v2_projection_runs(status, thread_id);`},
}

// migrationsFor is the prefix of schema an era's build knows.
func migrationsFor(e Era) []migration {
	n := 0
	switch e {
	case EraA, EraB:
		n = 30
	case EraC, EraD:
		n = 32
	case EraE:
		n = 34
	}
	return schema[:n]
}

package systemd_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/systemd"
	"github.com/t3fleet/t3fleet/rollout"
)

// fakeClient is an in-memory systemd: units by name, a scripted job result.
type fakeClient struct {
	mu        sync.Mutex
	calls     []string
	list      []sddbus.UnitStatus
	props     map[string]map[string]any
	svc       map[string]map[string]any
	jobResult string // "" means "done"
	noResult  bool   // never deliver a job result
	gone      bool   // the connection is lost: Connected reports false
	err       error
}

func (f *fakeClient) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeClient) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeClient) ListUnitsByPatternsContext(_ context.Context, _, patterns []string) ([]sddbus.UnitStatus, error) {
	f.record("list " + patterns[0])
	return f.list, f.err
}

func (f *fakeClient) job(op, name string, ch chan<- string) (int, error) {
	f.record(op + " " + name)
	if f.err != nil {
		return 0, f.err
	}
	if !f.noResult {
		res := f.jobResult
		if res == "" {
			res = "done"
		}
		ch <- res
	}
	return 1, nil
}

func (f *fakeClient) StartUnitContext(_ context.Context, name, _ string, ch chan<- string) (int, error) {
	return f.job("start", name, ch)
}

func (f *fakeClient) StopUnitContext(_ context.Context, name, _ string, ch chan<- string) (int, error) {
	return f.job("stop", name, ch)
}

func (f *fakeClient) RestartUnitContext(_ context.Context, name, _ string, ch chan<- string) (int, error) {
	return f.job("restart", name, ch)
}

func (f *fakeClient) GetUnitPropertiesContext(_ context.Context, unit string) (map[string]any, error) {
	f.record("props " + unit)
	if p, ok := f.props[unit]; ok {
		return p, nil
	}
	return map[string]any{"LoadState": "loaded", "ActiveState": "active"}, f.err
}

func (f *fakeClient) GetUnitTypePropertiesContext(_ context.Context, unit, typ string) (map[string]any, error) {
	f.record("props " + typ + " " + unit)
	return f.svc[unit], f.err
}

func (f *fakeClient) ResetFailedUnitContext(_ context.Context, name string) error {
	f.record("reset-failed " + name)
	return f.err
}

func (f *fakeClient) Close() {}

func (f *fakeClient) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.gone
}

func newManager(t *testing.T, f *fakeClient, opts systemd.Options) *systemd.Manager {
	t.Helper()
	m, err := systemd.New(f, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestHostileUnitsNeverReachDBus(t *testing.T) {
	cases := []rollout.Unit{
		{User: "../etc"},
		{User: "emil; rm -rf /"},
		{User: "Emil"},
		{User: "-emil"},
		{User: "emil\n"},
		{User: "emil*"},
		{User: "averyveryveryverylongusernamethatis33"},
		{Name: "t3-serve@../x.service"},
		{Name: "t3-serve@*.service"},
		{Name: "sshd.service"},
		{Name: "t3-serve@.service"},
		{},
		{User: "emil", Name: "sshd.service"},
		{User: "emil", Name: "t3-serve@bob.service"},
	}
	ops := map[string]func(m *systemd.Manager, u rollout.Unit) error{
		"start":   func(m *systemd.Manager, u rollout.Unit) error { return m.Start(context.Background(), u) },
		"stop":    func(m *systemd.Manager, u rollout.Unit) error { return m.Stop(context.Background(), u) },
		"restart": func(m *systemd.Manager, u rollout.Unit) error { return m.Restart(context.Background(), u) },
		"status": func(m *systemd.Manager, u rollout.Unit) error {
			_, err := m.Status(context.Background(), u)
			return err
		},
		"control group": func(m *systemd.Manager, u rollout.Unit) error {
			_, err := m.ControlGroup(context.Background(), u)
			return err
		},
	}
	for _, u := range cases {
		for op, call := range ops {
			f := &fakeClient{}
			m := newManager(t, f, systemd.Options{})
			err := call(m, u)
			require.Error(t, err, "%s %+v", op, u)
			assert.True(t, errors.Is(err, t3fleet.ErrInvalidName) || errors.Is(err, systemd.ErrNotInstance), "%s %+v: %v", op, u, err)
			assert.Empty(t, f.Calls(), "%s %+v reached D-Bus", op, u)
		}
	}
}

func TestUnitNames(t *testing.T) {
	cases := []struct {
		template string
		user     string
		want     string
		wantErr  error
	}{
		{"", "emil", "t3-serve@emil.service", nil},
		{"web@.service", "a_b-c", "web@a_b-c.service", nil},
		{"web@.service", "A", "", t3fleet.ErrInvalidName},
	}
	for _, c := range cases {
		m := newManager(t, &fakeClient{}, systemd.Options{Template: c.template})
		got, err := m.UnitName(c.user)
		if c.wantErr != nil {
			require.ErrorIs(t, err, c.wantErr)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, c.want, got)
	}
}

func TestBadTemplates(t *testing.T) {
	for _, tpl := range []string{"t3-serve.service", "t3-serve@emil.service", "@.service", "t3-serve@.", "t3*@.service", "a@.b.c"} {
		_, err := systemd.New(&fakeClient{}, systemd.Options{Template: tpl})
		require.ErrorIs(t, err, systemd.ErrBadTemplate, tpl)
	}
}

func TestUnitsMapsInstancesToUsers(t *testing.T) {
	f := &fakeClient{list: []sddbus.UnitStatus{
		{Name: "t3-serve@zoe.service", LoadState: "loaded", ActiveState: "active", SubState: "running"},
		{Name: "t3-serve@emil.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed"},
		{Name: "t3-serve@ghost.service", LoadState: "not-found", ActiveState: "inactive"},
		{Name: `t3-serve@x\x2fy.service`, LoadState: "loaded", ActiveState: "active"},
		{Name: "other@emil.service", LoadState: "loaded", ActiveState: "active"},
	}}
	m := newManager(t, f, systemd.Options{})
	units, err := m.Units(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []rollout.Unit{
		{Name: "t3-serve@emil.service", User: "emil", Fields: map[string]string{"ActiveState": "failed", "SubState": "failed"}},
		{Name: "t3-serve@zoe.service", User: "zoe", Fields: map[string]string{"ActiveState": "active", "SubState": "running"}},
	}, units)
	assert.Equal(t, []string{"list t3-serve@*.service"}, f.Calls())
}

func TestJobs(t *testing.T) {
	cases := []struct {
		name       string
		op         string
		jobResult  string
		after      string // ActiveState after the job
		wantResult string // "" means no error
		wantState  string
	}{
		{"start done", "start", "done", "active", "", ""},
		{"restart done", "restart", "done", "activating", "", ""},
		{"stop done", "stop", "done", "failed", "", ""},
		{"start failed", "start", "failed", "failed", "failed", ""},
		{"restart timeout", "restart", "timeout", "", "timeout", ""},
		{"stop canceled", "stop", "canceled", "", "canceled", ""},
		{"start dependency", "start", "dependency", "", "dependency", ""},
		{"start done but failed", "start", "done", "failed", "done", "failed"},
		{"restart done but failed", "restart", "done", "failed", "done", "failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeClient{jobResult: c.jobResult, props: map[string]map[string]any{
				"t3-serve@emil.service": {"LoadState": "loaded", "ActiveState": c.after},
			}}
			m := newManager(t, f, systemd.Options{})
			u := rollout.Unit{User: "emil"}
			var err error
			switch c.op {
			case "start":
				err = m.Start(context.Background(), u)
			case "stop":
				err = m.Stop(context.Background(), u)
			case "restart":
				err = m.Restart(context.Background(), u)
			}
			assert.Contains(t, f.Calls(), c.op+" t3-serve@emil.service")
			if c.wantResult == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, systemd.ErrJobFailed)
			require.NotErrorIs(t, err, rollout.ErrUnitManager, "a job's own result may be the build's doing")
			var je *systemd.JobError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, systemd.JobError{Op: c.op, Unit: "t3-serve@emil.service", Result: c.wantResult, State: c.wantState}, *je)
		})
	}
}

// A job "done" says the unit reached its goal once, not that it still runs:
// a condition that failed leaves it inactive, a process that crashed at once
// leaves it dead, stopping or waiting to be restarted.
func TestJobDoneButNotRunning(t *testing.T) {
	cases := []struct {
		active, sub string
		wantErr     bool
	}{
		{"active", "running", false},
		{"reloading", "reload", false},
		{"inactive", "dead", true},
		{"deactivating", "stop-post", true},
		{"activating", "auto-restart", true},
		{"activating", "auto-restart-queued", true},
	}
	for _, c := range cases {
		for _, op := range []string{"start", "restart"} {
			t.Run(op+" "+c.active+"/"+c.sub, func(t *testing.T) {
				const name = "t3-serve@emil.service"
				f := &fakeClient{props: map[string]map[string]any{
					name: {"LoadState": "loaded", "ActiveState": c.active, "SubState": c.sub},
				}}
				m := newManager(t, f, systemd.Options{})
				call := m.Start
				if op == "restart" {
					call = m.Restart
				}
				err := call(context.Background(), rollout.Unit{User: "emil"})
				if !c.wantErr {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, systemd.ErrJobFailed)
				var je *systemd.JobError
				require.ErrorAs(t, err, &je)
				assert.Equal(t, systemd.JobError{Op: op, Unit: name, Result: "done", State: c.active, SubState: c.sub}, *je)
			})
		}
	}
}

func TestJobHonoursContext(t *testing.T) {
	f := &fakeClient{noResult: true}
	m := newManager(t, f, systemd.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := m.Restart(ctx, rollout.Unit{User: "emil"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A connection lost while a job runs never delivers its result: the wait
// must end with the manager's fault, not hold the caller until its ctx ends
// (the engine's run has no deadline).
func TestJobEndsWhenTheConnectionIsLost(t *testing.T) {
	f := &fakeClient{noResult: true, gone: true}
	m := newManager(t, f, systemd.Options{ConnCheckInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, op := range []func(context.Context, rollout.Unit) error{m.Start, m.Restart, m.Stop} {
		err := op(ctx, rollout.Unit{User: "emil"})
		require.ErrorIs(t, err, systemd.ErrDisconnected)
		require.ErrorIs(t, err, rollout.ErrUnitManager, "no build is to blame for a lost connection")
	}
}

func TestDBusErrorsAreWrapped(t *testing.T) {
	boom := errors.New("connection reset")
	f := &fakeClient{err: boom}
	m := newManager(t, f, systemd.Options{})
	err := m.Start(context.Background(), rollout.Unit{User: "emil"})
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "start t3-serve@emil.service")
	for _, op := range []func(context.Context, rollout.Unit) error{m.Start, m.Restart, m.Stop} {
		require.ErrorIs(t, op(context.Background(), rollout.Unit{User: "emil"}), rollout.ErrUnitManager,
			"the bus failing is the manager's, not the build's")
	}
	_, err = m.Units(context.Background())
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, err, rollout.ErrUnitManager)
	_, err = m.Status(context.Background(), rollout.Unit{User: "emil"})
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, err, rollout.ErrUnitManager, "status says the same of the bus as the jobs")
}

func TestStatus(t *testing.T) {
	since := time.Date(2026, 11, 23, 20, 0, 0, 123456000, time.UTC)
	cases := []struct {
		name    string
		props   map[string]any
		svc     map[string]any
		want    rollout.UnitStatus
		wantErr error
	}{
		{
			"running",
			map[string]any{"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "ActiveEnterTimestamp": uint64(since.UnixMicro())},
			map[string]any{"MainPID": uint32(4242)},
			rollout.UnitStatus{Active: true, State: "active", MainPID: 4242, ActiveSince: since},
			nil,
		},
		{
			"stopped keeps no timestamp",
			map[string]any{"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead", "ActiveEnterTimestamp": uint64(since.UnixMicro())},
			map[string]any{"MainPID": uint32(0)},
			rollout.UnitStatus{State: "inactive"},
			nil,
		},
		{
			"failed",
			map[string]any{"LoadState": "loaded", "ActiveState": "failed", "SubState": "failed"},
			map[string]any{"MainPID": uint32(0)},
			rollout.UnitStatus{State: "failed"},
			nil,
		},
		{
			"activating",
			map[string]any{"LoadState": "loaded", "ActiveState": "activating", "ActiveEnterTimestamp": uint64(0)},
			map[string]any{"MainPID": uint32(7)},
			rollout.UnitStatus{State: "activating", MainPID: 7},
			nil,
		},
		{
			"no unit file",
			map[string]any{"LoadState": "not-found", "ActiveState": "inactive"},
			nil,
			rollout.UnitStatus{State: "inactive"},
			systemd.ErrUnitNotFound,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeClient{
				props: map[string]map[string]any{"t3-serve@emil.service": c.props},
				svc:   map[string]map[string]any{"t3-serve@emil.service": c.svc},
			}
			m := newManager(t, f, systemd.Options{})
			got, err := m.Status(context.Background(), rollout.Unit{Name: "t3-serve@emil.service"})
			if c.wantErr != nil {
				require.ErrorIs(t, err, c.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.True(t, c.want.ActiveSince.Equal(got.ActiveSince), "ActiveSince %v, want %v", got.ActiveSince, c.want.ActiveSince)
			got.ActiveSince, c.want.ActiveSince = time.Time{}, time.Time{}
			assert.Equal(t, c.want, got)
		})
	}
}

func TestControlGroup(t *testing.T) {
	const cg = `/system.slice/system-t3\x2dserve.slice/t3-serve@emil.service`
	boom := errors.New("connection reset")
	cases := []struct {
		name     string
		template string
		svc      map[string]any
		err      error
		want     string
		wantErr  error
		calls    []string
	}{
		{"running", "", map[string]any{"ControlGroup": cg, "MainPID": uint32(42)}, nil, cg, nil,
			[]string{"props Service t3-serve@emil.service"}},
		{"stopped: no cgroup", "", map[string]any{"ControlGroup": "", "MainPID": uint32(0)}, nil, "", nil,
			[]string{"props Service t3-serve@emil.service"}},
		{"socket template", "t3-serve@.socket", map[string]any{"ControlGroup": "/app.slice/t3-serve@emil.socket"}, nil,
			"/app.slice/t3-serve@emil.socket", nil, []string{"props Socket t3-serve@emil.socket"}},
		{"target template: no processes", "t3-serve@.target", nil, nil, "", nil, nil},
		{"bus gone", "", nil, boom, "", rollout.ErrUnitManager, []string{"props Service t3-serve@emil.service"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeClient{err: c.err, svc: map[string]map[string]any{
				"t3-serve@emil.service": c.svc, "t3-serve@emil.socket": c.svc,
			}}
			m := newManager(t, f, systemd.Options{Template: c.template})
			got, err := m.ControlGroup(context.Background(), rollout.Unit{User: "emil"})
			if c.wantErr != nil {
				require.ErrorIs(t, err, c.wantErr)
				require.ErrorIs(t, err, c.err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.calls, f.Calls())
		})
	}
}

func TestFailedUnitIsResetBeforeStart(t *testing.T) {
	cases := []struct {
		name  string
		state string
		keep  bool
		op    string
		want  []string
	}{
		{"failed, restart", "failed", false, "restart", []string{"props u", "reset-failed u", "restart u", "props u"}},
		{"failed, start", "failed", false, "start", []string{"props u", "reset-failed u", "start u", "props u"}},
		{"failed, KeepFailed", "failed", true, "restart", []string{"restart u", "props u"}},
		{"active, restart", "active", false, "restart", []string{"props u", "restart u", "props u"}},
		{"failed, stop", "failed", false, "stop", []string{"stop u"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const name = "t3-serve@emil.service"
			f := &fakeClient{props: map[string]map[string]any{name: {"LoadState": "loaded", "ActiveState": c.state}}}
			m := newManager(t, f, systemd.Options{KeepFailed: c.keep})
			u := rollout.Unit{User: "emil"}
			switch c.op {
			case "start":
				_ = m.Start(context.Background(), u)
			case "restart":
				_ = m.Restart(context.Background(), u)
			case "stop":
				_ = m.Stop(context.Background(), u)
			}
			var got []string
			for _, call := range f.Calls() {
				got = append(got, strings.Replace(call, name, "u", 1))
			}
			assert.Equal(t, c.want, got)
		})
	}
}

package pairing_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebSocketPassThrough: a WebSocket upgrade is proxied (never a 302,
// even with a dead cookie), messages flow both ways, and open and close are
// logged with duration and which side hung up.
func TestWebSocketPassThrough(t *testing.T) {
	tests := []struct {
		name     string
		cookie   string
		hangUpBy string
	}{
		{"client hangs up", "live", "client"},
		{"instance hangs up", "live", "upstream"},
		{"dead cookie still proxies", "dead", "client"},
		{"no cookie still proxies", "", "client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeInstance(t, "ana", bs, "t3_session")
			d := newDispatch(t, map[string]*fakeInstance{"ana": f}, nil)
			hdr := http.Header{pairing.DefaultUserHeader: {"ana"}}
			switch tc.cookie {
			case "live":
				resp, _ := d.get("ana", "/", pageLoad, nil)
				require.Equal(t, http.StatusFound, resp.StatusCode)
				hdr.Set("Cookie", sessionCookies(resp)[0].String())
			case "dead":
				hdr.Set("Cookie", "t3_session=dead")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.url, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
			require.NoError(t, err)
			assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			defer c.CloseNow()

			require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hello")))
			_, msg, err := c.Read(ctx)
			require.NoError(t, err)
			assert.Equal(t, "ana:hello", string(msg))
			eventually(t, func() bool { return d.metricValue(pairing.MetricWebSocketsOpen, nil) == 1 }, "gauge at 1")
			assert.Contains(t, d.logs.String(), `msg="ws open" user=ana`)

			if tc.hangUpBy == "upstream" {
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bye")))
				_, _, err = c.Read(ctx)
				assert.Error(t, err)
			} else {
				require.NoError(t, c.Close(websocket.StatusNormalClosure, "done"))
			}
			eventually(t, func() bool { return strings.Contains(d.logs.String(), `msg="ws close"`) }, "ws close logged")
			assert.Contains(t, d.logs.String(), "closed_by="+tc.hangUpBy)
			assert.Regexp(t, `msg="ws close" user=ana duration=[0-9.]+m?s`, d.logs.String())
			eventually(t, func() bool { return d.metricValue(pairing.MetricWebSocketsOpen, nil) == 0 }, "gauge back at 0")
			assert.Equal(t, 1.0, d.metricValue(pairing.MetricProxied, map[string]string{"kind": "websocket"}))
		})
	}
}

// An instance that switches to another protocol than the one the browser
// asked for gets a 502 from net/http's ReverseProxy; the dispatch must not
// have counted and logged it as an open WebSocket (the gauge stayed up for
// good, "ws open" without its close) nor keep its connection.
func TestWebSocketUpgradeToAnotherProtocolIsNotCounted(t *testing.T) {
	inst := newScriptedInstance(t, map[string]string{
		"/ws": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
	})
	ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{}, nil)
	raw := "GET /ws HTTP/1.1\r\nHost: t3.example\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\n" +
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	resps := rawExchange(t, ft.url, raw, "GET")
	require.Equal(t, http.StatusBadGateway, resps[0].StatusCode)
	require.Zero(t, gatherValue(t, ft.reg, pairing.MetricWebSocketsOpen, nil), "no WebSocket is open")
}

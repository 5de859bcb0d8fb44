package pairing_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// An event stream of unknown length reaches the browser event by event, not
// when the instance ends it.
func TestProxyStreamsEventStream(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		<-release
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: up.URL}}, nil, pairing.HandlerOptions{})
	url := startFront(t, h, pairing.FrontOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	req.Header.Set(pairing.DefaultUserHeader, "ana")
	req.Header.Set("Sec-Fetch-Dest", "empty")
	req.AddCookie(&http.Cookie{Name: "t3_session", Value: "x"})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: one\n", line)
}

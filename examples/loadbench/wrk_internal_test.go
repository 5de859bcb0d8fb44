package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const wrkReport = `Running 5s test @ http://127.0.0.1:40000/assets/app.js
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms    1.10ms  22.01ms   90.12%
    Req/Sec    10.71k     1.20k   13.40k    71.00%
  106584 requests in 5.00s, 20.43MB read
Requests/sec:  21311.52
Transfer/sec:      4.09MB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name      string
		out       string
		rate      float64
		requests  int64
		non2xx    int64
		socketErr bool
		wantErr   bool
	}{
		{name: "clean", out: wrkReport, rate: 21311.52, requests: 106584},
		{name: "non-2xx", out: wrkReport + "  Non-2xx or 3xx responses: 17\n", rate: 21311.52, requests: 106584, non2xx: 17},
		{name: "socket errors", out: wrkReport + "  Socket errors: connect 0, read 3, write 0, timeout 0\n", rate: 21311.52, requests: 106584, socketErr: true},
		{name: "no rate", out: "unable to connect to 127.0.0.1:1 Connection refused\n", wantErr: true},
		{name: "garbled rate", out: "  1 requests in 1.00s, 1KB read\nRequests/sec: lots\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tt.rate, got.RatePerSec, 0.001)
			require.Equal(t, tt.requests, got.Requests)
			require.Equal(t, tt.non2xx, got.Non2xx3xx)
			require.Equal(t, tt.socketErr, got.SocketError != "")
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		require.InDelta(t, tt.want, median(tt.in), 1e-9, "%v", tt.in)
	}
}

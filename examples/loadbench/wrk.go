package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DefaultWrkPath is where Debian's wrk package installs the load generator.
const DefaultWrkPath = "/usr/bin/wrk"

// ErrNoWrk is returned when the wrk binary cannot be found.
var ErrNoWrk = errors.New("wrk not found (Debian: apt-get install -y wrk)")

// ErrBadResponses is wrapped when a load run saw errors or non-2xx/3xx answers:
// its rate would measure the failure path, not the one asked for.
var ErrBadResponses = errors.New("load run saw failed requests")

// wrk runs one load generator pass: keep-alive (wrk's default), a fixed
// duration, connections and threads, and the request headers of one path.
type wrk struct {
	Path        string
	Duration    time.Duration
	Connections int
	Threads     int
	// ServerCPU, when set, returns the CPU time used so far by the servers
	// under test (the dispatch and the instance), so a pass can tell what
	// each request cost in CPU, whatever else the machine was doing.
	ServerCPU func() time.Duration
}

// wrkResult is what one wrk pass reports.
type wrkResult struct {
	Requests    int64
	RatePerSec  float64
	Non2xx3xx   int64
	SocketError string // the raw "Socket errors:" line, empty when none
	WrkCPU      time.Duration
	ServerCPU   time.Duration
	Output      string // the whole report, for failures
}

// lookWrk finds wrk: the explicit path when given (and only it), else PATH,
// then DefaultWrkPath.
func lookWrk(explicit string) (string, error) {
	candidates := []string{"wrk", DefaultWrkPath}
	if explicit != "" {
		candidates = []string{explicit}
	}
	for _, p := range candidates {
		if found, err := exec.LookPath(p); err == nil {
			return found, nil
		}
	}
	if explicit != "" {
		return "", fmt.Errorf("%w at %s", ErrNoWrk, explicit)
	}
	return "", ErrNoWrk
}

// args builds wrk's argv (no shell: header values go in as single elements).
func (w wrk) args(url string, headers []string) []string {
	a := []string{
		"-t", strconv.Itoa(w.Threads),
		"-c", strconv.Itoa(w.Connections),
		"-d", fmt.Sprintf("%ds", max(1, int(w.Duration.Round(time.Second)/time.Second))),
		"--timeout", "5s",
	}
	for _, h := range headers {
		a = append(a, "-H", h)
	}
	return append(a, url)
}

// Run runs one pass against url with headers ("Name: value").
func (w wrk) Run(ctx context.Context, url string, headers []string) (wrkResult, error) {
	cmd := exec.CommandContext(ctx, w.Path, w.args(url, headers)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var before time.Duration
	if w.ServerCPU != nil {
		before = w.ServerCPU()
	}
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s%s", url, err, out.String(), errOut.String())
	}
	res, err := parseWrk(out.String())
	if err != nil {
		return res, fmt.Errorf("wrk %s: %w", url, err)
	}
	res.WrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if w.ServerCPU != nil {
		res.ServerCPU = w.ServerCPU() - before
	}
	if res.Non2xx3xx > 0 || res.SocketError != "" {
		return res, fmt.Errorf("wrk %s: %w: non-2xx/3xx=%d %s", url, ErrBadResponses, res.Non2xx3xx, res.SocketError)
	}
	return res, nil
}

// parseWrk reads wrk's default text report.
func parseWrk(out string) (wrkResult, error) {
	res := wrkResult{Output: out}
	var haveRate, haveCount bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return res, fmt.Errorf("parse %q: %w", line, err)
			}
			res.RatePerSec, haveRate = v, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return res, fmt.Errorf("parse %q: %w", line, err)
			}
			res.Non2xx3xx = v
		case strings.HasPrefix(line, "Socket errors:"):
			res.SocketError = line
		case strings.Contains(line, " requests in "):
			v, err := strconv.ParseInt(strings.Fields(line)[0], 10, 64)
			if err != nil {
				return res, fmt.Errorf("parse %q: %w", line, err)
			}
			res.Requests, haveCount = v, true
		}
	}
	if !haveRate || !haveCount {
		return res, fmt.Errorf("no Requests/sec or request count in wrk output: %q", out)
	}
	return res, nil
}

// CPUPerRequest is the CPU time the whole pass (load generator and servers)
// spent per request; 0 when unknown.
func (r wrkResult) CPUPerRequest() time.Duration {
	if r.Requests == 0 || r.ServerCPU == 0 {
		return 0
	}
	return (r.WrkCPU + r.ServerCPU) / time.Duration(r.Requests)
}

// cutHeader splits "Name: value".
func cutHeader(h string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(h, ":")
	return strings.TrimSpace(name), strings.TrimSpace(value), ok
}

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// path is one request shape measured through the proxy and directly.
type path struct {
	Name    string
	Proxy   string   // URL through the dispatch
	Direct  string   // the same resource on the upstream
	Headers []string // "Name: value"; Cookie included where the path needs one
	Target  float64  // the ratio proxy/direct the path should reach
}

// figure is the outcome of the runs of one path.
type figure struct {
	Path        path
	Proxy       float64   // median req/s through the proxy
	Direct      float64   // median req/s directly
	Ratio       float64   // median of the per-round ratios
	ProxyRuns   []float64 // every round, in order
	DirectRuns  []float64
	RoundRatios []float64
	BelowTarget bool
	ProxyReqs   int64 // requests served through the proxy over all rounds
	DirectReqs  int64
	// CPURatio is the median over rounds of direct/proxy CPU time per
	// request (load generator, dispatch and instance together), 0 when not
	// sampled. A diagnostic only: a Go process that is not saturated burns
	// CPU in its scheduler, so on a loaded machine it overstates the cost.
	CPURatio       float64
	ProxyCPUPerOp  time.Duration // median
	DirectCPUPerOp time.Duration
	showCPU        bool
}

// measure runs `rounds` rounds of (proxy, direct) passes, swapping the order
// every round (ABBA) so a drift in the machine's load hits both sides alike.
// Each round's ratio compares two passes taken back to back; the reported
// ratio is the median of those.
func measure(ctx context.Context, w wrk, rounds int, p path, progress io.Writer) (figure, error) {
	f := figure{Path: p}
	var cpuRatios, proxyCPU, directCPU []float64
	for i := range rounds {
		order := []bool{true, false} // proxy first
		if i%2 == 1 {
			order = []bool{false, true}
		}
		var pr, dr wrkResult
		for _, viaProxy := range order {
			url := p.Direct
			if viaProxy {
				url = p.Proxy
			}
			r, err := w.Run(ctx, url, p.Headers)
			if err != nil {
				return f, fmt.Errorf("%s round %d: %w", p.Name, i+1, err)
			}
			if viaProxy {
				pr = r
			} else {
				dr = r
			}
		}
		f.ProxyRuns = append(f.ProxyRuns, pr.RatePerSec)
		f.DirectRuns = append(f.DirectRuns, dr.RatePerSec)
		f.ProxyReqs += pr.Requests
		f.DirectReqs += dr.Requests
		ratio := 0.0
		if dr.RatePerSec > 0 {
			ratio = pr.RatePerSec / dr.RatePerSec
		}
		f.RoundRatios = append(f.RoundRatios, ratio)
		if pc, dc := pr.CPUPerRequest(), dr.CPUPerRequest(); pc > 0 && dc > 0 {
			cpuRatios = append(cpuRatios, float64(dc)/float64(pc))
			proxyCPU = append(proxyCPU, float64(pc))
			directCPU = append(directCPU, float64(dc))
		}
		if progress != nil {
			fmt.Fprintf(progress, "  %s round %d/%d: proxy %.0f req/s, direct %.0f req/s, ratio %.2f; CPU per request proxy %s, direct %s\n",
				p.Name, i+1, rounds, pr.RatePerSec, dr.RatePerSec, ratio, pr.CPUPerRequest(), dr.CPUPerRequest())
		}
	}
	f.Proxy = median(f.ProxyRuns)
	f.Direct = median(f.DirectRuns)
	f.Ratio = median(f.RoundRatios)
	f.BelowTarget = f.Ratio < p.Target
	f.CPURatio = median(cpuRatios)
	f.ProxyCPUPerOp = time.Duration(median(proxyCPU))
	f.DirectCPUPerOp = time.Duration(median(directCPU))
	return f, nil
}

// String is the line the command prints for a path.
func (f figure) String() string {
	verdict := "ok"
	if f.BelowTarget {
		verdict = "BELOW TARGET"
	}
	line := fmt.Sprintf("%s: proxy %.0f req/s, direct %.0f req/s, ratio %s (target >= %.2f) %s",
		f.Path.Name, f.Proxy, f.Direct, ratioText(f.Ratio, f.Path.Target), f.Path.Target, verdict)
	if f.CPURatio > 0 && f.showCPU {
		line += fmt.Sprintf("\n  %s: CPU per request (wrk + dispatch + instance) proxy %s, direct %s: cpu-cost ratio %.2f",
			f.Path.Name, f.ProxyCPUPerOp.Round(100*time.Nanosecond), f.DirectCPUPerOp.Round(100*time.Nanosecond), f.CPURatio)
	}
	return line
}

// ratioText prints a ratio to two places, or three when two would show a
// ratio below its target as the target itself ("0.60 BELOW TARGET").
func ratioText(r, target float64) string {
	if two := fmt.Sprintf("%.2f", r); r >= target || two != fmt.Sprintf("%.2f", target) {
		return two
	}
	return fmt.Sprintf("%.3f", r)
}

// median of xs (the mean of the middle two for an even count); 0 when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

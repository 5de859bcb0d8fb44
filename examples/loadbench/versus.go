package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
)

// versusFigure is one path measured through the dispatch and through nginx
// in the same rounds.
type versusFigure struct {
	Path     path    // the dispatch's
	Dispatch float64 // median of the dispatch's per-round ratios to direct
	Nginx    float64 // the same for nginx
	Share    float64 // median of the per-round dispatch/nginx quotients
}

func (f versusFigure) String() string {
	verdict := "ok"
	if f.Dispatch < f.Path.Target {
		verdict = "BELOW TARGET"
	}
	return fmt.Sprintf("%s: the dispatch %s, nginx %.2f (ratios to direct, same rounds): the dispatch keeps %.2fx what nginx keeps (target >= %.2f) %s",
		f.Path.Name, ratioText(f.Dispatch, f.Path.Target), f.Nginx, f.Share, f.Path.Target, verdict)
}

// versus is -versus-nginx: the dispatch and a real nginx in front of the
// same instance, each round measuring both (the order swapped every round),
// each against a direct pass of its own, so that the machine's load, which
// drifts from one minute to the next, weighs on both alike.
func versus(ctx context.Context, c config, st *stack, w wrk, stdout, stderr io.Writer) error {
	dpaths := st.Paths(c.assetPath) // the dispatch's, before nginx takes the proxy side
	if err := st.useNginx(ctx, c.nginxWork, stderr); err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	npaths := st.Paths(c.assetPath)
	if err := preflight(ctx, append(slices.Clone(dpaths), npaths...)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loadbench: the dispatch (fast path on) and nginx (worker_processes %s, upstream keepalive 32) in the same rounds, %d CPU(s), GOMAXPROCS %d, wrk -t%d -c%d -d%s, %d round(s) per path, keep-alive, loopback\n",
		c.nginxWork, runtime.NumCPU(), runtime.GOMAXPROCS(0), c.threads, c.connections, c.duration, c.runs)
	if err := warmUp(ctx, w, c, append(slices.Clone(dpaths), npaths...)); err != nil {
		return err
	}
	var progress io.Writer
	if c.verbose {
		progress = stderr
	}
	missed := false
	for i, dp := range dpaths {
		if c.only != "" && c.only != dp.Name {
			continue
		}
		f, err := measureVersus(ctx, w, c.runs, dp, npaths[i], progress)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, f)
		missed = missed || f.Dispatch < dp.Target
	}
	fmt.Fprintf(stdout, "  the dispatch's fast path handed %d connection(s) to net/http's server\n", st.Handoffs())
	if missed && c.check {
		return errBelowTarget
	}
	return nil
}

// measureVersus runs rounds of one (proxy, direct) pair for each of d and n,
// the dispatch first in even rounds and nginx first in odd ones.
func measureVersus(ctx context.Context, w wrk, rounds int, d, n path, progress io.Writer) (versusFigure, error) {
	f := versusFigure{Path: d}
	var ds, ns, shares []float64
	for i := range rounds {
		sides := [2]path{d, n}
		var got [2]float64 // the dispatch's ratio, nginx's
		for k := range 2 {
			j := (k + i) % 2 // odd rounds start with nginx
			r, err := measure(ctx, w, 1, sides[j], nil)
			if err != nil {
				return f, err
			}
			got[j] = r.Ratio
		}
		ds, ns = append(ds, got[0]), append(ns, got[1])
		if got[1] > 0 {
			shares = append(shares, got[0]/got[1])
		}
		if progress != nil {
			fmt.Fprintf(progress, "  %s round %d/%d: the dispatch %.2f, nginx %.2f\n", d.Name, i+1, rounds, got[0], got[1])
		}
	}
	f.Dispatch, f.Nginx, f.Share = median(ds), median(ns), median(shares)
	return f, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultNginxPath is where Debian's nginx packages put the binary; it is
// tried when nginx is not on PATH (/usr/sbin is often not on a user's PATH).
const DefaultNginxPath = "/usr/sbin/nginx"

// DefaultNginxWorkers is the worker_processes value of the -nginx mode.
const DefaultNginxWorkers = "1"

// errNoNginx is returned when no nginx binary is found.
var errNoNginx = errors.New("nginx not found (Debian: apt-get install -y nginx-light); only the -nginx mode needs it")

// lookNginx finds the nginx binary: PATH, then DefaultNginxPath.
func lookNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat(DefaultNginxPath); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return DefaultNginxPath, nil
	}
	return "", errNoNginx
}

// validNginxWorkers reports whether w is a worker_processes value this mode
// accepts: "auto" or a positive integer.
func validNginxWorkers(w string) bool {
	if w == "auto" {
		return true
	}
	n, err := strconv.Atoi(w)
	return err == nil && n > 0 && n <= 64
}

// nginxProxy is a real nginx, run from a private prefix directory, reverse
// proxying 127.0.0.1:<port> to the upstream over keep-alive connections:
// the reference the targets were set against.
type nginxProxy struct {
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// nginxConfig is the whole configuration: loopback only, no access log,
// every path (pid, logs, temp dirs) inside the prefix directory.
const nginxConfig = `# written by examples/loadbench -nginx; removed when the run ends
worker_processes %s;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %s/client_body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    upstream t3 {
        server %s;
        keepalive 32;
    }
    server {
        listen %s;
        location / {
            proxy_pass http://t3;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }
    }
}
`

// startNginx writes a private configuration into a temporary directory and
// starts nginx in the foreground (daemon off) in front of upstreamURL, then
// waits until it accepts connections.
func startNginx(ctx context.Context, upstreamURL, workers string, logw io.Writer) (*nginxProxy, error) {
	if !validNginxWorkers(workers) {
		return nil, fmt.Errorf("nginx workers %q: want auto or a positive number", workers)
	}
	bin, err := lookNginx()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(upstreamURL)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("nginx upstream %q: want 127.0.0.1:port", upstreamURL)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "loadbench-nginx-")
	if err != nil {
		return nil, err
	}
	// As root, nginx's workers run as nobody: they must be able to enter
	// the prefix directory.
	_ = os.Chmod(dir, 0o755)
	conf := filepath.Join(dir, "nginx.conf")
	text := fmt.Sprintf(nginxConfig, workers, dir, dir, dir, dir, dir, dir, dir, u.Host, addr)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// -e: the error log before the configuration is read (else nginx tries
	// the compiled-in /var/log/nginx/error.log).
	cmd := exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	n := &nginxProxy{dir: dir, addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.done) }()
	if err := n.waitReady(ctx, 10*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		n.Close()
		return nil, fmt.Errorf("nginx: %w; error log: %s", err, strings.TrimSpace(string(log)))
	}
	return n, nil
}

// freeLoopbackAddr returns a 127.0.0.1 port free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// waitReady polls until nginx accepts a connection, exits, or the deadline
// passes.
func (n *nginxProxy) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-n.done:
			return errors.New("exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", n.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s", n.addr, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is where the proxied requests go.
func (n *nginxProxy) URL() string { return "http://" + n.addr }

// CPU is the CPU time used so far by nginx's master and its live workers.
func (n *nginxProxy) CPU() time.Duration {
	pid := n.cmd.Process.Pid
	total := procCPU(pid)
	for _, c := range childPids(pid) {
		total += procCPU(c)
	}
	return total
}

// childPids lists the processes whose parent is pid, from /proc.
func childPids(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state, ppid, ...
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// Close asks nginx to finish gracefully (SIGQUIT), then SIGTERM, then
// SIGKILL, and removes its directory.
func (n *nginxProxy) Close() {
	for _, sig := range []os.Signal{syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGKILL} {
		_ = n.cmd.Process.Signal(sig)
		select {
		case <-n.done:
			os.RemoveAll(n.dir)
			return
		case <-time.After(3 * time.Second):
		}
	}
	<-n.done
	os.RemoveAll(n.dir)
}

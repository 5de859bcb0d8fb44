package supervisor_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the supervised program: with envHelper set,
// TestMain runs helperMain instead of the tests (the os/exec test idiom).
const (
	envHelper   = "T3FLEET_SUPERVISOR_HELPER" // serve | stubborn | crash | spawn
	envDelay    = "HELPER_DELAY"              // wait before listening / crashing
	envAddrFile = "HELPER_ADDR_FILE"          // serve: listen on loopback, write the address here
	envPIDFile  = "HELPER_PID_FILE"           // spawn: the grandchild's pid goes here
	envVersion  = "T3_VERSION"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	// The mode's handling of SIGTERM is in place before the start line: a
	// test that reads the line and then signals meets it, not Go's default.
	term := make(chan os.Signal, 1)
	switch mode {
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	case "spawn", "serve":
		signal.Notify(term, syscall.SIGTERM)
	}
	wd, _ := os.Getwd()
	fmt.Printf("%s version=%s args=%s dir=%s pid=%d\n", mode, os.Getenv(envVersion), strings.Join(os.Args[1:], ","), wd, os.Getpid())
	delay, _ := time.ParseDuration(os.Getenv(envDelay))
	switch mode {
	case "stubborn":
		select {}
	case "crash":
		time.Sleep(delay)
		fmt.Println("crashing")
		return 3
	case "spawn":
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), envHelper+"=stubborn")
		if err := child.Start(); err != nil {
			return 1
		}
		writeFile(os.Getenv(envPIDFile), fmt.Sprint(child.Process.Pid))
		<-term
		return 0 // leaves the stubborn grandchild behind: the group kill must get it
	case "serve":
		if f := os.Getenv(envAddrFile); f != "" {
			select {
			case <-time.After(delay):
			case <-term:
				fmt.Println("got TERM")
				return 0
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 1
			}
			go func() {
				_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "version=%s pid=%d", os.Getenv(envVersion), os.Getpid())
				}))
			}()
			writeFile(f, ln.Addr().String())
		}
		<-term
		fmt.Println("got TERM")
		return 0
	}
	return 2
}

func writeFile(path, s string) {
	tmp := path + ".tmp"
	_ = os.WriteFile(tmp, []byte(s), 0o644)
	_ = os.Rename(tmp, path)
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// A zombie still answers kill -0; only count processes not yet exited.
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

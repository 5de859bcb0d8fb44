package proctree

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrCgroup: the instance's cgroup could not be read, or the process table
// does not show the main process in it.
var ErrCgroup = errors.New("unit cgroup")

// unitCgroup cleans the cgroup an Oracle's Cgroup func returned, and returns
// "" when it cannot stand for one unit: "" (no cgroup, e.g. a stopped unit)
// and "/" (the root, which would make every agent on the machine the
// instance's and so hold back every user's restart for anyone's agent).
func unitCgroup(cg string) string {
	if cg == "" {
		return ""
	}
	cg = path.Clean(cg)
	if cg == "/" {
		return ""
	}
	return cg
}

// inCgroup reports whether a process cgroup path is cg or lies below it
// (a sub-cgroup of a unit with Delegate=yes). The separator matters:
// t3-serve@an.service is not a parent of t3-serve@ana.service.
func inCgroup(p, cg string) bool {
	return p == cg || strings.HasPrefix(p, cg+"/")
}

// readCgroup returns the cgroup path of a process from <root>/<pid>/cgroup.
func readCgroup(root string, pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	p, ok := parseCgroup(string(b))
	if !ok {
		return "", errors.New(filepath.Join(root, strconv.Itoa(pid), "cgroup") + ": no cgroup v2 or name=systemd line")
	}
	return p, nil
}

// parseCgroup picks, from the lines of a /proc/<pid>/cgroup file
// ("hierarchy:controllers:path"), the hierarchy systemd files units under:
// the unified one ("0::/path") when it has a path below the root, else
// cgroup v1's name=systemd (a legacy or hybrid machine). A legacy systemd
// leaves the unified hierarchy alone, so once anything else mounts cgroup2
// (an eBPF agent, a container runtime) every process shows "0::/" there
// while its unit's cgroup is name=systemd's; read as the root, it would
// put every main process outside its unit and fail every check.
func parseCgroup(s string) (string, bool) {
	var v1, v2 string
	for _, line := range strings.Split(s, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, p, ok := strings.Cut(rest, ":")
		if !ok || p == "" {
			continue
		}
		if id == "0" && ctrls == "" {
			v2 = p
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "name=systemd" {
				v1 = p
			}
		}
	}
	switch {
	case v2 != "" && v2 != "/":
		return v2, true
	case v1 != "":
		return v1, true
	}
	return v2, v2 != ""
}

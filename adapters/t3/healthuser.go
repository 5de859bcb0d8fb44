package t3

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/t3fleet/t3fleet/statebackup"
)

// nobodyID is the uid and gid of nobody where the system does not name one.
const nobodyID = 65534

// runner is who the check's serve and CLI run as: nil runs them as this
// process. Every open by path under the scratch base dir made after the
// serve starts goes through files, because from then on the serve owns it
// and can put a symlink anywhere in it.
type runner struct {
	owner statebackup.Owner
	how   string // "the seed's owner", "nobody" or "RunAs", for messages
	home  string // its home in scratch (handOver), the children's working directory
}

// account picks who runs the build. Only root can choose: the seed's owner
// (the data is theirs, so whatever it makes the build do, it does with
// their rights), else nobody when root owns the seed, or RunAs when set.
func (h *HealthChecker) account(seed statebackup.Owner) *runner {
	if os.Geteuid() != 0 {
		return nil
	}
	if o := h.opts.RunAs; o != nil {
		if o.UID == 0 {
			return nil
		}
		return &runner{owner: *o, how: "RunAs"}
	}
	if seed.UID > 0 {
		if seed.GID <= 0 {
			seed.GID = primaryGroup(seed.UID)
		}
		return &runner{owner: seed, how: "the seed's owner"}
	}
	o := statebackup.Owner{UID: nobodyID, GID: nobodyID}
	if u, err := user.Lookup("nobody"); err == nil {
		uid, uerr := strconv.Atoi(u.Uid)
		gid, gerr := strconv.Atoi(u.Gid)
		if uerr == nil && gerr == nil && uid > 0 && gid > 0 {
			o = statebackup.Owner{UID: uid, GID: gid}
		}
	}
	return &runner{owner: o, how: "nobody"}
}

// primaryGroup is uid's group from the user database, or 65534 (nogroup):
// a seed whose file has group root must not lend the build root's group.
func primaryGroup(uid int) int {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if gid, err := strconv.Atoi(u.Gid); err == nil && gid > 0 {
			return gid
		}
	}
	return nobodyID
}

func (r *runner) String() string {
	if r == nil {
		return "this process's user"
	}
	return fmt.Sprintf("uid %d gid %d (%s)", r.owner.UID, r.owner.GID, r.how)
}

// procAttr is the children's process attributes: a process group of their
// own, so that a wrapper's children die with it. Run as the runner, a
// session of their own too: in this process's they would have its
// controlling terminal (root's, run by hand), to read what root types and
// type into its shell; and a session leader cannot leave its group, which
// the stop signals. They get the runner's ids and no supplementary group
// (root's would otherwise stay).
func (r *runner) procAttr() *syscall.SysProcAttr {
	if r == nil {
		return &syscall.SysProcAttr{Setpgid: true}
	}
	cred := &syscall.Credential{Uid: uint32(r.owner.UID), Gid: uint32(r.owner.GID), Groups: []uint32{}}
	return &syscall.SysProcAttr{Setsid: true, Credential: cred}
}

// uid is the children's uid: the runner's, or this process's. The
// serve's must own the listener on its port.
func (r *runner) uid() uint32 {
	if r == nil {
		return uint32(os.Geteuid())
	}
	return uint32(r.owner.UID)
}

// dir is the children's working directory: this process's when r is nil,
// else the runner's home, never root's own (relative paths from a directory
// under one the runner cannot pass would reach beyond it).
func (r *runner) dir() string {
	if r == nil {
		return ""
	}
	return r.home
}

// handOver gives the runner the scratch tree, still reachable by root
// alone: base (the copy of the seed) and a new home, scratch/home, become
// its own, and scratch
// lets it through (0711) without letting it list. It then checks, with the
// runner's rights, that the copy can be opened for writing: a TempDir under
// a directory others cannot pass would otherwise fail every build.
//
// base and home are 0700: scratch lets every user through, and what the
// build writes in its tree with an ordinary umask (its log, a new
// database) is the seed's data, which no other user may read.
func (r *runner) handOver(scratch, base string) error {
	home := filepath.Join(scratch, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	for _, dir := range []string{base, home} {
		err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, r.owner.UID, r.owner.GID)
		})
		if err == nil {
			err = os.Chmod(dir, 0o700)
		}
		if err != nil {
			return fmt.Errorf("scratch: hand over to %s: %w", r, err)
		}
	}
	r.home = home
	if err := os.Chmod(scratch, 0o711); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	db := filepath.Join(base, "userdata", "state.sqlite")
	err := r.files(func() error {
		f, err := os.OpenFile(db, os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("scratch %s: the build runs as %s, who cannot open its copy of the seed (%w): every directory above TempDir must let other users through, as /var/tmp does", scratch, r, err)
	}
	return nil
}

// files runs fn with the runner's filesystem rights (as this process when
// r is nil).
func (r *runner) files(fn func() error) error {
	if r == nil {
		return fn()
	}
	return statebackup.AsOwner(r.owner, fn)
}

// env is the children's environment: Env when set; else, when this
// process runs them as itself, its own; else, for another user, only the
// locale, time zone and PATH of this process's, with HOME (r.home), USER and
// LOGNAME theirs. The rest of root's environment (whatever secrets its
// unit or shell holds) is not theirs to read, and they read their own
// processes' in /proc.
func (h *HealthChecker) env(r *runner) []string {
	if h.opts.Env != nil || r == nil {
		return h.opts.Env
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k != "PATH" && k != "TZ" && k != "LANG" && k != "LANGUAGE" && !strings.HasPrefix(k, "LC_")
	})
	env = append(env, "HOME="+r.home)
	if u, err := user.LookupId(strconv.Itoa(r.owner.UID)); err == nil {
		env = append(env, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	return env
}

// cannotRun says whether a failed start is the runner's lack of rights on
// the build (the staged tree not open to other users, EACCES) or this
// process's failure to become the runner (EPERM; EINVAL for an id its
// user namespace does not map): the host's setup, not the build's fault.
func (r *runner) cannotRun(err error) bool {
	return r != nil && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EINVAL))
}

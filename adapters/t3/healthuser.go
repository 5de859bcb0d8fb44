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

// credential is the children's: the runner's ids and no supplementary
// group (root's would otherwise stay).
func (r *runner) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: uint32(r.owner.UID), Gid: uint32(r.owner.GID), Groups: []uint32{}}
}

// handOver gives the runner the scratch tree, still reachable by root
// alone: base (the copy of the seed) and home become its own, and scratch
// lets it through (0711) without letting it list. It then checks, with the
// runner's rights, that the copy can be opened for writing: a TempDir under
// a directory others cannot pass would otherwise fail every build.
func (r *runner) handOver(scratch, base, home string) error {
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
		if err != nil {
			return fmt.Errorf("scratch: hand over to %s: %w", r, err)
		}
	}
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

// env is the children's environment: Env when set; else this process's,
// with HOME moved to home when another user runs the build (root's would
// be unwritable, or worse, shared).
func (h *HealthChecker) env(r *runner, home string) []string {
	if h.opts.Env != nil || r == nil {
		return h.opts.Env
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HOME=") })
	return append(env, "HOME="+home)
}

// cannotRun says whether a failed start is the runner's lack of rights on
// the build (the staged tree not open to other users, EACCES) or this
// process's failure to become the runner (EPERM; EINVAL for an id its
// user namespace does not map): the host's setup, not the build's fault.
func (r *runner) cannotRun(err error) bool {
	return r != nil && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EINVAL))
}

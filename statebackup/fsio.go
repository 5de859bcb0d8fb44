package statebackup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// openNoFollow opens path for reading, refusing a symlink in the last
// element. O_NONBLOCK: a FIFO planted in a user's directory must not hang
// the open (it has no effect on a regular file); callers check the type.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// hashFile returns the sha256 and size of the regular file at path.
func hashFile(path string) (string, int64, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// setOwnerMode gives the file or directory at path mode and, when running
// as root, owner o, through setFileOwnerMode on it opened without following
// a symlink: whatever is renamed under the name meanwhile, only what was
// opened is changed.
func setOwnerMode(path string, o Owner, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return setFileOwnerMode(f, o, mode)
}

// setFileOwnerMode gives the open file f mode and, when running as root,
// owner o.
func setFileOwnerMode(f *os.File, o Owner, mode os.FileMode) error {
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if os.Geteuid() == 0 && o.UID >= 0 {
		return f.Chown(o.UID, o.GID)
	}
	return nil
}

// safeDir makes sure dir exists as a real directory (never a symlink) with
// mode 0700 and owner o, creating it when missing.
func safeDir(dir string, o Owner) error {
	fi, err := os.Lstat(dir)
	if os.IsNotExist(err) {
		if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
		// A snapshot in a directory whose own entry is not on disk can
		// vanish with it in a power loss, after a journal named it.
		if err := fsyncPath(filepath.Dir(dir)); err != nil {
			return err
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w: not a directory (symlink or file planted?)", dir, ErrUnsafePath)
	}
	if fi.Mode().Perm() != 0o700 || (os.Geteuid() == 0 && !ownedBy(fi, o)) {
		return setOwnerMode(dir, o, 0o700)
	}
	return nil
}

func ownedBy(fi os.FileInfo, o Owner) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || (int(st.Uid) == o.UID && int(st.Gid) == o.GID)
}

// copyFile copies src (no symlink) to a new file dst in the directory r
// (O_EXCL), returning the sha256 of the bytes copied. dst is fsynced, and
// given mode and owner o on its open descriptor.
//
// src lies in its user's directory and can be any size, sparse too: it is
// refused unless it is wantSize bytes (when wantSize > 0) and fits in the
// space r's file system leaves to users (root's writes would take the
// blocks reserved for root and fill every user's home), and no more than
// its size at the open is copied.
func copyFile(src string, r *os.Root, dst string, o Owner, mode os.FileMode, wantSize int64) (string, int64, error) {
	in, err := openNoFollow(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	var size int64
	if fi, err := in.Stat(); err != nil {
		return "", 0, err
	} else if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s: %w: not a regular file", src, ErrUnsafePath)
	} else if size = fi.Size(); wantSize > 0 && size != wantSize {
		return "", 0, fmt.Errorf("%s: %w: %d bytes, %d recorded", src, ErrChecksum, size, wantSize)
	}
	if err := roomIn(r, size); err != nil {
		return "", 0, fmt.Errorf("%s: %w", src, err)
	}
	out, err := r.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(in, size+1))
	if err == nil && n > size {
		err = fmt.Errorf("%s: %w: grew while it was copied", src, ErrChecksum)
	}
	if err == nil {
		err = setFileOwnerMode(out, o, mode)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// removeSidecars deletes the sidecars of the database name in r.
func removeSidecars(r *os.Root, name string) error {
	for _, s := range sidecarSuffixes {
		if err := r.Remove(name + s); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

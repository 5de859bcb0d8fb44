//go:build !linux

package npmtest

import "syscall"

// sysProcAttr puts Verdaccio in its own process group (Close signals the group).
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

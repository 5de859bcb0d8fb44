package npmtest

import "syscall"

// sysProcAttr puts Verdaccio in its own process group (Close signals the
// group) and asks the kernel to stop it if this process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

package kubetest

import "syscall"

// sysProcAttr puts a child in its own process group, so stop can signal all of it,
// and kills it if the test binary dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

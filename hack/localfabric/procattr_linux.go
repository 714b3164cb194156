package main

import "syscall"

// childSysProcAttr puts a child in its own process group, so stopping it stops
// what it started, and has the kernel kill it if the fabric process dies without
// tearing down.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

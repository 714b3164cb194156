//go:build unix && !linux

package main

import "syscall"

// childSysProcAttr puts a child in its own process group, so stopping it stops
// what it started.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

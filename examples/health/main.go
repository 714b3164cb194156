// Command health is the example workload for pod semantics: probes, volumes,
// init containers and limits. It builds for wasip1/wasm and natively (a
// static binary for the process runtime) and is driven by its environment:
//
//	APPEND_FILE, APPEND_TEXT  append APPEND_TEXT and a newline to APPEND_FILE, then exit (init containers)
//	ALLOC_MB                  allocate and touch that many MiB, then keep running (memory limits)
//	WATCH_FILE                print "WATCH_FILE: <content>" now and whenever the file's content changes
//	LISTEN                    serve HTTP on this address (native builds): /healthz and /readyz
//	READY_AFTER               /readyz answers 503 until this Go duration has passed since start
//	FAIL_AFTER                /healthz answers 500 once this Go duration has passed since start
//	SICK_FILE                 /healthz and /readyz answer 500 while this file exists
//	EXIT_AFTER                exit with status 0 after this Go duration
//
// Run as "health check" it exits at once: 1 if SICK_FILE exists, else 0 (an
// exec probe, in both runtimes).
//
// Otherwise it runs until stopped.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	start := time.Now()
	if len(os.Args) > 1 && os.Args[1] == "check" {
		if _, err := os.Stat(os.Getenv("SICK_FILE")); os.Getenv("SICK_FILE") != "" && err == nil {
			fmt.Println("sick")
			os.Exit(1)
		}
		fmt.Println("healthy")
		return
	}
	fmt.Println("health: starting")
	if f := os.Getenv("APPEND_FILE"); f != "" {
		file, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "health:", err)
			os.Exit(1)
		}
		fmt.Fprintln(file, os.Getenv("APPEND_TEXT"))
		file.Close()
		fmt.Printf("appended %q to %s\n", os.Getenv("APPEND_TEXT"), f)
		return
	}
	var keep [][]byte
	if mb, _ := strconv.Atoi(os.Getenv("ALLOC_MB")); mb > 0 {
		for range mb {
			b := make([]byte, 1<<20)
			for k := 0; k < len(b); k += 4096 {
				b[k] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("allocated %d MiB\n", len(keep))
	}
	after := func(name string) (time.Duration, bool) {
		d, err := time.ParseDuration(os.Getenv(name))
		return d, err == nil
	}
	sick := func() bool {
		_, err := os.Stat(os.Getenv("SICK_FILE"))
		return os.Getenv("SICK_FILE") != "" && err == nil
	}
	if addr := os.Getenv("LISTEN"); addr != "" {
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if d, ok := after("FAIL_AFTER"); (ok && time.Since(start) > d) || sick() {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		http.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if d, ok := after("READY_AFTER"); (ok && time.Since(start) < d) || sick() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		go func() {
			if err := http.ListenAndServe(addr, nil); err != nil {
				fmt.Fprintln(os.Stderr, "health: listen:", err)
			}
		}()
		fmt.Println("health: listening on", addr)
	}
	watch := os.Getenv("WATCH_FILE")
	last := "\x00none"
	exitAfter, exits := after("EXIT_AFTER")
	for {
		if watch != "" {
			b, err := os.ReadFile(watch)
			content := string(b)
			if err != nil {
				content = "error: " + err.Error()
			}
			if content != last {
				fmt.Printf("WATCH_FILE: %s\n", content)
				last = content
			}
		}
		if exits && time.Since(start) > exitAfter {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

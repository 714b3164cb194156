// Command fd3server is a Go wasip1 HTTP server written the way wazero's
// socket examples are: it takes its listener from file descriptor 3, with no
// search (made non-blocking first, which Go's net package needs on wasip1:
// a blocking accept would hold up the module's only thread), and serves the
// file named by $FILE (from one of the pod's volumes) and, with ?cwd, the
// working directory.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
)

func main() {
	if err := syscall.SetNonblock(3, true); err != nil {
		fmt.Fprintln(os.Stderr, "fd3server: fd 3:", err)
		os.Exit(1)
	}
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fd3server: fd 3 is not a listener:", err)
		os.Exit(1)
	}
	fmt.Println("serving on fd 3")
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("cwd") {
			wd, err := os.Getwd()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, wd)
			return
		}
		b, err := os.ReadFile(os.Getenv("FILE"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	}))
	fmt.Fprintln(os.Stderr, "fd3server:", err)
	os.Exit(1)
}

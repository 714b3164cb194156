// Command httpserver is an example edgefabric service: a net/http server
// built with GOOS=wasip1 GOARCH=wasm that serves on the listening socket the
// agent preopens for the pod's containerPort (file descriptor 3), and a few
// small commands to run with kubectl exec or attach.
//
//	httpserver                serve HTTP (preopened fd 3; natively: :$PORT, default 8080)
//	httpserver cat            copy stdin to stdout (kubectl exec -i, or attach with stdin: true)
//	httpserver echo ARGS...   print ARGS
//	httpserver env NAME...    print NAME=value for each NAME
//	httpserver exit CODE      exit with CODE
//	httpserver sha256         print the SHA-256 of stdin
//
// Its HTTP endpoints:
//
//	GET  /             "hello from $HOSTNAME"
//	GET  /bytes?n=N    N bytes of a fixed pseudo-random sequence (seed ?seed=S)
//	POST /sha256       the SHA-256 (hex) of the request body
//	GET  /work?n=N     a small CPU-bound answer: the SHA-256 of N zero bytes
//
// It also builds and runs natively (the benchmarks compare the two).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "serve" {
		return serve()
	}
	switch args[0] {
	case "cat":
		w := bufio.NewWriter(os.Stdout)
		r := bufio.NewReader(os.Stdin)
		for {
			line, err := r.ReadBytes('\n')
			if _, werr := w.Write(line); werr != nil {
				return 1
			}
			if werr := w.Flush(); werr != nil {
				return 1
			}
			if err != nil {
				return 0
			}
		}
	case "echo":
		for i, a := range args[1:] {
			if i > 0 {
				fmt.Print(" ")
			}
			fmt.Print(a)
		}
		fmt.Println()
		return 0
	case "env":
		for _, k := range args[1:] {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		return 0
	case "exit":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: httpserver exit CODE")
			return 2
		}
		code, err := strconv.Atoi(args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "httpserver: bad exit code %q\n", args[1])
			return 2
		}
		fmt.Fprintf(os.Stderr, "exiting with %d\n", code)
		return code
	case "sha256":
		h := sha256.New()
		n, err := io.Copy(h, os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "httpserver:", err)
			return 1
		}
		fmt.Printf("%s %d\n", hex.EncodeToString(h.Sum(nil)), n)
		return 0
	}
	fmt.Fprintf(os.Stderr, "httpserver: unknown command %q\n", args[0])
	return 2
}

func serve() int {
	ln, err := listener()
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		return 1
	}
	fmt.Printf("serving on %s\n", ln.Addr())
	if err := http.Serve(ln, handler()); err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		return 1
	}
	return 0
}

// listener is the preopened socket (fd 3) if there is one, else a new
// listener on :$PORT.
func listener() (net.Listener, error) {
	if ln, ok, err := preopenedListener(); ok {
		return ln, err
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	return net.Listen("tcp", ":"+port)
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		name := os.Getenv("HOSTNAME")
		if name == "" {
			name = "edgefabric"
		}
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n must be a byte count", http.StatusBadRequest)
			return
		}
		seed, _ := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
		_, _ = io.CopyN(w, rng, n)
	})
	mux.HandleFunc("POST /sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d\n", hex.EncodeToString(h.Sum(nil)), n)
	})
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 1<<24 {
			n = 1024
		}
		sum := sha256.Sum256(make([]byte, n))
		fmt.Fprintf(w, "%s\n", hex.EncodeToString(sum[:]))
	})
	return mux
}

// Package debugserver serves Go's runtime profiles (net/http/pprof) for the
// provider's and the agent's --debug-listen flag. It is unauthenticated: bind it
// to loopback.
package debugserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Start serves the profiles on addr until the returned stop is called; stop
// returns once the server has stopped.
func Start(addr string, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen: %w", err)
	}
	return Serve(lis, log), nil
}

// Serve is Start on a listener the caller opened (to learn its port first,
// say); stop also closes lis.
func Serve(lis net.Listener, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	log.Info("serving profiles", "address", lis.Addr().String())
	return func() {
		_ = srv.Close()
		<-served
	}
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// health is what the provider's /healthz, /readyz and /metrics report. /healthz answers
// 200 while the process serves HTTP at all; /readyz answers 200 only while
// this replica serves agents and nodes (it leads, and its nodes are up), so a
// Service routes agents to the leader and never to a standby.
type health struct {
	state atomic.Value // string: "starting", "standby", "serving", "stopping"
}

func newHealth() *health {
	h := &health{}
	h.state.Store("starting")
	return h
}

func (h *health) set(s string) { h.state.Store(s) }

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch r.URL.Path {
	case "/healthz", "/livez":
		fmt.Fprintln(w, "ok")
	case "/readyz":
		st := h.state.Load().(string)
		if st != "serving" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, st)
	case "/metrics":
		// Prometheus text format, for the chart's ServiceMonitor.
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		serving := 0
		if h.state.Load().(string) == "serving" {
			serving = 1
		}
		fmt.Fprintln(w, "# HELP edgefabric_provider_serving 1 while this replica serves agents and nodes (it is the leader, or leader election is off).")
		fmt.Fprintln(w, "# TYPE edgefabric_provider_serving gauge")
		fmt.Fprintf(w, "edgefabric_provider_serving %d\n", serving)
	default:
		http.NotFound(w, r)
	}
}

// serveHealth serves h on lis until ctx ends.
func serveHealth(ctx context.Context, lis net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		_ = srv.Close()
	}()
	log.Info("serving health", "address", lis.Addr().String())
	err := srv.Serve(lis)
	close(stopped)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

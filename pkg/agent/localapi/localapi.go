// Package localapi lets a person at the device ask the running agent how it
// is: the agent serves its Status as JSON over a unix socket in its data
// directory (Serve), and `edgeagent status` reads it (Get) and prints it
// (Status.Write). The socket is the only way in: the agent's store is locked
// while the agent runs.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// SocketName is the socket's name in the agent's data directory.
const SocketName = "agent.sock"

// SocketPath is the socket of the agent whose data directory is dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Status is what the agent tells about itself.
type Status struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	DataDir string    `json:"dataDir"`
	Device  string    `json:"device"`
	Account string    `json:"account,omitempty"` // empty before the device joined
	// CertificateExpires is when the device's client certificate expires;
	// zero before the device joined.
	CertificateExpires time.Time `json:"certificateExpires,omitzero"`
	Hub                string    `json:"hub"`
	Connected          bool      `json:"connected"`
	// Decommissioned is the hub's refusal of a device removed from the
	// fleet; empty while the device is in it.
	Decommissioned string `json:"decommissioned,omitempty"`
	// Clusters are the edge clusters the device belongs to, as it knows them.
	Clusters  []string   `json:"clusters"`
	Workloads []Workload `json:"workloads"`
}

// Workload is one workload (pod) the device runs.
type Workload struct {
	Namespace  string      `json:"namespace"`
	Name       string      `json:"name"`
	UID        string      `json:"uid"`
	Phase      string      `json:"phase"`
	Reason     string      `json:"reason,omitempty"`
	Containers []Container `json:"containers"`
}

// Container is one container of a workload.
type Container struct {
	Name     string `json:"name"`
	State    string `json:"state"`            // Waiting, Running or Terminated
	Reason   string `json:"reason,omitempty"` // why it waits or ended
	Restarts int32  `json:"restarts"`
}

// Serve answers GET /v1/status on a unix socket at path with what status
// returns, until ctx ends. A socket file left by an agent that died is
// replaced; one that still answers means another agent runs on the same data
// directory, which is an error.
func Serve(ctx context.Context, path string, status func() Status, log *slog.Logger) error {
	if _, err := Get(ctx, path); err == nil {
		return fmt.Errorf("local API %s: another agent answers there", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("local API: remove stale socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("local API listen: %w", err)
	}
	// Root and the agent's user only: workload names are not for everyone.
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return fmt.Errorf("local API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		_ = srv.Close()
	}()
	log.Info("local API serving", "socket", path)
	err = srv.Serve(lis)
	close(stopped)
	<-done
	_ = os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ErrNotRunning means no agent answers on the socket.
var ErrNotRunning = errors.New("no agent is running")

// Get asks the agent listening on the socket at path for its status. It
// returns an error wrapping ErrNotRunning when nothing answers there.
func Get(ctx context.Context, path string) (Status, error) {
	c := http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return Status{}, fmt.Errorf("%w (nothing listens on %s)", ErrNotRunning, path)
		}
		return Status{}, fmt.Errorf("ask the agent on %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return Status{}, fmt.Errorf("ask the agent on %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("read the agent's status: %w", err)
	}
	return st, nil
}

// Write prints s for a person, as of now.
func (s Status) Write(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	account, cert := s.Account, "none (not joined yet)"
	if account == "" {
		account = "(not joined yet)"
	}
	if !s.CertificateExpires.IsZero() {
		left := s.CertificateExpires.Sub(now).Round(time.Minute)
		cert = s.CertificateExpires.UTC().Format(time.RFC3339) + " (in " + left.String() + ")"
		if left <= 0 {
			cert = s.CertificateExpires.UTC().Format(time.RFC3339) + " (EXPIRED: the agent joins again with its token)"
		}
	}
	hub := "disconnected (reconnecting)"
	if s.Connected {
		hub = "connected"
	}
	if s.Decommissioned != "" {
		hub = "REFUSED: " + s.Decommissioned + " (workloads stopped; edgeagent join --token NEW-TOKEN)"
	}
	clusters := strings.Join(s.Clusters, ", ")
	if clusters == "" {
		clusters = "(none yet)"
	}
	fmt.Fprintf(tw, "Device:\t%s\n", s.Device)
	fmt.Fprintf(tw, "Account:\t%s\n", account)
	fmt.Fprintf(tw, "Certificate expires:\t%s\n", cert)
	fmt.Fprintf(tw, "Hub:\t%s, %s\n", s.Hub, hub)
	fmt.Fprintf(tw, "Clusters:\t%s\n", clusters)
	fmt.Fprintf(tw, "Agent:\t%s, up %s, data in %s\n", s.Version, now.Sub(s.Started).Round(time.Second), s.DataDir)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nWorkloads: %d\n", len(s.Workloads))
	if len(s.Workloads) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tPHASE\tCONTAINER\tSTATE\tRESTARTS")
	for _, wl := range s.Workloads {
		phase := wl.Phase
		if wl.Reason != "" {
			phase += " (" + wl.Reason + ")"
		}
		for i, c := range wl.Containers {
			pod := wl.Namespace + "/" + wl.Name
			if i > 0 {
				pod, phase = "", ""
			}
			state := c.State
			if c.Reason != "" {
				state += " (" + c.Reason + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", pod, phase, c.Name, state, c.Restarts)
		}
		if len(wl.Containers) == 0 {
			fmt.Fprintf(tw, "%s/%s\t%s\t\t\t\n", wl.Namespace, wl.Name, phase)
		}
	}
	return tw.Flush()
}

package supervisor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// probeHost is where probes without a host reach a container: containers
// share the device's network, so its loopback address.
const probeHost = "127.0.0.1"

// runProbes drives a running container's probes as the kubelet does, until
// ctx ends: the startup probe first (the container is started once it
// passes, or at once without one), then liveness and readiness. A failed
// startup or liveness probe sends why on kill; the caller restarts the
// container.
func (w *workload) runProbes(ctx context.Context, c *hubv1.Container, inst Instance, kill chan<- string, onStarted func()) {
	name := c.GetName()
	if p := c.GetStartupProbe(); p != nil {
		passed := false
		probeLoop(ctx, p, inst, func(ok bool, msg string, successes, failures int) bool {
			if ok {
				passed = successes >= int(max(p.GetSuccessThreshold(), 1))
				return !passed
			}
			w.event(name, "Warning", reasons.Unhealthy, "Startup probe failed: %s", msg)
			if failures >= int(max(p.GetFailureThreshold(), 1)) {
				sendKill(kill, fmt.Sprintf("Container %s failed startup probe, will be restarted", name))
				return false
			}
			return true
		})
		if !passed {
			return
		}
	}
	w.update(name, func(cs *hubv1.ContainerStatus) {
		cs.Started = true
		if c.GetReadinessProbe() == nil {
			cs.Ready = true
		}
	})
	onStarted()

	var wg sync.WaitGroup
	if p := c.GetReadinessProbe(); p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probeLoop(ctx, p, inst, func(ok bool, msg string, successes, failures int) bool {
				switch {
				case ok && successes >= int(max(p.GetSuccessThreshold(), 1)):
					w.setReady(name, true)
				case !ok:
					w.event(name, "Warning", reasons.Unhealthy, "Readiness probe failed: %s", msg)
					if failures >= int(max(p.GetFailureThreshold(), 1)) {
						w.setReady(name, false)
					}
				}
				return true
			})
		}()
	}
	if p := c.GetLivenessProbe(); p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probeLoop(ctx, p, inst, func(ok bool, msg string, _, failures int) bool {
				if ok {
					return true
				}
				w.event(name, "Warning", reasons.Unhealthy, "Liveness probe failed: %s", msg)
				if failures >= int(max(p.GetFailureThreshold(), 1)) {
					sendKill(kill, fmt.Sprintf("Container %s failed liveness probe, will be restarted", name))
					return false
				}
				return true
			})
		}()
	}
	wg.Wait()
}

func sendKill(kill chan<- string, why string) {
	select {
	case kill <- why:
	default:
	}
}

// setReady changes a container's readiness if it changed.
func (w *workload) setReady(name string, ready bool) {
	w.mu.Lock()
	cs := w.containers[name]
	same := cs == nil || cs.GetReady() == ready
	w.mu.Unlock()
	if !same {
		w.update(name, func(cs *hubv1.ContainerStatus) { cs.Ready = ready })
	}
}

// probeLoop runs p after its initial delay and then every period, calling
// on with each result and the counts of consecutive successes and failures,
// until ctx ends or on returns false.
func probeLoop(ctx context.Context, p *hubv1.Probe, inst Instance, on func(ok bool, msg string, successes, failures int) bool) {
	if !sleep(ctx, time.Duration(p.GetInitialDelaySeconds())*time.Second) {
		return
	}
	period := time.Duration(max(p.GetPeriodSeconds(), 1)) * time.Second
	successes, failures := 0, 0
	for {
		ok, msg := probeOnce(ctx, p, inst)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		if !on(ok, msg, successes, failures) {
			return
		}
		if !sleep(ctx, period) {
			return
		}
	}
}

// probeOnce runs one probe within its timeout; msg says why it failed.
func probeOnce(ctx context.Context, p *hubv1.Probe, inst Instance) (ok bool, msg string) {
	timeout := time.Duration(max(p.GetTimeoutSeconds(), 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	switch h := p.GetHandler().(type) {
	case *hubv1.Probe_HttpGet:
		err = probeHTTP(ctx, h.HttpGet)
	case *hubv1.Probe_TcpSocket:
		err = probeTCP(ctx, h.TcpSocket)
	case *hubv1.Probe_Grpc:
		err = probeGRPC(ctx, h.Grpc)
	case *hubv1.Probe_Exec_:
		err = probeExec(ctx, h.Exec, inst)
	default:
		err = errors.New("probe has no handler")
	}
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

func hostPort(host string, port int32) string {
	if host == "" {
		host = probeHost
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// probeTransport is shared by HTTP probes; it does not verify certificates
// (as the kubelet) and keeps no idle connections (each probe is a new one).
var probeTransport = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet semantics
	DisableKeepAlives: true,
}

func probeHTTP(ctx context.Context, h *hubv1.Probe_HTTPGet) error {
	scheme := strings.ToLower(h.GetScheme())
	if scheme == "" {
		scheme = "http"
	}
	path := h.GetPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + hostPort(h.GetHost(), h.GetPort()) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/edgefabric")
	for _, hd := range h.GetHeaders() {
		if strings.EqualFold(hd.GetName(), "Host") {
			req.Host = hd.GetValue()
			continue
		}
		req.Header.Set(hd.GetName(), hd.GetValue())
	}
	resp, err := (&http.Client{Transport: probeTransport}).Do(req)
	if err != nil {
		return fmt.Errorf("get %q: %w", url, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	_, _ = io.CopyN(io.Discard, resp.Body, 10<<10)
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

func probeTCP(ctx context.Context, t *hubv1.Probe_TCPSocket) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostPort(t.GetHost(), t.GetPort()))
	if err != nil {
		return err
	}
	return conn.Close()
}

func probeGRPC(ctx context.Context, g *hubv1.Probe_GRPC) error {
	addr := hostPort("", g.GetPort())
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: g.GetService()})
	if err != nil {
		return fmt.Errorf("failed to connect service %q within %s: %w", addr, time.Until(deadlineOf(ctx)).Round(time.Second), err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("service unhealthy (responded with %q)", resp.GetStatus())
	}
	return nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func probeExec(ctx context.Context, e *hubv1.Probe_Exec, inst Instance) error {
	ex, ok := inst.(Execer)
	if !ok {
		return errors.New("exec probes are not supported by this container's runtime: use httpGet, tcpSocket or grpc")
	}
	var out limitedBuffer
	code, err := ex.Exec(ctx, e.GetCommand(), nil, &out, &out)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("command %q timed out", e.GetCommand())
	}
	if code != 0 {
		return fmt.Errorf("command %q exited with %d: %s", e.GetCommand(), code, strings.TrimSpace(out.String()))
	}
	return nil
}

// limitedBuffer keeps the first 1 KiB written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 1024 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

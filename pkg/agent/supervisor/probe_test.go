package supervisor

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// noExec is an Instance without exec, like a wasm module.
type noExec struct{}

func (noExec) Done() <-chan struct{} { return nil }
func (noExec) Result() Result        { return Result{} }
func (noExec) Stop(time.Duration)    {}

func TestProbeOnce(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Probe") != "yes" {
				http.Error(w, "no header", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.Error(w, "nope", http.StatusInternalServerError)
		}
	}))
	defer web.Close()
	webPort := portOf(t, web.Listener.Addr().String())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	grpcPort := portOf(t, ln.Addr().String())

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := portOf(t, closed.Addr().String())
	closed.Close()

	httpGet := func(path string) *hubv1.Probe {
		return &hubv1.Probe{TimeoutSeconds: 1, Handler: &hubv1.Probe_HttpGet{HttpGet: &hubv1.Probe_HTTPGet{
			Path: path, Port: webPort, Headers: []*hubv1.EnvVar{{Name: "X-Probe", Value: "yes"}},
		}}}
	}
	tests := []struct {
		name    string
		probe   *hubv1.Probe
		wantOK  bool
		wantMsg string
	}{
		{name: "http 204", probe: httpGet("/ok"), wantOK: true},
		{name: "http 500", probe: httpGet("/bad"), wantMsg: "statuscode: 500"},
		{name: "http timeout", probe: httpGet("/slow"), wantMsg: "deadline exceeded"},
		{name: "tcp open", probe: &hubv1.Probe{Handler: &hubv1.Probe_TcpSocket{TcpSocket: &hubv1.Probe_TCPSocket{Port: webPort}}}, wantOK: true},
		{name: "tcp closed", probe: &hubv1.Probe{Handler: &hubv1.Probe_TcpSocket{TcpSocket: &hubv1.Probe_TCPSocket{Port: closedPort}}}, wantMsg: "connection refused"},
		{name: "grpc serving", probe: &hubv1.Probe{Handler: &hubv1.Probe_Grpc{Grpc: &hubv1.Probe_GRPC{Port: grpcPort, Service: "up"}}}, wantOK: true},
		{name: "grpc not serving", probe: &hubv1.Probe{Handler: &hubv1.Probe_Grpc{Grpc: &hubv1.Probe_GRPC{Port: grpcPort, Service: "down"}}}, wantMsg: "NOT_SERVING"},
		{name: "grpc unknown service", probe: &hubv1.Probe{Handler: &hubv1.Probe_Grpc{Grpc: &hubv1.Probe_GRPC{Port: grpcPort, Service: "nope"}}}, wantMsg: "NotFound"},
		{name: "exec without exec", probe: &hubv1.Probe{Handler: &hubv1.Probe_Exec_{Exec: &hubv1.Probe_Exec{Command: []string{"true"}}}}, wantMsg: "not supported by this container's runtime"},
		{name: "no handler", probe: &hubv1.Probe{}, wantMsg: "no handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, msg := probeOnce(t.Context(), tt.probe, noExec{})
			if ok != tt.wantOK || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("probeOnce: got (%v, %q), want (%v, containing %q)", ok, msg, tt.wantOK, tt.wantMsg)
			}
		})
	}
}

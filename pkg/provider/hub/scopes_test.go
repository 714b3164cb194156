package hub

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/test/poll"
)

// TestScopesProbeAndNearest checks the scope messages of a control stream:
// scopes in the hello and as later reports (the newest seq wins), a probe
// answered with its nonce, and Nearest over what devices reported.
func TestScopesProbeAndNearest(t *testing.T) {
	f := start(t)
	f.fab.MarkReady()
	certs := map[string]*tls.Certificate{}
	connect := func(id string, sc *hubv1.Scopes) hubv1.Hub_ControlClient {
		t.Helper()
		cert, err := f.join(t, id, "good")
		certs[id] = cert
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		s, err := f.dial(t, cert).Control(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{
			DeviceId: id, Runtimes: []string{"wasm"}, Capacity: &hubv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30, Pods: 10},
			Scopes: sc,
		}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil { // welcome
			t.Fatal(err)
		}
		return s
	}
	coord := func(x float64) *hubv1.Coordinate {
		return &hubv1.Coordinate{Vec: []float64{x, 0, 0, 0, 0, 0, 0, 0}, Height: 1e-5}
	}
	s1 := connect("pi-1", &hubv1.Scopes{Seq: 10, NetworkId: "lan1", Coordinate: coord(0)})
	connect("pi-2", &hubv1.Scopes{Seq: 1, NetworkId: "lan2", Coordinate: coord(0.050)})
	connect("pi-3", &hubv1.Scopes{Seq: 1, NetworkId: "lan2", Coordinate: coord(0.010)})

	if err := s1.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Probe{Probe: &hubv1.HubProbe{Nonce: 42}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s1.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r := m.GetProbeReply(); r != nil {
			if r.GetNonce() != 42 {
				t.Fatalf("probe reply: nonce %d, want 42", r.GetNonce())
			}
			break
		}
	}

	// An older report is dropped, a newer one kept.
	for _, sc := range []*hubv1.Scopes{{Seq: 9, NetworkId: "stale"}, {Seq: 11, NetworkId: "lan2", Coordinate: coord(0)}} {
		if err := s1.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Scopes{Scopes: sc}}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 10*time.Second, func() bool { d, _ := f.fab.Device("acme", "pi-1"); return d.Scopes.GetSeq() == 11 })
	if d, _ := f.fab.Device("acme", "pi-1"); d.Scopes.GetNetworkId() != "lan2" {
		t.Errorf("network claim: got %q, want lan2", d.Scopes.GetNetworkId())
	}

	hub := f.dial(t, certs["pi-1"])
	resp, err := hub.Nearest(t.Context(), &hubv1.NearestRequest{Free: &hubv1.Resources{CpuMillis: 500}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range resp.GetDevices() {
		got = append(got, d.GetDeviceId())
	}
	if len(got) != 2 || got[0] != "pi-3" || got[1] != "pi-2" {
		t.Errorf("nearest: got %v, want [pi-3 pi-2] (10 ms before 50 ms)", got)
	}
	if _, err := hub.Nearest(t.Context(), &hubv1.NearestRequest{Free: &hubv1.Resources{CpuMillis: 5000}}); err != nil {
		t.Errorf("nearest with more than any device has: %v", err)
	}
	if _, err := hub.Nearest(t.Context(), &hubv1.NearestRequest{Limit: -1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("nearest with limit -1: got %v, want InvalidArgument", err)
	}
}

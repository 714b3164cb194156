package hub

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// panickyTokens panics on the token "panic", as a bug some input reaches
// would.
type panickyTokens struct{ tokens }

func (p panickyTokens) Account(ctx context.Context, tok string) (string, error) {
	if tok == "panic" {
		panic("a bug in Tokens")
	}
	return p.tokens.Account(ctx, tok)
}

// panickyListener panics on every status a device reports.
type panickyListener struct{}

func (panickyListener) DevicesChanged(string)                        {}
func (panickyListener) WorkloadStatus(string, *hubv1.WorkloadStatus) { panic("a bug in the listener") }
func (panickyListener) WorkloadEvent(string, *hubv1.Event)           {}

func startPanicky(t *testing.T) *fixture {
	t.Helper()
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	fab := fabric.New(log)
	srv, err := New(Config{CA: ca, Tokens: panickyTokens{tokens{"good": "acme"}}}, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ctx, lis) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &fixture{ca: ca, fab: fab, addr: lis.Addr().String()}
}

// joinControl joins as device id and opens a control stream with hello,
// or returns the error the hub ended the stream with.
func (f *fixture) joinControl(t *testing.T, id string, hello *hubv1.Hello) (hubv1.Hub_ControlClient, error) {
	t.Helper()
	cert, err := f.join(t, id, "good")
	if err != nil {
		t.Fatal(err)
	}
	hello.DeviceId = id
	return f.controlWith(t, cert, hello)
}

// TestHubRecoversFromPanics makes a unary handler and the handling of a
// control stream's message panic: the caller gets Internal or the message
// is dropped, and the hub goes on serving.
func TestHubRecoversFromPanics(t *testing.T) {
	f := startPanicky(t)
	f.fab.SetListener(panickyListener{})
	f.fab.MarkReady()
	if _, err := f.join(t, "pi-1", "panic"); status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("bootstrap whose handler panicked: got %v, want Internal", err)
	}
	s, err := f.joinControl(t, "pi-1", &hubv1.Hello{})
	if err != nil {
		t.Fatal(err)
	}
	f.fab.Assign("acme", "pi-1", &hubv1.Workload{Uid: "uid-1"})
	if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Status{Status: &hubv1.StatusReport{
		Statuses: []*hubv1.WorkloadStatus{{Uid: "uid-1", Phase: "Running"}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if err := probe(t, s, 7); err != nil {
		t.Fatal(err)
	}
	if d, ok := f.fab.Device("acme", "pi-1"); !ok || !d.Online {
		t.Errorf("device after a panicking report: %+v, want online", d)
	}
}

// TestHubChecksWhatDevicesSend refuses a hello beyond the bounds and drops
// scope reports that would poison distances, keeping the session.
func TestHubChecksWhatDevicesSend(t *testing.T) {
	f := start(t)
	f.fab.MarkReady()
	labels := map[string]string{}
	for i := range fabric.MaxLabels + 1 {
		labels[fmt.Sprintf("l%d", i)] = "x"
	}
	// One device, enrolled once (a token enrols a device ID only once).
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.controlWith(t, cert, &hubv1.Hello{DeviceId: "pi-1", Labels: labels}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "labels") {
		t.Errorf("hello with %d labels: got %v, want InvalidArgument naming the labels", len(labels), err)
	}
	if _, err := f.controlWith(t, cert, &hubv1.Hello{DeviceId: "pi-1", Addresses: []string{"not an address"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("hello with a bad address: got %v, want InvalidArgument", err)
	}
	s, err := f.controlWith(t, cert, &hubv1.Hello{DeviceId: "pi-1", Scopes: &hubv1.Scopes{Seq: 1, NetworkId: "lan1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []*hubv1.Scopes{
		{Seq: 2, NetworkId: "nan", Coordinate: &hubv1.Coordinate{Vec: []float64{math.NaN()}}},
		{Seq: 3, NetworkId: "wide", Coordinate: &hubv1.Coordinate{Vec: make([]float64, fabric.MaxDimensions+1)}},
		{Seq: 4, NetworkId: "pole", HasPoint: true, Latitude: 91},
	} {
		if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Scopes{Scopes: sc}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := probe(t, s, 1); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.fab.Device("acme", "pi-1"); d.Scopes.GetNetworkId() != "lan1" {
		t.Errorf("after bad scope reports: claim %q, want lan1 kept", d.Scopes.GetNetworkId())
	}
}

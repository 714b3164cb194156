package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/test/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type tokens map[string]string

func (t tokens) Account(_ context.Context, tok string) (string, error) {
	if a, ok := t[tok]; ok {
		return a, nil
	}
	return "", errors.New("unknown token")
}

func (t tokens) Spend(context.Context, string) error { return nil }

type fixture struct {
	ca   *identity.CA
	fab  *fabric.Fabric
	addr string
}

func start(t *testing.T) *fixture { t.Helper(); return startWith(t, nil) }

// startWith starts a hub that refuses the devices revs revokes.
func startWith(t *testing.T, revs Revocations) *fixture {
	t.Helper()
	return startConfig(t, Config{Revocations: revs})
}

// startConfig starts a hub with cfg, filling in a new CA and the tokens
// "good" and "fresh" of account acme where cfg has none.
func startConfig(t *testing.T, cfg Config) *fixture {
	t.Helper()
	if cfg.CA == nil {
		ca, err := identity.NewCA("test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg.CA = ca
	}
	if cfg.Tokens == nil {
		cfg.Tokens = tokens{"good": "acme", "fresh": "acme"}
	}
	ca := cfg.CA
	log := slog.New(slog.DiscardHandler)
	fab := fabric.New(log)
	srv, err := New(cfg, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx, lis); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &fixture{ca: ca, fab: fab, addr: lis.Addr().String()}
}

func (f *fixture) dial(t *testing.T, cert *tls.Certificate) hubv1.HubClient {
	t.Helper()
	tc := &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS13}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hubv1.NewHubClient(conn)
}

func (f *fixture) join(t *testing.T, device, token string) (*tls.Certificate, error) {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.NewCSR(key, device)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.dial(t, nil).Bootstrap(t.Context(), &hubv1.BootstrapRequest{Token: token, CsrDer: csr, DeviceId: device})
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{resp.GetCertificateDer()}, PrivateKey: key}, nil
}

func TestBootstrapRefusesBadToken(t *testing.T) {
	f := start(t)
	_, err := f.join(t, "pi-1", "wrong")
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "bootstrap token refused: unknown token") {
		t.Fatalf("got %v, want Unauthenticated naming the token", err)
	}
	_, err = f.join(t, "Not_Valid", "good")
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad device id: got %v, want InvalidArgument", err)
	}
}

func TestBootstrapCertificateNamesDeviceAndAccount(t *testing.T) {
	f := start(t)
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := identity.FromCertificate(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if want := (identity.Device{ID: "pi-1", Account: "acme"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestControlRequiresCertificate(t *testing.T) {
	f := start(t)
	s, err := f.dial(t, nil).Control(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{DeviceId: "pi-1"}}})
	_, err = s.Recv()
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want Unauthenticated", err)
	}
}

func TestControlRejectsHelloForAnotherDevice(t *testing.T) {
	f := start(t)
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.dial(t, cert).Control(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{DeviceId: "pi-2"}}})
	if _, err = s.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want PermissionDenied", err)
	}
}

// TestControlDeliversStateAndStreams walks one session: the full state waits
// for the fabric to be ready, deltas follow, status reaches the listener, and a
// data stream opened by the device reaches the consumer.
func TestControlDeliversStateAndStreams(t *testing.T) {
	f := start(t)
	l := &recorder{statuses: make(chan *hubv1.WorkloadStatus, 10)}
	f.fab.SetListener(l)
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	client := f.dial(t, cert)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := client.Control(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{
		DeviceId: "pi-1", Runtimes: []string{"wasm"}, Addresses: []string{"10.0.0.7"},
		Capacity: &hubv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30, Pods: 10},
	}}}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Recv(); err != nil || m.GetWelcome().GetAccount() != "acme" {
		t.Fatalf("welcome: got %v, %v", m, err)
	}
	poll.Until(t, 10*time.Second, func() bool { d, ok := f.fab.Device("acme", "pi-1"); return ok && d.Online })

	w := &hubv1.Workload{Uid: "u1", Namespace: "default", Name: "hello", Runtime: "wasm"}
	dev, why := f.fab.Place("acme", w)
	if dev != "pi-1" {
		t.Fatalf("place: got %q (%s)", dev, why)
	}
	f.fab.Assign("acme", dev, w) // before ready: held back
	f.fab.MarkReady()
	m, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetDesired().GetWorkloads(); len(got) != 1 || got[0].GetUid() != "u1" {
		t.Fatalf("desired: got %v", m)
	}
	f.fab.Remove("u1")
	if m, err = s.Recv(); err != nil || m.GetDelta().GetDeleteUid() != "u1" {
		t.Fatalf("delta: got %v, %v", m, err)
	}

	// A status for a removed-but-not-forgotten workload still gets through.
	if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Status{Status: &hubv1.StatusReport{
		Statuses: []*hubv1.WorkloadStatus{{Uid: "u1", Phase: "Succeeded"}, {Uid: "not-mine"}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if st := <-l.statuses; st.GetUid() != "u1" {
		t.Fatalf("status: got %v", st)
	}

	f.fab.Assign("acme", "pi-1", w)
	if m, err = s.Recv(); err != nil || m.GetDelta().GetUpsert().GetUid() != "u1" {
		t.Fatalf("upsert: got %v, %v", m, err)
	}
	opened := make(chan *fabric.Stream, 1)
	go func() {
		st, err := f.fab.OpenStream(ctx, "u1", &hubv1.StreamRequest{Container: "c"})
		if err != nil {
			t.Errorf("open stream: %v", err)
		}
		opened <- st
	}()
	m, err = s.Recv()
	if err != nil || m.GetStream() == nil {
		t.Fatalf("stream request: got %v, %v", m, err)
	}
	ds, err := client.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range []*hubv1.StreamFrame{{Open: m.GetStream().GetId()}, {Data: []byte("line 1\n")}, {Data: []byte("line 2\n")}, {Eof: true}} {
		if err := ds.Send(fr); err != nil {
			t.Fatal(err)
		}
	}
	st := <-opened
	data, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "line 1\nline 2\n" {
		t.Errorf("stream data: got %q", data)
	}
	st.Close()

	cancel()
	poll.Until(t, 10*time.Second, func() bool { d, _ := f.fab.Device("acme", "pi-1"); return !d.Online })
}

type recorder struct{ statuses chan *hubv1.WorkloadStatus }

func (r *recorder) DevicesChanged(string)                            {}
func (r *recorder) WorkloadStatus(_ string, s *hubv1.WorkloadStatus) { r.statuses <- s }
func (r *recorder) WorkloadEvent(string, *hubv1.Event)               {}

package hub

import (
	"crypto/tls"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/enrollment"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
)

// clock is a settable clock for the hub.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Step(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// control opens a control stream as id with cert and reads the welcome.
func (f *fixture) control(t *testing.T, id string, cert *tls.Certificate) (hubv1.Hub_ControlClient, error) {
	t.Helper()
	return f.controlWith(t, cert, &hubv1.Hello{DeviceId: id})
}

// controlWith opens a control stream with cert, sends hello and reads the
// welcome, or returns the error the hub ended the stream with.
func (f *fixture) controlWith(t *testing.T, cert *tls.Certificate, hello *hubv1.Hello) (hubv1.Hub_ControlClient, error) {
	t.Helper()
	s, err := f.dial(t, cert).Control(t.Context())
	if err != nil {
		return nil, err
	}
	// A refused stream may end before the hello is sent: Send then says
	// io.EOF and Recv says why.
	if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: hello}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if _, err := s.Recv(); err != nil {
		return nil, err
	}
	return s, nil
}

// probe sends a probe on s and waits for its reply: the session works.
func probe(t *testing.T, s hubv1.Hub_ControlClient, nonce uint64) error {
	t.Helper()
	if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Probe{Probe: &hubv1.HubProbe{Nonce: nonce}}}); err != nil {
		return err
	}
	for {
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if r := m.GetProbeReply(); r != nil && r.GetNonce() == nonce {
			return nil
		}
	}
}

// TestBootstrapRefusesEnrolledDevice: a bootstrap token, even the one that
// enrolled the device, never gets a certificate for an enrolled device ID,
// so it cannot take over its session and desired state. The enrolled
// device keeps its session. A hub restarted over the same records still
// refuses; the same ID in another account is another device.
func TestBootstrapRefusesEnrolledDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enrollments.json")
	open := func() *enrollment.Store {
		es, err := enrollment.Open(t.Context(), revocation.File{Path: path}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	toks := tokens{"good": "acme", "fresh": "acme", "other": "globex"}
	f := startConfig(t, Config{Enrollments: open(), Tokens: toks})
	f.fab.MarkReady()
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.control(t, "pi-1", cert)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused := func(what string, f *fixture, token string) {
		t.Helper()
		c, err := f.join(t, "pi-1", token)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "a bootstrap token enrols new devices only") ||
			!strings.Contains(err.Error(), "kubectl delete edgedevice acme.pi-1") {
			t.Errorf("%s: got %v (certificate %v), want AlreadyExists saying a token enrols new devices only", what, err, c != nil)
		}
	}
	wantRefused("the enrolling token", f, "good")
	wantRefused("another token", f, "fresh")
	if err := probe(t, s, 7); err != nil {
		t.Errorf("the enrolled device's session after the refused joins: %v", err)
	}
	if _, err := f.join(t, "pi-1", "other"); err != nil {
		t.Errorf("pi-1 of another account: %v", err)
	}

	restarted := startConfig(t, Config{CA: f.ca, Enrollments: open(), Tokens: toks})
	wantRefused("after a restart", restarted, "fresh")
}

// TestRenewalGrace: a device whose certificate expired while it was offline
// renews with its own key within the grace, and no token takes its ID in
// that time; past the grace it is refused and joins again with a token.
func TestRenewalGrace(t *testing.T) {
	clk := &clock{now: time.Now()}
	const ttl, grace = time.Hour, 24 * time.Hour
	f := startConfig(t, Config{CertTTL: ttl, RenewalGrace: grace, Now: clk.Now})
	f.fab.MarkReady()
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	renew := func(cert *tls.Certificate) (*tls.Certificate, error) {
		t.Helper()
		key, err := identity.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := identity.NewCSR(key, "pi-1")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.dial(t, cert).Renew(t.Context(), &hubv1.RenewRequest{CsrDer: csr})
		if err != nil {
			return nil, err
		}
		return &tls.Certificate{Certificate: [][]byte{resp.GetCertificateDer()}, PrivateKey: key}, nil
	}

	clk.Step(ttl + time.Hour) // offline past the certificate's expiry
	if _, err := f.control(t, "pi-1", cert); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Errorf("control with an expired certificate: got %v, want Unauthenticated saying it expired", err)
	}
	if _, err := f.join(t, "pi-1", "fresh"); status.Code(err) != codes.AlreadyExists {
		t.Errorf("a token for the device within its grace: got %v, want AlreadyExists", err)
	}
	renewed, err := renew(cert)
	if err != nil {
		t.Fatalf("renew within the grace: %v", err)
	}
	if _, err := f.control(t, "pi-1", renewed); err != nil {
		t.Errorf("control with the renewed certificate: %v", err)
	}

	clk.Step(ttl + grace + time.Second) // the renewed certificate, past its grace
	_, err = renew(renewed)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "more than the renewal grace (24h0m0s) ago; join again with a bootstrap token") {
		t.Errorf("renew past the grace: got %v, want Unauthenticated asking for a join", err)
	}
	if _, err := f.join(t, "pi-1", "fresh"); err != nil {
		t.Errorf("join with a token past the grace: %v", err)
	}
}

// TestBootstrapRateLimited: calls over the per-source limit are refused
// with ResourceExhausted, before the token is looked at, until the bucket
// refills.
func TestBootstrapRateLimited(t *testing.T) {
	clk := &clock{now: time.Now()}
	f := startConfig(t, Config{Now: clk.Now, BootstrapLimits: BootstrapLimits{PerSource: 0.5, PerSourceBurst: 2}})
	for i, tok := range []string{"good", "wrong"} {
		if _, err := f.join(t, "pi-"+string(rune('1'+i)), tok); status.Code(err) == codes.ResourceExhausted {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err := f.join(t, "pi-3", "good")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many bootstrap attempts from 127.0.0.1") ||
		!strings.Contains(err.Error(), "try again in 2s") {
		t.Errorf("call over the burst: got %v, want ResourceExhausted naming the address and when to retry", err)
	}
	clk.Step(2 * time.Second)
	if _, err := f.join(t, "pi-3", "good"); err != nil {
		t.Errorf("after the bucket refilled: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type call struct {
		at     time.Duration
		source string
	}
	for _, tc := range []struct {
		name  string
		cfg   BootstrapLimits
		calls []call
		want  []string // "" for allowed, else the error's start
	}{
		{
			name:  "per source",
			cfg:   BootstrapLimits{PerSource: 1, PerSourceBurst: 2, Total: 100, TotalBurst: 100},
			calls: []call{{0, "a"}, {0, "a"}, {0, "a"}, {0, "b"}, {time.Second, "a"}, {time.Second, "a"}},
			want:  []string{"", "", "too many bootstrap attempts from a (limit 1 a second, 2 at once); try again in 1s", "", "", "too many bootstrap attempts from a"},
		},
		{
			name:  "total",
			cfg:   BootstrapLimits{PerSource: 100, PerSourceBurst: 100, Total: 0.1, TotalBurst: 2},
			calls: []call{{0, "a"}, {0, "b"}, {0, "c"}, {10 * time.Second, "c"}},
			want:  []string{"", "", "too many bootstrap attempts at this hub (limit 0.1 a second, 2 at once); try again in 10s", ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.defaults()
			l := newLimiter(tc.cfg)
			var got []string
			for i, c := range tc.calls {
				err := l.allow(c.source, t0.Add(c.at))
				s := ""
				if err != nil {
					s = err.Error()
					if !strings.HasPrefix(s, tc.want[i]) || tc.want[i] == "" {
						s = "unexpected: " + s
					} else {
						s = tc.want[i]
					}
				}
				got = append(got, s)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

// Package client is the agent's side of the hub protocol. It joins the fabric
// with a bootstrap token, keeps and renews the device certificate, and holds
// the control stream open: desired state down to the workloads, status and
// events up, reconnecting with jittered back-off whenever the link drops. Data
// streams (logs) are opened on the hub's request on their own RPC.
package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgefabric/edgefabric/pkg/agent/clock"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/boundary"
)

// Workloads is what the client drives: the supervisor. Its methods must be safe
// for concurrent use; SetDesired and Apply may block briefly.
type Workloads interface {
	SetDesired(gen uint64, ws []*hubv1.Workload) error
	Apply(d *hubv1.WorkloadDelta) error
	Generation() uint64
	Statuses() []*hubv1.WorkloadStatus
	Updates() <-chan struct{}
	TakeReport() *hubv1.StatusReport
}

// UsageReporter is implemented by Workloads that can say what their running
// containers use; the client sends it with every heartbeat. Usage must not
// block.
type UsageReporter interface {
	Usage() []*hubv1.WorkloadUsage
}

// StreamHandler serves one data stream the hub asked for, writing with send
// until done or ctx ends, and reading what the hub sends (stdin, a forwarded
// connection's bytes, resizes) with recv. send is safe for concurrent use and
// blocks while the hub is behind (gRPC flow control); recv returns an error
// once the hub ended the stream, which also cancels ctx. A handler that never
// calls recv still sees the hub's end through ctx.
type StreamHandler func(ctx context.Context, req *hubv1.StreamRequest, send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) error

// Config configures a Client.
type Config struct {
	// Hub is the hub's host:port. Required.
	Hub string
	// HubCA verifies the hub's serving certificate. Required.
	HubCA *x509.CertPool
	// Token is the bootstrap token; needed only until the device has a
	// certificate (and again if it was offline past its certificate's expiry
	// and the hub's renewal grace). Empty means TokenFile's, if any.
	Token string
	// TokenFile is a file holding the bootstrap token, read only when the
	// device must join, and removed once it joined: the token is not kept
	// on the device. Empty means none; a file that does not exist holds no
	// token.
	TokenFile string
	// Now is the clock the certificate's age is judged by; nil means
	// Clock's Now.
	Now func() time.Time
	// Clock times the contact with the hub, the probes, the heartbeats and
	// the reconnect back-off; nil means the system clock.
	Clock clock.Clock
	// Contact records the contact with the hub and serves the requests to
	// resync; nil means one of the client's own (see LastContact, Resync).
	Contact *Contact
	// Credentials receive the device's mesh identity as it joins and
	// renews; nil means the client's own (see MeshIdentity).
	Credentials *Credentials
	// DeviceID is the device's ID. Required.
	DeviceID string
	// Hello returns the hello to send on each connect (device_id and
	// known_generation are filled in by the client).
	Hello func() *hubv1.Hello
	// HeartbeatInterval: zero means 10 s.
	HeartbeatInterval time.Duration
	// MinBackoff and MaxBackoff bound the reconnect back-off: zero means 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Scopes returns the device's newest scope observations; nil means none
	// to send. The hello carries them (fill them in Hello); updates are sent
	// whenever ScopesChanged fires. Nil Scopes sends no updates.
	Scopes func() *hubv1.Scopes
	// ScopesChanged signals that Scopes has something new; nil never does.
	ScopesChanged <-chan struct{}
	// Decommissioned is called when the hub refuses the device because it
	// was removed from the fleet (msg is the hub's message): the workloads
	// must stop, they run elsewhere now. The client keeps the store, and
	// joins again only with a bootstrap token other than the one it had
	// then. Nil means nothing is called. It may block briefly.
	Decommissioned func(msg string)
	// HubRTT receives each round trip to the hub measured by a probe (one on
	// connect, then one per heartbeat); nil drops them. It must not block.
	HubRTT func(time.Duration)
	// ContactInterval returns how often the device must hear from the hub
	// while connected (see LastContact): the client probes the hub that
	// often, on top of the probe sent with each heartbeat. Nil or zero means
	// the heartbeat's probe is enough. It is asked again after each probe,
	// and must not block.
	ContactInterval func() time.Duration
}

// ErrRefused is wrapped by errors that retrying cannot fix: the hub refused
// the bootstrap token or the device's identity.
var ErrRefused = errors.New("refused by the hub")

// ErrDecommissioned is wrapped by the errors of a device the hub refuses
// because it was removed from the fleet. The client keeps trying (a new join
// may follow), it does not return it.
var ErrDecommissioned = errors.New("decommissioned")

// Client is the hub connection.
type Client struct {
	cfg     Config
	store   *store.Store
	work    Workloads
	streams StreamHandler
	log     *slog.Logger

	mu        sync.Mutex
	id        store.Identity // Decommissioned set while refused as such
	key       *ecdsa.PrivateKey
	cert      *tls.Certificate
	connected bool
	lastErr   error
	// endSession ends the current session.
	endSession context.CancelFunc
	refused    bool // refused as decommissioned since the client started

	clock   clock.Clock
	contact *Contact
	creds   *Credentials

	probeMu sync.Mutex
	nonce   uint64
	probes  map[uint64]time.Time // probes sent and not answered yet, by nonce
}

// New returns a client; call Run.
func New(cfg Config, st *store.Store, work Workloads, streams StreamHandler, log *slog.Logger) (*Client, error) {
	if cfg.Hub == "" || cfg.HubCA == nil || cfg.DeviceID == "" {
		return nil, errors.New("client: Hub, HubCA and DeviceID are required")
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Hello == nil {
		cfg.Hello = func() *hubv1.Hello { return &hubv1.Hello{} }
	}
	clk := clock.Or(cfg.Clock)
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	if cfg.Contact == nil {
		cfg.Contact = NewContact(clk)
	}
	if cfg.Credentials == nil {
		cfg.Credentials = NewCredentials()
	}
	return &Client{
		cfg: cfg, store: st, work: work, streams: streams, log: log,
		clock: clk, contact: cfg.Contact, creds: cfg.Credentials, probes: map[uint64]time.Time{},
	}, nil
}

// isDecommissioned reports whether err is the hub's refusal of a device
// removed from the fleet.
func isDecommissioned(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.PermissionDenied && strings.Contains(st.Message(), hubv1.DecommissionedMarker)
}

// decommission records that the hub refused the device as decommissioned
// (err says so) and has the workloads stopped: every time, for an agent
// that restarted resumed its workloads from its store before it was refused.
func (c *Client) decommission(err error) {
	msg := strings.TrimPrefix(err.Error(), ErrDecommissioned.Error()+": ")
	tok, _ := c.token()
	c.mu.Lock()
	changed := c.id.Decommissioned != msg
	first := !c.refused
	c.refused = true
	c.id.Decommissioned = msg
	c.id.DecommissionedToken = tokenSum(tok)
	id := c.id
	c.mu.Unlock()
	if first {
		c.log.Error("device decommissioned: the hub refuses it; its workloads are stopped. Join it again with a new bootstrap token (edgeagent join --token-file)", "hub", c.cfg.Hub, "reason", msg)
	}
	if changed {
		if err := c.store.SetIdentity(id); err != nil {
			c.log.Warn("save identity", "err", err)
		}
	}
	if c.cfg.Decommissioned != nil {
		c.cfg.Decommissioned(msg)
	}
}

// Decommissioned returns the hub's refusal if the device was removed from
// the fleet, "" otherwise.
func (c *Client) Decommissioned() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id.Decommissioned
}

func tokenSum(token string) []byte {
	if token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Connected reports whether the control stream is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// LastContact is when the device last heard from the hub (the welcome, a
// desired state or change, a probe's reply): zero if it has not since the
// client started. The hub marks a device offline only after its control
// stream ended, so after anything it sent on it: the device-loss grace the
// hub counts from then starts no earlier than LastContact less the message's
// way over the network. Both are local clocks' elapsed times; no clock sync
// is needed.
func (c *Client) LastContact() time.Time { return c.contact.Last() }

// Resync ends the current control session, if any; the client connects again
// at once and the hub sends its full desired state.
func (c *Client) Resync() {
	c.mu.Lock()
	end := c.endSession
	c.mu.Unlock()
	if end != nil {
		end()
	}
}

// Run keeps the device joined until ctx ends. It returns early only with an
// error wrapping ErrRefused, which no retry can fix.
func (c *Client) Run(ctx context.Context) error {
	if err := c.loadIdentity(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { c.RenewLoop(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.contact.resync:
				c.Resync()
			}
		}
	})
	backoff := c.cfg.MinBackoff
	for {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrDecommissioned) {
			c.decommission(err)
		} else if errors.Is(err, ErrRefused) {
			return err
		}
		c.mu.Lock()
		c.connected, c.lastErr = false, err
		c.mu.Unlock()
		if err != nil {
			c.log.Warn("hub connection lost", "hub", c.cfg.Hub, "err", err, "retryIn", backoff)
		}
		// Full jitter keeps a fleet that lost the hub together from returning together.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := c.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
		if err == nil {
			backoff = c.cfg.MinBackoff
		}
	}
}

// session joins if needed, then runs one control stream until it breaks.
func (c *Client) session(ctx context.Context) error {
	if err := c.ensureCertificate(ctx); err != nil {
		return err
	}
	conn, err := c.dial(true)
	if err != nil {
		return err
	}
	defer conn.Close()
	hub := hubv1.NewHubClient(conn)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.endSession = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.endSession = nil
		c.mu.Unlock()
	}()
	stream, err := hub.Control(ctx)
	if err != nil {
		return err
	}
	hello := c.cfg.Hello()
	hello.DeviceId = c.cfg.DeviceID
	hello.KnownGeneration = c.work.Generation()
	// The hello carries every status as it is now: drop the changes waiting
	// to be sent first, so that one made after the snapshot is sent after
	// the welcome instead of dropped with them (a workload resumed at
	// start-up could otherwise stay unready at the hub for good).
	pending := c.work.TakeReport()
	hello.Statuses = c.work.Statuses()
	// A hub that refuses the device may end the stream before the hello is
	// sent: Send then says only io.EOF, and Recv says why.
	if err := stream.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: hello}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return refusal(err)
	}
	if first.GetWelcome() == nil {
		return errors.New("hub did not welcome the device")
	}
	c.mu.Lock()
	c.connected, c.lastErr = true, nil
	c.mu.Unlock()
	c.contact.touch()
	c.log.Info("connected to hub", "hub", c.cfg.Hub, "account", first.GetWelcome().GetAccount())
	// Events raised while the hub was away still go out; the statuses taken
	// with them are superseded by the hello's.
	if evs := pending.GetEvents(); len(evs) > 0 {
		if err := stream.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Status{Status: &hubv1.StatusReport{Events: evs}}}); err != nil {
			return err
		}
	}

	sendErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendErr <- c.sendLoop(ctx, stream)
	}()
	recvErr := c.recvLoop(ctx, hub, stream)
	cancel()
	wg.Wait()
	if recvErr != nil {
		return recvErr
	}
	return <-sendErr
}

// contactProbeEvery is how often to probe the hub so that the device hears
// from it at least every ContactInterval: a third of it (so that a lost
// reply or two does not let it lapse), at least 200 ms; HeartbeatInterval
// when no contact interval is asked for.
func (c *Client) contactProbeEvery() time.Duration {
	if c.cfg.ContactInterval == nil {
		return c.cfg.HeartbeatInterval
	}
	iv := c.cfg.ContactInterval()
	if iv <= 0 {
		return c.cfg.HeartbeatInterval
	}
	return min(max(iv/3, 200*time.Millisecond), c.cfg.HeartbeatInterval)
}

// maxProbes bounds the probes awaiting their reply; older ones are dropped.
const maxProbes = 8

// probe returns a new probe, remembering when it was sent.
func (c *Client) probe() *hubv1.AgentMessage {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if len(c.probes) >= maxProbes {
		clear(c.probes)
	}
	c.nonce++
	c.probes[c.nonce] = c.clock.Now()
	return &hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Probe{Probe: &hubv1.HubProbe{Nonce: c.nonce}}}
}

// probed hands the round trip of the probe nonce to HubRTT.
func (c *Client) probed(nonce uint64) {
	c.probeMu.Lock()
	sent, ok := c.probes[nonce]
	delete(c.probes, nonce)
	c.probeMu.Unlock()
	if ok && c.cfg.HubRTT != nil {
		c.cfg.HubRTT(c.clock.Since(sent))
	}
}

func (c *Client) sendLoop(ctx context.Context, stream grpc.BidiStreamingClient[hubv1.AgentMessage, hubv1.HubMessage]) error {
	t := c.clock.NewTicker(c.cfg.HeartbeatInterval)
	defer t.Stop()
	if err := stream.Send(c.probe()); err != nil {
		return err
	}
	probeT := c.clock.NewTimer(c.contactProbeEvery())
	defer probeT.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-probeT.C():
			every := c.contactProbeEvery()
			probeT.Reset(every)
			if every >= c.cfg.HeartbeatInterval {
				continue // the heartbeat's probe is enough
			}
			if err := stream.Send(c.probe()); err != nil {
				return err
			}
		case <-c.cfg.ScopesChanged:
			if c.cfg.Scopes == nil {
				continue
			}
			if sc := c.cfg.Scopes(); sc != nil {
				if err := stream.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Scopes{Scopes: sc}}); err != nil {
					return err
				}
			}
		case <-t.C():
			hb := &hubv1.Heartbeat{Time: timestamppb.New(c.clock.Now())}
			if u, ok := c.work.(UsageReporter); ok {
				hb.Usage = u.Usage()
			}
			if err := stream.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Heartbeat{Heartbeat: hb}}); err != nil {
				return err
			}
			if err := stream.Send(c.probe()); err != nil {
				return err
			}
		case <-c.work.Updates():
			r := c.work.TakeReport()
			if r == nil {
				continue
			}
			if err := stream.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Status{Status: r}}); err != nil {
				// What was taken is lost with the stream; the next hello
				// carries every status again.
				return err
			}
		}
	}
}

func (c *Client) recvLoop(ctx context.Context, hub hubv1.HubClient, stream grpc.BidiStreamingClient[hubv1.AgentMessage, hubv1.HubMessage]) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var parts hubv1.DesiredParts // of a desired state sent in parts, per stream
	for {
		m, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isDecommissioned(err) {
				return refusal(err)
			}
			return err
		}
		c.contact.touch()
		switch m := m.GetMsg().(type) {
		case *hubv1.HubMessage_Desired:
			full, err := parts.Add(m.Desired)
			if err != nil {
				c.log.Error("assemble desired state", "err", err)
			}
			if full == nil {
				continue
			}
			if err := c.setDesired(full); err != nil {
				c.log.Error("apply desired state", "err", err)
			}
		case *hubv1.HubMessage_Delta:
			if parts.Pending() {
				// The hub sends every part of a state before any change
				// to it; a change amid them says the parts are not whole.
				c.log.Error("assemble desired state", "err", errors.New("a workload change came amid the parts of a desired state; they are dropped"))
				parts.Reset()
			}
			if err := c.apply(m.Delta); err != nil {
				c.log.Error("apply workload change", "err", err)
			}
		case *hubv1.HubMessage_ProbeReply:
			c.probed(m.ProbeReply.GetNonce())
		case *hubv1.HubMessage_Stream:
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.serveStream(ctx, hub, m.Stream)
			}()
		}
	}
}

// setDesired hands a desired state to the workloads; a panic in them is
// the error.
func (c *Client) setDesired(d *hubv1.DesiredState) (err error) {
	defer boundary.Recover(c.log, "apply desired state", &err)
	return c.work.SetDesired(d.GetGeneration(), d.GetWorkloads())
}

// apply hands a change of the desired state to the workloads; a panic in
// them is the error.
func (c *Client) apply(d *hubv1.WorkloadDelta) (err error) {
	defer boundary.Recover(c.log, "apply workload change", &err)
	return c.work.Apply(d)
}

// handle runs the stream handler; a panic in it is the error, which the
// hub hears.
func (c *Client) handle(ctx context.Context, req *hubv1.StreamRequest, send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) (err error) {
	defer boundary.Recover(c.log, "serve stream", &err)
	if c.streams == nil {
		return errors.New("this device serves no streams")
	}
	return c.streams(ctx, req, send, recv)
}

// serveStream opens the data stream the hub asked for and runs the handler on it.
func (c *Client) serveStream(ctx context.Context, hub hubv1.HubClient, req *hubv1.StreamRequest) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := hub.Stream(ctx)
	if err != nil {
		c.log.Warn("open stream", "id", req.GetId(), "err", err)
		return
	}
	if err := s.Send(&hubv1.StreamFrame{Open: req.GetId()}); err != nil {
		return
	}
	// The hub ends the RPC when its consumer is gone; stop the handler then.
	// Frames the hub sends are handed to the handler's recv one at a time.
	frames := make(chan *hubv1.StreamFrame)
	var recvErr error
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			f, err := s.Recv()
			if err != nil {
				recvErr = err
				cancel()
				return
			}
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	recv := func() (*hubv1.StreamFrame, error) {
		select {
		case f := <-frames:
			return f, nil
		case <-recvDone:
			if recvErr != nil {
				return nil, recvErr
			}
			return nil, ctx.Err()
		}
	}
	var sendMu sync.Mutex
	send := func(f *hubv1.StreamFrame) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return s.Send(f)
	}
	err = c.handle(ctx, req, send, recv)
	sendMu.Lock()
	if err != nil && ctx.Err() == nil {
		_ = s.Send(&hubv1.StreamFrame{Error: err.Error()})
	} else if err == nil {
		_ = s.Send(&hubv1.StreamFrame{Eof: true})
	}
	sendMu.Unlock()
	_ = s.CloseSend()
	<-ctx.Done()
	<-recvDone
}

// Nearest asks the hub for the devices of this device's account nearest to
// it with at least free unallocated (limit 0: the hub's default). It dials a
// connection of its own, so it works whether or not the control stream is up.
func (c *Client) Nearest(ctx context.Context, free *hubv1.Resources, limit int) ([]*hubv1.NearestDevice, error) {
	conn, err := c.dial(true)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := hubv1.NewHubClient(conn).Nearest(ctx, &hubv1.NearestRequest{Free: free, Limit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("ask the hub for the nearest devices: %w", err)
	}
	return resp.GetDevices(), nil
}

// refusal marks errors that mean the hub will never accept this device as is.
func refusal(err error) error {
	if isDecommissioned(err) {
		return fmt.Errorf("%w: %v", ErrDecommissioned, status.Convert(err).Message())
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.AlreadyExists:
		return fmt.Errorf("%w: %v", ErrRefused, status.Convert(err).Message())
	}
	return err
}

func (c *Client) dial(withCert bool) (*grpc.ClientConn, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: c.cfg.HubCA}
	if withCert {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.cert, nil
		}
	}
	return grpc.NewClient(c.cfg.Hub,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(hubv1.MaxMessageBytes), grpc.MaxCallSendMsgSize(hubv1.MaxMessageBytes)),
	)
}

// Package hub is the provider's gRPC endpoint that agents dial. It signs device
// certificates for bootstrap tokens, authorises every other call by the
// caller's certificate (refusing those of decommissioned devices, see
// Revocations), and pumps each agent's control and data streams into
// the fabric. Run it with Serve; it returns once every stream has ended.
//
// A bootstrap token enrols new devices only: the hub remembers every device
// it issued a certificate to (Enrollments) and refuses a token for an
// enrolled device ID. Bootstrap is rate-limited per source address and in
// total (BootstrapLimits). A device renews with its own key, also after its
// certificate expired, within RenewalGrace of the expiry.
package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/boundary"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/enrollment"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// Tokens checks bootstrap tokens. Implementations may block on I/O and must be
// safe for concurrent use.
type Tokens interface {
	// Account returns the account token belongs to, or an error that says why
	// the token is refused (unknown, expired); the error text reaches the agent.
	Account(ctx context.Context, token string) (string, error)
	// Spend is called once token is about to enrol a device: a single-use
	// token is consumed, atomically, so that of two callers only one
	// succeeds; the other gets an error that says the token was used. Other
	// tokens are not changed.
	Spend(ctx context.Context, token string) error
}

// Enrollments remembers the enrolled devices: those holding a certificate,
// or one they may still renew. Implementations must be safe for concurrent
// use; Enrolled must not block, the others may write through to storage.
// *enrollment.Store implements it.
type Enrollments interface {
	// Enrolled returns d's record if d is enrolled at now.
	Enrolled(d identity.Device, now time.Time) (enrollment.Record, bool)
	// Enrol records d as enrolled by a join.
	Enrol(ctx context.Context, d identity.Device, r enrollment.Record, now time.Time) error
	// Renewed records a renewal of d's certificate.
	Renewed(ctx context.Context, d identity.Device, issued, until, now time.Time) error
	// Seen records d proving a certificate, unless a record as new is kept.
	Seen(ctx context.Context, d identity.Device, issued, until, now time.Time) error
}

// Revocations says which devices' certificates are revoked. Implementations
// must be safe for concurrent use and must not block.
type Revocations interface {
	// RevokedBefore returns the time before which d's certificates are
	// revoked (certificates issued at or after it are good), if d has a
	// revocation in force at now.
	RevokedBefore(d identity.Device, now time.Time) (time.Time, bool)
}

// Config configures a Server.
type Config struct {
	// CA signs device certificates and verifies client certificates. Required.
	CA *identity.CA
	// Hosts are the DNS names and IPs agents dial the hub by; the serving
	// certificate names them. Empty means "localhost" and 127.0.0.1.
	Hosts []string
	// Tokens checks bootstrap tokens. Required.
	Tokens Tokens
	// CertTTL is how long a device certificate is valid; zero means 24 hours.
	CertTTL time.Duration
	// Revocations says which devices were decommissioned; nil means none.
	Revocations Revocations
	// KeepaliveTime is how often an idle connection is probed; zero means 10 s.
	// A device that does not answer within the same time again is dropped.
	KeepaliveTime time.Duration
	// Enrollments remembers which devices are enrolled; nil keeps them in
	// memory only (a restart forgets them).
	Enrollments Enrollments
	// RenewalGrace is how long after its certificate expired a device may
	// still renew it with its own key; past it, it joins again with a
	// token. Zero means DefaultRenewalGrace; negative means none.
	RenewalGrace time.Duration
	// BootstrapLimits bounds how often Bootstrap may be called; the zero
	// value has the defaults its fields name.
	BootstrapLimits BootstrapLimits
	// Now is the clock certificates are issued and checked by; nil means
	// time.Now.
	Now func() time.Time
}

// DefaultRenewalGrace is the RenewalGrace of a zero Config: a device offline
// for up to 30 days past its certificate's expiry renews without a token.
const DefaultRenewalGrace = 30 * 24 * time.Hour

func (c *Config) defaults() {
	if c.CertTTL == 0 {
		c.CertTTL = 24 * time.Hour
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = 10 * time.Second
	}
	if len(c.Hosts) == 0 {
		c.Hosts = []string{"localhost", "127.0.0.1"}
	}
	switch {
	case c.RenewalGrace == 0:
		c.RenewalGrace = DefaultRenewalGrace
	case c.RenewalGrace < 0:
		c.RenewalGrace = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.BootstrapLimits.defaults()
}

// Server serves the hub protocol.
type Server struct {
	hubv1.UnimplementedHubServer
	cfg Config
	fab *fabric.Fabric
	log *slog.Logger
	now func() time.Time
	lim *limiter

	joinMu  sync.Mutex
	joining map[identity.Device]bool // bootstraps in progress
}

var _ hubv1.HubServer = (*Server)(nil)

// New returns a hub serving fab.
func New(cfg Config, fab *fabric.Fabric, log *slog.Logger) (*Server, error) {
	cfg.defaults()
	if cfg.CA == nil || cfg.Tokens == nil {
		return nil, errors.New("hub: CA and Tokens are required")
	}
	if cfg.Enrollments == nil {
		es, err := enrollment.Open(context.Background(), &enrollment.Memory{}, cfg.Now())
		if err != nil {
			return nil, err
		}
		cfg.Enrollments = es
	}
	return &Server{cfg: cfg, fab: fab, log: log, now: cfg.Now, lim: newLimiter(cfg.BootstrapLimits), joining: map[identity.Device]bool{}}, nil
}

// TLSConfig returns the serving TLS configuration: TLS 1.3, a fresh serving
// certificate from the CA, and client certificates asked for (only Bootstrap
// may be called without one). The handshake proves the client holds the
// certificate's key; each call then verifies the certificate against the CA
// at the hub's clock (see certificate), so Renew may accept one that expired
// within the renewal grace.
func (s *Server) TLSConfig() (*tls.Config, error) {
	key, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	cert, err := s.cfg.CA.SignServer(key, "edgefabric-hub", s.cfg.Hosts, s.now(), 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, s.cfg.CA.Cert.Raw}, PrivateKey: key, Leaf: cert}},
		ClientAuth:   tls.RequestClientCert,
	}, nil
}

// Serve serves on lis until ctx ends, then stops gracefully (data streams are
// cut after five seconds) and returns once all handlers have returned.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	tc, err := s.TLSConfig()
	if err != nil {
		return err
	}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tc)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: s.cfg.KeepaliveTime, Timeout: s.cfg.KeepaliveTime}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(hubv1.MaxMessageBytes), grpc.MaxSendMsgSize(hubv1.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(s.recoverUnary), grpc.ChainStreamInterceptor(s.recoverStream),
	)
	hubv1.RegisterHubServer(gs, s)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
		<-stopped
	}
	return <-errc // nil after a stop
}

// recoverUnary answers a call whose handler panicked with Internal, and
// logs the panic, instead of ending the provider.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if err != nil && errors.Is(err, boundary.ErrPanic) {
			resp, err = nil, status.Error(codes.Internal, err.Error())
		}
	}()
	defer boundary.Recover(s.log, info.FullMethod, &err)
	return handler(ctx, req)
}

// recoverStream is recoverUnary for streams; the goroutines a stream handler
// starts recover on their own.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if err != nil && errors.Is(err, boundary.ErrPanic) {
			err = status.Error(codes.Internal, err.Error())
		}
	}()
	defer boundary.Recover(s.log, info.FullMethod, &err)
	return handler(srv, ss)
}

// Bootstrap signs a certificate for a new device that proves a bootstrap
// token. It refuses a device ID that is enrolled already (AlreadyExists), a
// decommissioned device's ID with the token that enrolled it
// (PermissionDenied), and callers over the rate limits (ResourceExhausted).
func (s *Server) Bootstrap(ctx context.Context, req *hubv1.BootstrapRequest) (*hubv1.BootstrapResponse, error) {
	if err := identity.ValidName(req.GetDeviceId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "device id: %v", err)
	}
	src := peerHost(ctx)
	if err := s.lim.allow(src, s.now()); err != nil {
		s.log.Warn("bootstrap refused", "device", req.GetDeviceId(), "peer", peerAddr(ctx), "err", err)
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	token := req.GetToken()
	account, err := s.cfg.Tokens.Account(ctx, token)
	if err != nil {
		s.log.Warn("bootstrap refused", "device", req.GetDeviceId(), "token", identity.TokenHint(token), "peer", peerAddr(ctx), "err", err)
		return nil, status.Errorf(codes.Unauthenticated, "bootstrap token refused: %v", err)
	}
	d := identity.Device{ID: req.GetDeviceId(), Account: account}
	if !s.startJoin(d) {
		return nil, status.Errorf(codes.Aborted, "another join of device %s of account %s is in progress", d.ID, d.Account)
	}
	defer s.endJoin(d)
	now := s.now()
	if err := s.admit(d, token, now); err != nil {
		s.log.Warn("bootstrap refused", "device", d.ID, "account", d.Account, "token", identity.TokenHint(token), "peer", peerAddr(ctx), "err", err)
		return nil, err
	}
	cert, err := s.sign(req.GetCsrDer(), d)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Tokens.Spend(ctx, token); err != nil {
		s.log.Warn("bootstrap refused", "device", d.ID, "account", d.Account, "token", identity.TokenHint(token), "peer", peerAddr(ctx), "err", err)
		return nil, status.Errorf(codes.Unauthenticated, "bootstrap token refused: %v", err)
	}
	rec := enrollment.Record{Issued: identity.IssuedAt(cert), Until: cert.NotAfter.Add(s.cfg.RenewalGrace), Token: enrollment.TokenSum(token)}
	if err := s.cfg.Enrollments.Enrol(ctx, d, rec, now); err != nil {
		s.log.Error("bootstrap not recorded", "device", d.ID, "account", d.Account, "err", err)
		return nil, status.Errorf(codes.Unavailable, "record the enrollment of device %s: %v", d.ID, err)
	}
	s.log.Info("device bootstrapped", "device", d.ID, "account", d.Account, "token", identity.TokenHint(token), "peer", peerAddr(ctx))
	return s.response(cert, d), nil
}

// admit refuses a join of d with token at now if d is enrolled: a token
// never takes over an enrolled device. A decommissioned device may join
// again, but not with the token that enrolled it.
func (s *Server) admit(d identity.Device, token string, now time.Time) error {
	rec, ok := s.cfg.Enrollments.Enrolled(d, now)
	if !ok {
		return nil
	}
	if s.cfg.Revocations != nil {
		if before, revoked := s.cfg.Revocations.RevokedBefore(d, now); revoked && rec.Issued.Before(before) {
			if rec.Token != "" && rec.Token == enrollment.TokenSum(token) {
				return status.Errorf(codes.PermissionDenied,
					"device %s of account %s was decommissioned and the token %s enrolled it; join it again with a new bootstrap token",
					d.ID, d.Account, identity.TokenHint(token))
			}
			return nil
		}
	}
	return status.Errorf(codes.AlreadyExists,
		"device %s of account %s is enrolled (its certificate, or one it may renew, is good until %s); a bootstrap token enrols new devices only. "+
			"To replace the device, delete its EdgeDevice %s.%s (kubectl delete edgedevice %s.%s) and join it again with a new token",
		d.ID, d.Account, rec.Until.UTC().Format(time.RFC3339), d.Account, d.ID, d.Account, d.ID)
}

// startJoin marks a bootstrap of d in progress, or returns false if one is.
func (s *Server) startJoin(d identity.Device) bool {
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if s.joining[d] {
		return false
	}
	s.joining[d] = true
	return true
}

func (s *Server) endJoin(d identity.Device) {
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	delete(s.joining, d)
}

// Nearest lists the caller's account's devices nearest to it that have the
// requested free capacity.
func (s *Server) Nearest(ctx context.Context, req *hubv1.NearestRequest) (*hubv1.NearestResponse, error) {
	d, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 || req.GetLimit() > 100 {
		return nil, status.Errorf(codes.InvalidArgument, "limit %d out of range 0-100", req.GetLimit())
	}
	devs := s.fab.Devices(d.Account)
	i := slices.IndexFunc(devs, func(x fabric.Device) bool { return x.ID == d.ID })
	if i < 0 {
		return nil, status.Error(codes.FailedPrecondition, "the device is not connected")
	}
	free := fabric.Resources(req.GetFree())
	resp := &hubv1.NearestResponse{}
	for _, n := range fabric.Nearest(devs[i], devs, free, int(req.GetLimit())) {
		resp.Devices = append(resp.Devices, &hubv1.NearestDevice{
			DeviceId: n.ID, EstimatedRttMs: float64(n.RTT) / float64(time.Millisecond), DistanceKm: n.Km,
			Free:      &hubv1.Resources{CpuMillis: n.Free.CPUMillis, MemoryBytes: n.Free.MemoryBytes, Pods: n.Free.Pods},
			Addresses: n.Addresses, MeshPort: n.Scopes.GetMeshPort(), SameNetwork: n.SameNetwork,
		})
	}
	return resp, nil
}

// Renew signs a fresh certificate for the caller's device. The caller's
// certificate may have expired up to the renewal grace ago.
func (s *Server) Renew(ctx context.Context, req *hubv1.RenewRequest) (*hubv1.BootstrapResponse, error) {
	d, err := s.callerRenewing(ctx)
	if err != nil {
		return nil, err
	}
	cert, err := s.sign(req.GetCsrDer(), d)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Enrollments.Renewed(ctx, d, identity.IssuedAt(cert), cert.NotAfter.Add(s.cfg.RenewalGrace), s.now()); err != nil {
		s.log.Error("renewal not recorded", "device", d.ID, "account", d.Account, "err", err)
		return nil, status.Errorf(codes.Unavailable, "record the renewal of device %s: %v", d.ID, err)
	}
	return s.response(cert, d), nil
}

func (s *Server) sign(csr []byte, d identity.Device) (*x509.Certificate, error) {
	now := s.now()
	if s.cfg.Revocations != nil {
		// A device joining again within the second it was decommissioned
		// gets a certificate issued at the revocation, which is good.
		if before, ok := s.cfg.Revocations.RevokedBefore(d, now); ok && now.Before(before) {
			now = before
		}
	}
	cert, err := s.cfg.CA.SignDevice(csr, d, now, s.cfg.CertTTL)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "sign: %v", err)
	}
	return cert, nil
}

func (s *Server) response(cert *x509.Certificate, d identity.Device) *hubv1.BootstrapResponse {
	return &hubv1.BootstrapResponse{
		CertificateDer: cert.Raw,
		CaDer:          s.cfg.CA.Cert.Raw,
		Account:        d.Account,
		DeviceId:       d.ID,
		NotAfter:       timestamppb.New(cert.NotAfter),
	}
}

// Control runs one agent session: hello, then the fabric's messages down and
// the agent's reports up, until either side ends it.
func (s *Server) Control(stream grpc.BidiStreamingServer[hubv1.AgentMessage, hubv1.HubMessage]) error {
	d, leaf, err := s.callerCertificate(stream.Context(), false)
	if err != nil {
		return err
	}
	// A device enrolled before enrollments were recorded is recorded now.
	if err := s.cfg.Enrollments.Seen(stream.Context(), d, identity.IssuedAt(leaf), leaf.NotAfter.Add(s.cfg.RenewalGrace), s.now()); err != nil {
		s.log.Warn("enrollment not recorded", "device", d.ID, "account", d.Account, "err", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message of a control stream must be a hello")
	}
	if hello.GetDeviceId() != d.ID {
		return status.Errorf(codes.PermissionDenied, "hello names device %q but the certificate names %q", hello.GetDeviceId(), d.ID)
	}
	if err := fabric.CheckHello(hello); err != nil {
		s.log.Warn("hello refused", "device", d.ID, "account", d.Account, "err", err)
		return status.Errorf(codes.InvalidArgument, "hello: %v", err)
	}
	if err := stream.Send(&hubv1.HubMessage{Msg: &hubv1.HubMessage_Welcome{Welcome: &hubv1.Welcome{
		Account: d.Account, ServerTime: timestamppb.New(s.now()),
	}}}); err != nil {
		return err
	}

	sess := s.fab.Connect(d, hello)
	defer s.fab.Disconnect(sess)
	// Decommissioned since the certificate was checked above: the
	// decommission dropped the device before this session existed.
	if _, err := s.caller(stream.Context()); status.Code(err) == codes.PermissionDenied {
		s.fab.Drop(d, true)
		return err
	}

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sendErr := make(chan error, 1)
	go func() {
		defer cancel()
		var err error
		defer func() {
			if err != nil {
				sendErr <- err
			}
		}()
		defer boundary.Recover(s.log, "send to device", &err)
		for {
			msgs, err := sess.Next(ctx)
			if err != nil {
				sendErr <- err
				return
			}
			for _, m := range msgs {
				if err := stream.Send(m); err != nil {
					sendErr <- err
					return
				}
			}
		}
	}()

	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if err := s.handle(d, sess, m); err != nil {
				s.log.Warn("device message dropped", "device", d.ID, "account", d.Account, "err", err)
			}
		}
	}()

	select {
	case err = <-recvErr:
		cancel()
		if serr := <-sendErr; err == nil {
			err = serr
		}
	case err = <-sendErr:
		// The sender ended: the session was replaced, or the stream broke.
		// Returning ends the RPC, which ends the receiver.
	}
	if errors.Is(err, fabric.ErrDecommissioned) {
		return decommissioned(d)
	}
	if errors.Is(err, fabric.ErrSessionClosed) {
		return status.Error(codes.Aborted, "replaced by a newer session of the same device")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return nil
	}
	return err
}

// handle passes one message of a device's control stream to the fabric. A
// message the checks refuse, or one whose handling panicked, is dropped
// with the error; the session goes on.
func (s *Server) handle(d identity.Device, sess *fabric.Session, m *hubv1.AgentMessage) (err error) {
	defer boundary.Recover(s.log, "device message", &err)
	switch m := m.GetMsg().(type) {
	case *hubv1.AgentMessage_Heartbeat:
		s.fab.Heartbeat(d)
		s.fab.ReportUsage(d, m.Heartbeat.GetUsage())
	case *hubv1.AgentMessage_Status:
		s.fab.Heartbeat(d)
		if err := fabric.CheckStatusReport(m.Status); err != nil {
			return fmt.Errorf("status report: %w", err)
		}
		s.fab.Report(d, m.Status)
	case *hubv1.AgentMessage_Scopes:
		s.fab.Heartbeat(d)
		if err := fabric.CheckScopes(m.Scopes); err != nil {
			return fmt.Errorf("scopes: %w", err)
		}
		s.fab.ReportScopes(d, m.Scopes)
	case *hubv1.AgentMessage_Probe:
		sess.Reply(m.Probe.GetNonce())
	}
	return nil
}

// Stream carries one data stream the hub asked a device to open. Frames go
// from the device to the consumer and back one at a time, so each direction
// is flow controlled end to end by this RPC alone.
func (s *Server) Stream(stream grpc.BidiStreamingServer[hubv1.StreamFrame, hubv1.StreamFrame]) error {
	d, err := s.caller(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	st := fabric.NewStream()
	if err := s.fab.AcceptStream(d, first.GetOpen(), st); err != nil {
		return status.Error(codes.NotFound, err.Error())
	}
	ctx := stream.Context()
	received := make(chan struct{})
	go func() {
		defer close(received)
		var err error
		defer func() {
			if err != nil {
				st.Finish(err)
			}
		}()
		defer boundary.Recover(s.log, "stream from device", &err)
		for {
			f, err := stream.Recv()
			switch {
			case errors.Is(err, io.EOF):
				st.Finish(nil)
				return
			case err != nil:
				st.Finish(err)
				return
			case f.GetError() != "":
				st.Finish(errors.New(f.GetError()))
				return
			}
			if len(f.GetData()) > 0 || f.GetExit() != nil || f.GetCloseWrite() {
				f.Eof = false
				if err := st.Deliver(ctx, f); err != nil {
					return // the consumer closed
				}
			}
			if f.GetEof() {
				st.Finish(nil)
				return
			}
		}
	}()
	for {
		select {
		case f := <-st.Outgoing():
			if err := stream.Send(f); err != nil {
				st.Finish(err)
				<-received
				return nil
			}
		case <-received:
			// The device is done; wait for the consumer so the device's
			// last frames are not cut.
			select {
			case <-st.Done():
			case <-ctx.Done():
			}
			return nil
		case <-st.Done():
			return nil
		case <-ctx.Done():
			st.Finish(ctx.Err())
			return nil
		}
	}
}

// caller is the device named by the verified client certificate of ctx's
// peer, unless that certificate was revoked.
func (s *Server) caller(ctx context.Context) (identity.Device, error) {
	d, _, err := s.callerCertificate(ctx, false)
	return d, err
}

// callerRenewing is caller for Renew: the certificate may have expired
// within the renewal grace.
func (s *Server) callerRenewing(ctx context.Context) (identity.Device, error) {
	d, _, err := s.callerCertificate(ctx, true)
	return d, err
}

func (s *Server) callerCertificate(ctx context.Context, renewing bool) (identity.Device, *x509.Certificate, error) {
	d, leaf, err := s.certificate(ctx, renewing)
	if err != nil {
		return identity.Device{}, nil, err
	}
	if s.revoked(d, leaf) {
		return identity.Device{}, nil, decommissioned(d)
	}
	return d, leaf, nil
}

// revoked reports whether leaf, d's certificate, was revoked.
func (s *Server) revoked(d identity.Device, leaf *x509.Certificate) bool {
	if s.cfg.Revocations == nil {
		return false
	}
	before, ok := s.cfg.Revocations.RevokedBefore(d, s.now())
	return ok && identity.IssuedAt(leaf).Before(before)
}

// decommissioned is the status a decommissioned device is refused with.
func decommissioned(d identity.Device) error {
	return status.Error(codes.PermissionDenied, hubv1.DecommissionedMessage(d.ID))
}

// certificate is the device named by the client certificate of ctx's peer,
// and that certificate, verified against the CA at the hub's clock. The TLS
// handshake proved the peer holds its key. When renewing, a certificate
// that expired less than the renewal grace ago is accepted.
func (s *Server) certificate(ctx context.Context, renewing bool) (identity.Device, *x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return identity.Device{}, nil, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return identity.Device{}, nil, status.Error(codes.Unauthenticated, "a device certificate is required; bootstrap first")
	}
	leaf := ti.State.PeerCertificates[0]
	if !hasClientAuth(leaf) {
		return identity.Device{}, nil, status.Error(codes.PermissionDenied, "certificate is not a device certificate")
	}
	now := s.now()
	at := now
	if renewing && now.After(leaf.NotAfter) && now.Before(leaf.NotAfter.Add(s.cfg.RenewalGrace)) {
		at = leaf.NotAfter
	}
	inter := x509.NewCertPool()
	for _, c := range ti.State.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: s.cfg.CA.Pool(), Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		var inval x509.CertificateInvalidError
		if errors.As(err, &inval) && inval.Reason == x509.Expired && now.After(leaf.NotAfter) {
			if renewing {
				return identity.Device{}, nil, status.Errorf(codes.Unauthenticated,
					"the device certificate expired at %s, more than the renewal grace (%s) ago; join again with a bootstrap token",
					leaf.NotAfter.UTC().Format(time.RFC3339), s.cfg.RenewalGrace)
			}
			return identity.Device{}, nil, status.Errorf(codes.Unauthenticated,
				"the device certificate expired at %s; renew it, or join again with a bootstrap token", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return identity.Device{}, nil, status.Errorf(codes.Unauthenticated, "device certificate: %v", err)
	}
	d, err := identity.FromCertificate(leaf)
	if err != nil {
		return identity.Device{}, nil, status.Error(codes.PermissionDenied, fmt.Sprintf("certificate: %v", err))
	}
	return d, leaf, nil
}

func hasClientAuth(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			return true
		}
	}
	return false
}

// peerHost is the IP address of ctx's peer, what rate limits count by.
func peerHost(ctx context.Context) string {
	a := peerAddr(ctx)
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String()
	}
	return ""
}

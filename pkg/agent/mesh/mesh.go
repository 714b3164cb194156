// Package mesh is the device mesh: a TLS 1.3 listener on which agents of one
// LAN prove to each other who they are, and measure the round trips between
// them. Both sides present their device certificate; a peer counts only when
// its certificate chains to the fabric's CA and names the same account (and,
// when the caller expected one, the device ID it was announced as). Nothing
// an mDNS announcement says is trusted until Probe has verified it.
//
// The wire protocol is one JSON object per line over the TLS connection: the
// dialer sends a ping carrying its Vivaldi coordinate, the listener answers
// with a pong carrying its own. Connections are kept and reused for later
// probes. Run serves the listener until its context ends; Probe may be called
// from any goroutine.
package mesh

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

// Bounds of what a peer can make the mesh hold.
const (
	// MaxLineBytes bounds one line of the protocol, its newline included; a
	// peer that sends a longer one is dropped.
	MaxLineBytes = 4096
	// MaxHandshakes bounds the connections waiting for their TLS handshake
	// (unauthenticated, each for at most Config.Timeout); more are closed
	// at once.
	MaxHandshakes = 64
	// MaxHandshakesPerAddress bounds them per remote address, so that one
	// host flooding the port leaves room for the others.
	MaxHandshakesPerAddress = 8
	// MaxConns bounds the connections served at once, proven or not.
	MaxConns = 256
)

// Identity is what the mesh proves itself with and checks peers against.
type Identity struct {
	// Certificate is the device certificate; a renewed one replaces it.
	Certificate *tls.Certificate
	// CA verifies peers' certificates.
	CA *x509.CertPool
	// Account is the device's account; peers must name the same.
	Account string
	// DeviceID is the device's own ID.
	DeviceID string
}

// Config configures a Mesh.
type Config struct {
	// Listen is the listen address, host:port; ":0" picks a free port. Empty
	// means ":7946".
	Listen string
	// Identity returns the device's identity as it is now; ok false means the
	// device has not joined yet, and connections are refused. Required.
	Identity func() (Identity, bool)
	// Coordinate returns the device's Vivaldi coordinate, sent to peers; nil
	// sends none.
	Coordinate func() *proximity.Coordinate
	// Timeout bounds one probe, the handshake included; zero means 3 s.
	Timeout time.Duration
}

// Mesh is the device mesh. Its methods are safe for concurrent use.
type Mesh struct {
	cfg Config
	log *slog.Logger
	lis net.Listener

	mu    sync.Mutex
	conns map[string]*conn // by address dialled
}

// Result is what one probe learnt about a peer.
type Result struct {
	// Device is the peer's identity as its certificate proves it.
	Device identity.Device
	// RTT is the round trip of the ping, without the handshake.
	RTT time.Duration
	// Coordinate is the peer's Vivaldi coordinate; nil if it sent none.
	Coordinate *proximity.Coordinate
}

// ErrNotProven is wrapped by Probe's errors when the peer's certificate does
// not prove it is a device of the same account (or the expected device).
var ErrNotProven = errors.New("peer not proven")

// New listens on cfg.Listen; call Run to serve.
func New(cfg Config, log *slog.Logger) (*Mesh, error) {
	if cfg.Identity == nil {
		return nil, errors.New("mesh: Identity is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = ":7946"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("mesh listen %s: %w", cfg.Listen, err)
	}
	return &Mesh{cfg: cfg, log: log, lis: lis, conns: map[string]*conn{}}, nil
}

// Port is the port the mesh listens on.
func (m *Mesh) Port() int { return m.lis.Addr().(*net.TCPAddr).Port }

// Run serves peers until ctx ends, then closes the listener and every
// connection and returns nil once its goroutines have ended.
func (m *Mesh) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { m.lis.Close() })
	defer stop()
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	// Unauthenticated connections by remote address: the ones in their
	// handshake; serve takes itself out once the handshake is over.
	var handshaking handshakes
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		m.mu.Lock()
		for addr, c := range m.conns {
			c.tc.Close()
			delete(m.conns, addr)
		}
		m.mu.Unlock()
	}()
	for {
		c, err := m.lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				m.lis.Close()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mesh accept: %w", err)
		}
		host := remoteHost(c)
		mu.Lock()
		admit := len(open) < MaxConns && handshaking.add(host)
		if admit {
			open[c] = true
		}
		mu.Unlock()
		if !admit {
			m.log.Debug("mesh connection refused: too many", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		wg.Go(func() {
			m.serve(c, func() { handshaking.done(host) })
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		})
	}
}

// message is one line of the mesh protocol.
type message struct {
	Type       string                `json:"type"` // ping, pong
	Seq        uint64                `json:"seq"`
	Coordinate *proximity.Coordinate `json:"coordinate,omitempty"`
}

// handshakes counts the connections in their handshake, by remote host.
type handshakes struct {
	mu     sync.Mutex
	total  int
	byHost map[string]int
}

// add counts one more from host, unless that is beyond the bounds.
func (h *handshakes) add(host string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byHost == nil {
		h.byHost = map[string]int{}
	}
	if h.total >= MaxHandshakes || h.byHost[host] >= MaxHandshakesPerAddress {
		return false
	}
	h.total++
	h.byHost[host]++
	return true
}

func (h *handshakes) done(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.byHost[host]--; h.byHost[host] <= 0 {
		delete(h.byHost, host)
	}
}

func remoteHost(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// newLineReader reads lines of at most MaxLineBytes from r.
func newLineReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, MaxLineBytes) }

// readLine reads one line, newline included; a line longer than
// MaxLineBytes is an error. The line is valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
	}
	return line, err
}

// decodeLine decodes one line of the protocol, which must be a message of
// type want with a valid coordinate, if any.
func decodeLine(line []byte, want string) (message, error) {
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		return message{}, fmt.Errorf("decode %.64q: %w", line, err)
	}
	if m.Type != want {
		return message{}, fmt.Errorf("got a %.16q, want a %s", m.Type, want)
	}
	if m.Coordinate != nil && (!m.Coordinate.Valid() || len(m.Coordinate.Vec) > maxDimensions) {
		return message{}, errors.New("invalid coordinate")
	}
	return m, nil
}

// maxDimensions bounds a coordinate's dimensions.
const maxDimensions = 16

// serve answers one peer's pings until it hangs up; handshaken is called
// once the handshake is over, whichever way.
func (m *Mesh) serve(raw net.Conn, handshaken func()) {
	defer raw.Close()
	id, ok := m.cfg.Identity()
	if !ok {
		handshaken()
		return
	}
	tc := tls.Server(raw, m.tlsConfig(id, ""))
	_ = tc.SetDeadline(time.Now().Add(m.cfg.Timeout))
	err := tc.Handshake()
	handshaken()
	if err != nil {
		m.log.Debug("mesh handshake refused", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	_ = tc.SetDeadline(time.Time{})
	r := newLineReader(tc)
	enc := json.NewEncoder(tc)
	for {
		// A silent peer is dropped after a minute; it dials again.
		_ = tc.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := readLine(r)
		if err != nil {
			return
		}
		in, err := decodeLine(line, "ping")
		if err != nil {
			m.log.Debug("mesh peer dropped", "remote", raw.RemoteAddr().String(), "err", err)
			return
		}
		out := message{Type: "pong", Seq: in.Seq}
		if m.cfg.Coordinate != nil {
			out.Coordinate = m.cfg.Coordinate()
		}
		_ = tc.SetWriteDeadline(time.Now().Add(m.cfg.Timeout))
		if err := enc.Encode(out); err != nil {
			return
		}
	}
}

// tlsConfig proves id and accepts a peer only with a certificate from the
// CA naming the same account, and naming device want when want is set.
func (m *Mesh) tlsConfig(id Identity, want string) *tls.Config {
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: no certificate", ErrNotProven)
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: id.CA, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("%w: %w", ErrNotProven, err)
		}
		d, err := identity.FromCertificate(leaf)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotProven, err)
		}
		if d.Account != id.Account {
			return fmt.Errorf("%w: device %s is of another account", ErrNotProven, d.ID)
		}
		if want != "" && d.ID != want {
			return fmt.Errorf("%w: certificate names device %s, not %s", ErrNotProven, d.ID, want)
		}
		if d.ID == id.DeviceID {
			return fmt.Errorf("%w: that is this device", ErrNotProven)
		}
		return nil
	}
	cert := func() (*tls.Certificate, error) {
		cur, ok := m.cfg.Identity()
		if !ok {
			return nil, errors.New("device has not joined")
		}
		return cur.Certificate, nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain and the identity are checked by VerifyConnection: device
		// certificates name devices, not the addresses they are dialled at.
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		VerifyConnection:   verify,
		GetCertificate:     func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert() },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert()
		},
	}
}

// conn is a connection to a peer kept for later probes.
type conn struct {
	mu     sync.Mutex
	tc     *tls.Conn
	r      *bufio.Reader
	device identity.Device
	seq    uint64
}

// Probe pings the peer at addr (host:port), dialling and verifying it first
// unless a verified connection is kept. want is the device ID the peer was
// announced as ("" accepts any device of the account). An error that wraps
// ErrNotProven means the peer is not who it claims.
func (m *Mesh) Probe(ctx context.Context, addr, want string) (Result, error) {
	c, err := m.conn(ctx, addr, want)
	if err != nil {
		return Result{}, err
	}
	res, err := m.ping(c)
	if err != nil {
		m.mu.Lock()
		if m.conns[addr] == c {
			delete(m.conns, addr)
		}
		m.mu.Unlock()
		c.tc.Close()
		return Result{}, fmt.Errorf("ping %s at %s: %w", want, addr, err)
	}
	return res, nil
}

// Forget closes the kept connection to addr, if any.
func (m *Mesh) Forget(addr string) {
	m.mu.Lock()
	c := m.conns[addr]
	delete(m.conns, addr)
	m.mu.Unlock()
	if c != nil {
		c.tc.Close()
	}
}

func (m *Mesh) conn(ctx context.Context, addr, want string) (*conn, error) {
	m.mu.Lock()
	c := m.conns[addr]
	m.mu.Unlock()
	if c != nil && (want == "" || c.device.ID == want) {
		return c, nil
	}
	id, ok := m.cfg.Identity()
	if !ok {
		return nil, errors.New("device has not joined")
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	d := tls.Dialer{Config: m.tlsConfig(id, want)}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", want, addr, err)
	}
	tc := raw.(*tls.Conn)
	dev, err := identity.FromCertificate(tc.ConnectionState().PeerCertificates[0])
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("%w: %w", ErrNotProven, err)
	}
	c = &conn{tc: tc, r: newLineReader(tc), device: dev}
	m.mu.Lock()
	if old := m.conns[addr]; old != nil {
		old.tc.Close()
	}
	m.conns[addr] = c
	m.mu.Unlock()
	return c, nil
}

func (m *Mesh) ping(c *conn) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	out := message{Type: "ping", Seq: c.seq}
	if m.cfg.Coordinate != nil {
		out.Coordinate = m.cfg.Coordinate()
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Result{}, err
	}
	_ = c.tc.SetDeadline(time.Now().Add(m.cfg.Timeout))
	defer func() { _ = c.tc.SetDeadline(time.Time{}) }()
	start := time.Now()
	if _, err := c.tc.Write(append(b, '\n')); err != nil {
		return Result{}, err
	}
	for {
		line, err := readLine(c.r)
		if err != nil {
			return Result{}, err
		}
		in, err := decodeLine(line, "pong")
		if err != nil {
			return Result{}, fmt.Errorf("unexpected answer: %w", err)
		}
		if in.Seq != c.seq {
			continue // the answer to an earlier ping that timed out
		}
		res := Result{Device: c.device, RTT: time.Since(start)}
		if in.Coordinate != nil {
			res.Coordinate = in.Coordinate
		}
		return res, nil
	}
}

// JoinHostPort is net.JoinHostPort for a port number.
func JoinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// Package mdns announces an edgefabric agent on its LAN and finds the other
// agents there, over multicast DNS service discovery (RFC 6762, RFC 6763)
// with github.com/grandcat/zeroconf.
//
// An agent announces the service _edgefabric._tcp in the domain local.: the
// instance is its device ID, the port its mesh port, and the TXT record holds
//
//	id=<device ID>  acct=<scopes.Fingerprint(account)>  v=<version>  net=<network ID hint>
//
// so `avahi-browse -rpt _edgefabric._tcp` lists the agents. It browses the
// same service all the time and reports the peers of its own account, itself
// excepted, to a callback. Nothing a TXT record says is proof: a Peer is a
// candidate until it proves its identity over mutual TLS with a certificate
// from the fabric's CA naming the same account.
//
// Discovery works around grandcat/zeroconf v1.0.0's ways:
//
//   - A browse reports each service instance once, stops querying after the
//     first answer, and drops goodbye packets. Discovery therefore restarts the
//     browse every BrowseInterval and expires peers not seen again within
//     PeerTTL: departures are noticed by TTL, not by goodbye.
//   - The responder starts a goroutine it never joins that probes and
//     announces for up to 3.5 s after registration. Discovery does not shut a
//     responder down before that time has passed, so Run may take up to about
//     four seconds to return when its context ends right after it started (or
//     after the announcement changed).
//   - The browse's goroutines cannot be joined either; Discovery waits until
//     the browse closed its results channel, after which they only close their
//     sockets and return.
//   - Register would announce the machine's host name, which avahi-daemon may
//     also publish; Discovery announces the host name ef-<device ID> with the
//     interfaces' addresses instead (RegisterProxy).
//
// Create a Discovery with New and call Run.
package mdns

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grandcat/zeroconf"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// Service and Domain are what agents announce and browse.
const (
	Service = "_edgefabric._tcp"
	Domain  = "local."
)

// TXT record keys.
const (
	KeyID          = "id"
	KeyAccount     = "acct"
	KeyVersion     = "v"
	KeyNetworkHint = "net"
)

// Peer is another agent of the same account seen on the LAN. Until it proves
// its identity over mutual TLS, every field is only what it claims.
type Peer struct {
	// ID is the device ID from the TXT record.
	ID string
	// AccountFingerprint is the acct= value; always the announcing agent's own
	// account's, as others are ignored.
	AccountFingerprint string
	// Addrs are the addresses announced for the peer's host, sorted. They may
	// include addresses that are not reachable from here.
	Addrs []netip.Addr
	// Port is the peer's mesh port.
	Port int
	// Version is the agent's version (v=), "" if not announced.
	Version string
	// NetworkHint is the network cluster ID the peer claims (net=), "" if none.
	NetworkHint string
	// LastSeen is when the peer was last seen.
	LastSeen time.Time
}

// EventType says what happened to a peer.
type EventType int

const (
	// PeerSeen: the peer answered a browse, for the first time or again.
	PeerSeen EventType = iota + 1
	// PeerExpired: the peer was not seen within PeerTTL and is forgotten.
	PeerExpired
)

func (t EventType) String() string {
	switch t {
	case PeerSeen:
		return "seen"
	case PeerExpired:
		return "expired"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event tells what Discovery learned about one peer.
type Event struct {
	Type EventType
	Peer Peer
	// Changed is set on PeerSeen when the peer is new (or back after it had
	// expired) or anything but LastSeen differs from its last sighting: time
	// to (re)verify it.
	Changed bool
}

// Config configures a Discovery.
type Config struct {
	// DeviceID is this device's ID: the service instance name and id=. Required.
	DeviceID string
	// Account is this device's account. Only its fingerprint is announced. Required.
	Account string
	// Port is the mesh port peers dial. Required.
	Port int
	// Version is announced as v=; "" announces none.
	Version string
	// NetworkHint is announced as net=, the network cluster ID this device
	// claims; "" announces none. SetNetworkHint changes it later.
	NetworkHint string
	// Interfaces are the interfaces to announce and browse on; nil means every
	// interface that is up and multicast-capable, looked up again every
	// BrowseInterval.
	Interfaces []net.Interface
	// IPv6 makes the browse listen over IPv6 too; false means IPv4 only.
	// Announcing uses both where the interfaces allow.
	IPv6 bool
	// BrowseInterval is how often the browse restarts (with ±10% jitter), and
	// how often the announced addresses are checked for changes; zero means 15 s.
	BrowseInterval time.Duration
	// PeerTTL is how long a peer not seen again is kept; zero means three
	// BrowseIntervals plus 5 s. It must be longer than BrowseInterval.
	PeerTTL time.Duration
	// MaxPeers bounds the peers Discovery keeps; zero means DefaultMaxPeers.
	// Once it holds that many, announcements of devices it does not know are
	// ignored (the ones it knows are still refreshed) until some expire: a
	// LAN flooded with fake announcements cannot grow the table without
	// bound nor push out the peers already known.
	MaxPeers int
	// OnEvent receives what Discovery learns. It is called from Run's
	// goroutines, one call at a time; a call that blocks holds up browsing,
	// so hand slow work off. Nil means no calls; use Peers instead.
	OnEvent func(Event)
}

// Defaults of Config.
const (
	DefaultBrowseInterval = 15 * time.Second
	DefaultMaxPeers       = 256
)

// MaxAddrs bounds the addresses kept of one peer.
const MaxAddrs = 16

// maxTXTStrings bounds the TXT strings of an announcement that are read.
const maxTXTStrings = 64

func (c Config) withDefaults() Config {
	if c.BrowseInterval == 0 {
		c.BrowseInterval = DefaultBrowseInterval
	}
	if c.PeerTTL == 0 {
		c.PeerTTL = 3*c.BrowseInterval + 5*time.Second
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	return c
}

// maxTXT is the longest string a TXT record can hold.
const maxTXT = 255

// Validate reports whether c, with its defaults, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := identity.ValidName(c.DeviceID); err != nil {
		errs = append(errs, fmt.Errorf("device ID: %w", err))
	}
	if c.Account == "" {
		errs = append(errs, errors.New("account is required"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range 1-65535", c.Port))
	}
	if len(KeyVersion)+1+len(c.Version) > maxTXT || len(KeyNetworkHint)+1+len(c.NetworkHint) > maxTXT {
		errs = append(errs, errors.New("version and network hint must fit a TXT string (255 bytes)"))
	}
	if c.MaxPeers < 0 {
		errs = append(errs, fmt.Errorf("MaxPeers %d is negative", c.MaxPeers))
	}
	if c.BrowseInterval < 0 || c.PeerTTL <= c.BrowseInterval {
		errs = append(errs, fmt.Errorf("PeerTTL (%v) must be longer than BrowseInterval (%v)", c.PeerTTL, c.BrowseInterval))
	}
	return errors.Join(errs...)
}

// Discovery announces this agent and browses for its peers. Its methods are
// safe for concurrent use.
type Discovery struct {
	cfg         Config
	log         *slog.Logger
	fingerprint string

	// inNet runs fn where mDNS sockets are opened and interfaces looked up;
	// tests switch network namespaces in it.
	inNet func(fn func() error) error

	started     atomic.Bool
	ready       chan struct{}
	announced   atomic.Bool
	browsing    atomic.Bool
	readyOnce   sync.Once
	hintChanged chan struct{} // capacity 1, coalesced
	emitMu      sync.Mutex    // serialises OnEvent calls

	mu    sync.Mutex
	hint  string
	peers map[string]Peer
}

// New returns a Discovery; call Run. It returns an error if cfg is invalid.
func New(cfg Config, log *slog.Logger) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mdns config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	cfg.Interfaces = slices.Clone(cfg.Interfaces)
	return &Discovery{
		cfg:         cfg,
		log:         log,
		fingerprint: scopes.Fingerprint(cfg.Account),
		inNet:       func(fn func() error) error { return fn() },
		ready:       make(chan struct{}),
		hintChanged: make(chan struct{}, 1),
		hint:        cfg.NetworkHint,
		peers:       map[string]Peer{},
	}, nil
}

// Ready is closed once this agent is announced and the first browse runs.
func (d *Discovery) Ready() <-chan struct{} { return d.ready }

// Peers returns the peers seen within PeerTTL, sorted by ID. The result is
// the caller's.
func (d *Discovery) Peers() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Peer, 0, len(d.peers))
	for _, p := range d.peers {
		out = append(out, clonePeer(p))
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// SetNetworkHint changes the announced net= value. The agent is announced
// anew with it shortly (no sooner than about three seconds after the previous
// announcement, see the package comment).
func (d *Discovery) SetNetworkHint(hint string) {
	d.mu.Lock()
	changed := d.hint != hint
	d.hint = hint
	d.mu.Unlock()
	if changed {
		select {
		case d.hintChanged <- struct{}{}:
		default:
		}
	}
}

// Run announces and browses until ctx ends, then withdraws the announcement
// and returns nil once its goroutines have ended. Failures to announce or
// browse (no multicast interface yet, no address) are logged and retried
// every BrowseInterval. Run may be called once.
func (d *Discovery) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("mdns: Run called twice")
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.announceLoop(ctx) })
	wg.Go(func() { d.browseLoop(ctx) })
	wg.Wait()
	return nil
}

func (d *Discovery) markReady() {
	if d.announced.Load() && d.browsing.Load() {
		d.readyOnce.Do(func() { close(d.ready) })
	}
}

// interfaces returns the configured interfaces, or the up and multicast-capable ones.
func (d *Discovery) interfaces() ([]net.Interface, error) {
	if d.cfg.Interfaces != nil {
		return d.cfg.Interfaces, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
			out = append(out, ifi)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no interface is up and multicast-capable")
	}
	return out, nil
}

// probeSpan bounds how long zeroconf v1.0.0's Server.probe goroutine runs
// after registration: two probes up to 250 ms apart, then two announcements
// 1 s and 2 s apart. A margin is added.
const probeSpan = 3500*time.Millisecond + 250*time.Millisecond

// announcement is what is registered; a change means registering anew.
type announcement struct {
	addrs []string
	txt   []string
}

func (a announcement) equal(b announcement) bool {
	return slices.Equal(a.addrs, b.addrs) && slices.Equal(a.txt, b.txt)
}

// announceLoop keeps this agent announced with its current addresses and TXT
// record until ctx ends, then withdraws it.
func (d *Discovery) announceLoop(ctx context.Context) {
	var (
		srv   *zeroconf.Server
		regAt time.Time
		cur   announcement
		fails repeated
	)
	withdraw := func() {
		if srv == nil {
			return
		}
		// The server's probe goroutine cannot be joined; wait until it has
		// surely ended so no goroutine outlives Run and none writes to closed
		// sockets. The wait is bounded and happens at most once per registration.
		if wait := time.Until(regAt.Add(probeSpan)); wait > 0 {
			t := time.NewTimer(wait)
			<-t.C
		}
		srv.Shutdown() // sends goodbye packets
		srv = nil
	}
	defer withdraw()

	tick := time.NewTicker(d.cfg.BrowseInterval)
	defer tick.Stop()
	for {
		next, ifaces, err := d.announcement()
		switch {
		case err != nil:
			fails.log(d.log, "mdns announcement not possible", err)
		case srv == nil || !next.equal(cur):
			withdraw()
			err := d.inNet(func() error {
				var err error
				srv, err = zeroconf.RegisterProxy(instanceName(d.cfg.DeviceID), Service, Domain, d.cfg.Port,
					hostName(d.cfg.DeviceID), next.addrs, next.txt, ifaces)
				return err
			})
			if err != nil {
				srv = nil
				fails.log(d.log, "mdns announce", err)
				break
			}
			fails = repeated{}
			regAt, cur = time.Now(), next
			d.log.Debug("mdns announced", "device", d.cfg.DeviceID, "port", d.cfg.Port, "addrs", next.addrs, "txt", next.txt)
			d.announced.Store(true)
			d.markReady()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.hintChanged:
		}
	}
}

// announcement returns what to announce now and on which interfaces.
func (d *Discovery) announcement() (announcement, []net.Interface, error) {
	var (
		a      announcement
		ifaces []net.Interface
	)
	err := d.inNet(func() error {
		var err error
		ifaces, err = d.interfaces()
		if err != nil {
			return err
		}
		a.addrs, err = announceAddrs(ifaces)
		return err
	})
	if err != nil {
		return announcement{}, nil, err
	}
	if len(a.addrs) == 0 {
		return announcement{}, nil, errors.New("no address to announce")
	}
	d.mu.Lock()
	hint := d.hint
	d.mu.Unlock()
	a.txt = TXT(d.cfg.DeviceID, d.fingerprint, d.cfg.Version, hint)
	return a, ifaces, nil
}

// TXT returns the TXT record an agent announces.
func TXT(deviceID, fingerprint, version, networkHint string) []string {
	txt := []string{KeyID + "=" + deviceID, KeyAccount + "=" + fingerprint}
	if version != "" {
		txt = append(txt, KeyVersion+"="+version)
	}
	if networkHint != "" {
		txt = append(txt, KeyNetworkHint+"="+networkHint)
	}
	return txt
}

// announceAddrs returns the addresses to announce for ifaces, sorted: their
// IPv4 addresses and global IPv6 addresses (loopback ones only on a loopback
// interface). IPv6 link-local addresses are left out: without a zone they
// are of no use to a peer.
func announceAddrs(ifaces []net.Interface) ([]string, error) {
	var out []netip.Addr
	for _, ifi := range ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			switch {
			case ip.IsLoopback() && ifi.Flags&net.FlagLoopback == 0:
			case ip.Is6() && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()):
			default:
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	out = slices.Compact(out)
	strs := make([]string, len(out))
	for i, a := range out {
		strs[i] = a.String()
	}
	return strs, nil
}

// instanceName is the DNS-SD instance name for a device ID: dots escaped, as
// zeroconf does not escape them and they would split the instance label.
func instanceName(deviceID string) string {
	return strings.ReplaceAll(deviceID, ".", `\.`)
}

// hostName is the host name (zeroconf appends the domain) the announcement's
// address records use: "ef-<device ID>" with dots turned into dashes, hashed
// down to one DNS label. It is never the machine's own host name, which
// avahi-daemon may publish and would defend.
func hostName(deviceID string) string {
	h := "ef-" + strings.ReplaceAll(deviceID, ".", "-")
	if len(h) > 63 {
		sum := sha256.Sum256([]byte(deviceID))
		h = strings.TrimRight(h[:54], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	return h
}

// browseLoop browses in cycles of about BrowseInterval until ctx ends.
func (d *Discovery) browseLoop(ctx context.Context) {
	expiry := time.NewTicker(max(d.cfg.PeerTTL/4, 10*time.Millisecond))
	defer expiry.Stop()
	var fails repeated
	for ctx.Err() == nil {
		cycle := jitter(d.cfg.BrowseInterval)
		if !d.browse(ctx, cycle, expiry.C, &fails) {
			// Nothing was started; try again after a cycle.
			t := time.NewTimer(cycle)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		d.expire(time.Now())
	}
}

// browse runs one browse of length cycle, reporting what it finds, and
// returns once zeroconf closed its entries channel; false if it could not start.
func (d *Discovery) browse(ctx context.Context, cycle time.Duration, expiry <-chan time.Time, fails *repeated) bool {
	ctx, cancel := context.WithTimeout(ctx, cycle)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry, 16)
	called := false // Browse was called: its main loop closes entries when ctx ends
	err := d.inNet(func() error {
		ifaces, err := d.interfaces()
		if err != nil {
			return err
		}
		var traffic zeroconf.IPType = zeroconf.IPv4
		if d.cfg.IPv6 {
			traffic = zeroconf.IPv4AndIPv6
		}
		r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(traffic))
		if err != nil {
			return fmt.Errorf("join mDNS group: %w", err)
		}
		called = true
		if err := r.Browse(ctx, Service, Domain, entries); err != nil {
			return fmt.Errorf("send mDNS query: %w", err)
		}
		return nil
	})
	if err != nil {
		fails.log(d.log, "mdns browse", err)
		cancel()
	}
	if !called {
		return false
	}
	if err == nil {
		*fails = repeated{}
		d.browsing.Store(true)
		d.markReady()
	}
	for {
		select {
		case e, ok := <-entries:
			if !ok {
				return true
			}
			d.seen(e, time.Now())
		case now := <-expiry:
			d.expire(now)
		}
	}
}

// repeated logs a failure at Warn the first time and at Debug while the same
// error repeats, so a device without a network does not flood its log.
type repeated struct{ last string }

func (r *repeated) log(log *slog.Logger, msg string, err error) {
	if e := err.Error(); e != r.last {
		r.last = e
		log.Warn(msg, "err", err)
		return
	}
	log.Debug(msg, "err", err)
}

// seen records one browse result.
func (d *Discovery) seen(e *zeroconf.ServiceEntry, now time.Time) {
	p, err := ParsePeer(e.Text, e.Port, e.AddrIPv4, e.AddrIPv6)
	if err != nil {
		d.log.Debug("mdns entry ignored", "instance", e.Instance, "err", err)
		return
	}
	if p.ID == d.cfg.DeviceID || p.AccountFingerprint != d.fingerprint {
		return
	}
	p.LastSeen = now
	d.mu.Lock()
	old, known := d.peers[p.ID]
	if !known && len(d.peers) >= d.cfg.MaxPeers {
		d.mu.Unlock()
		d.log.Debug("mdns peer ignored: table full", "device", p.ID, "max", d.cfg.MaxPeers)
		return
	}
	d.peers[p.ID] = p
	d.mu.Unlock()
	changed := !known || !samePeer(old, p)
	if changed {
		d.log.Debug("mdns peer seen", "device", p.ID, "addrs", p.Addrs, "port", p.Port, "version", p.Version, "network", p.NetworkHint)
	}
	d.emit(Event{Type: PeerSeen, Peer: clonePeer(p), Changed: changed})
}

// expire forgets the peers not seen within PeerTTL of now.
func (d *Discovery) expire(now time.Time) {
	var gone []Peer
	d.mu.Lock()
	for id, p := range d.peers {
		if now.Sub(p.LastSeen) >= d.cfg.PeerTTL {
			gone = append(gone, p)
			delete(d.peers, id)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(gone, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range gone {
		d.log.Debug("mdns peer expired", "device", p.ID, "lastSeen", p.LastSeen)
		d.emit(Event{Type: PeerExpired, Peer: p})
	}
}

// emit calls OnEvent, one call at a time.
func (d *Discovery) emit(ev Event) {
	if d.cfg.OnEvent == nil {
		return
	}
	d.emitMu.Lock()
	defer d.emitMu.Unlock()
	d.cfg.OnEvent(ev)
}

// ParsePeer reads a peer from a browse result's TXT record, port and
// addresses. Keys are case-insensitive and only their first occurrence
// counts (RFC 6763 section 6.4). IPv6 link-local addresses are dropped: the
// record does not say on which interface they are valid. It returns an error if the record lacks a
// valid id= or acct=, or the port is invalid.
func ParsePeer(txt []string, port int, v4, v6 []net.IP) (Peer, error) {
	kv := map[string]string{}
	for _, s := range txt[:min(len(txt), maxTXTStrings)] {
		k, v, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if _, dup := kv[k]; !dup && k != "" {
			kv[k] = v
		}
	}
	p := Peer{
		ID:                 kv[KeyID],
		AccountFingerprint: kv[KeyAccount],
		Port:               port,
		Version:            kv[KeyVersion],
		NetworkHint:        kv[KeyNetworkHint],
	}
	if err := identity.ValidName(p.ID); err != nil {
		return Peer{}, fmt.Errorf("id: %w", err)
	}
	if !isFingerprint(p.AccountFingerprint) {
		return Peer{}, fmt.Errorf("acct %q is no fingerprint", p.AccountFingerprint)
	}
	if port < 1 || port > 65535 {
		return Peer{}, fmt.Errorf("port %d out of range", port)
	}
	for _, ip := range slices.Concat(v4, v6) {
		a, ok := netip.AddrFromSlice(ip)
		if a = a.Unmap(); ok && (!a.Is6() || !a.IsLinkLocalUnicast()) {
			p.Addrs = append(p.Addrs, a)
		}
	}
	slices.SortFunc(p.Addrs, netip.Addr.Compare)
	p.Addrs = slices.Compact(p.Addrs)
	p.Addrs = p.Addrs[:min(len(p.Addrs), MaxAddrs)]
	if len(p.Version) > maxTXT || len(p.NetworkHint) > maxTXT {
		return Peer{}, errors.New("v= or net= longer than a TXT string holds")
	}
	return p, nil
}

// isFingerprint reports whether s looks like scopes.Fingerprint's output.
func isFingerprint(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

func samePeer(a, b Peer) bool {
	return a.ID == b.ID && a.AccountFingerprint == b.AccountFingerprint && slices.Equal(a.Addrs, b.Addrs) &&
		a.Port == b.Port && a.Version == b.Version && a.NetworkHint == b.NetworkHint
}

func clonePeer(p Peer) Peer {
	p.Addrs = slices.Clone(p.Addrs)
	return p
}

// jitter returns d ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

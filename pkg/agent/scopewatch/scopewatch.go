// Package scopewatch observes what the fabric's cluster formation needs
// from a device: its LAN and the network claim derived from it, its
// same-account peers on the LAN (announced over mDNS, proven over the device
// mesh, their liveness tracked locally so that it survives an uplink outage),
// and its Vivaldi coordinate from the round trips to peers and to the hub.
//
// The agent makes a Watcher with New, hands Scopes, Changed and HubRTT to
// the hub client, and runs it with Run, which waits until the device joined.
package scopewatch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgefabric/edgefabric/pkg/agent/mesh"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/scopes/membership"
	"github.com/edgefabric/edgefabric/pkg/scopes/network"
	"github.com/edgefabric/edgefabric/pkg/scopes/network/mdns"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
	"github.com/edgefabric/edgefabric/pkg/version"
)

// Mesh is the device mesh the watcher announces and probes peers over;
// *mesh.Mesh implements it. Its methods are safe for concurrent use; Probe
// blocks for up to the mesh's timeout.
type Mesh interface {
	// Port is the mesh's listen port.
	Port() int
	// Probe proves the device at addr to be id and measures the round trip.
	Probe(ctx context.Context, addr, id string) (mesh.Result, error)
	// Forget drops the connection to addr.
	Forget(addr string)
}

var _ Mesh = (*mesh.Mesh)(nil)

// Credentials are the device's mesh identity; *client.Credentials
// implements it. Its methods are safe for concurrent use and do not block.
type Credentials interface {
	// Joined is closed once the device joined the fabric.
	Joined() <-chan struct{}
	// Get returns the device's certificate, the fabric's CA and the
	// device's account; ok is false before the device joined.
	Get() (cert *tls.Certificate, ca *x509.CertPool, account string, ok bool)
}

// Config configures a Watcher.
type Config struct {
	// DeviceID is the device's ID. Required.
	DeviceID string
	// Network is the operator's network name (--network); "" derives it.
	Network string
	// Location is the operator's --location.
	Location proximity.Location
	// ProbeInterval is how often LAN peers are probed; zero means 2 s.
	ProbeInterval time.Duration
	// BrowseInterval is the mDNS browse interval; zero means mdns's default.
	BrowseInterval time.Duration
	// CoordinateInterval is how often a changed coordinate alone is sent to
	// the hub; zero means 30 s.
	CoordinateInterval time.Duration
	// LANInterval is how often the LAN's facts are read again; zero means
	// 1 min.
	LANInterval time.Duration
	// Vivaldi holds the device's coordinate, which the watcher updates and
	// the mesh sends to peers; nil means one of the watcher's own.
	Vivaldi *proximity.Client
}

// peerInfo is what the watcher knows of a verified LAN peer.
type peerInfo struct {
	addr     string
	rtt      time.Duration
	lastSeen time.Time
}

// Watcher observes the device's scopes (see the package doc). Scopes is
// what the hub client sends; Changed signals when it changed in a way the
// provider must hear. Its methods are safe for concurrent use.
type Watcher struct {
	cfg   Config
	creds Credentials
	mesh  Mesh
	log   *slog.Logger

	changed  chan struct{} // capacity 1, coalesced
	probeNow chan struct{} // capacity 1: a new peer was announced

	mu      sync.Mutex
	lan     network.LAN
	claim   string
	table   *membership.Table
	peers   map[string]peerInfo
	viv     *proximity.Client
	hubRTT  time.Duration
	lastSeq uint64
	// settleAt is when the first discovery round is over (zero: not known
	// yet); settled is set by the first probe round after it.
	settleAt time.Time
	settled  bool
	sentFor  []string // the alive peers the last signalled change was for
	// probeCursor is where the next probe round starts among the
	// unverified peers.
	probeCursor int
}

// New returns a watcher that probes peers over m once creds say the device
// joined; it reads the LAN's facts at once. Call Run.
func New(cfg Config, m Mesh, creds Credentials, log *slog.Logger) (*Watcher, error) {
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 2 * time.Second
	}
	if cfg.CoordinateInterval == 0 {
		cfg.CoordinateInterval = 30 * time.Second
	}
	if cfg.LANInterval == 0 {
		cfg.LANInterval = time.Minute
	}
	// A peer that misses a few probes is suspect; one that misses them for
	// longer has left. Both are kept while the hub is unreachable.
	table, err := membership.New(membership.Config{SuspectAfter: 3 * cfg.ProbeInterval, LeaveAfter: 10 * cfg.ProbeInterval})
	if err != nil {
		return nil, err
	}
	viv := cfg.Vivaldi
	if viv == nil {
		if viv, err = proximity.NewClient(proximity.Config{}); err != nil {
			return nil, err
		}
	}
	w := &Watcher{cfg: cfg, creds: creds, mesh: m, log: log, changed: make(chan struct{}, 1), probeNow: make(chan struct{}, 1), table: table, peers: map[string]peerInfo{}, viv: viv}
	w.readLAN()
	return w, nil
}

// readLAN reads the device's LAN facts and derives its claim. It reports
// whether the claim changed: the device moved to another LAN (the facts the
// claim is made of do not change while the LAN stays the same).
func (w *Watcher) readLAN() bool {
	lan, err := network.DiscoverLAN()
	if err != nil {
		w.log.Debug("read LAN facts", "err", err)
	}
	lan.Override = w.cfg.Network
	claim := network.ID(lan)
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := claim != w.claim
	if changed && w.claim != "" {
		w.log.Info("LAN changed", "claim", claim, "was", w.claim, "subnet", lan.Subnet, "gateway", lan.Gateway)
	}
	w.lan, w.claim = lan, claim
	return changed
}

// Changed signals that Scopes has news for the hub.
func (w *Watcher) Changed() <-chan struct{} { return w.changed }

func (w *Watcher) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// HubRTT feeds a round trip to the hub into the coordinate. The hub has no
// coordinate of its own: it stands at the origin, a fixed landmark.
func (w *Watcher) HubRTT(rtt time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hubRTT = rtt
	origin := proximity.NewCoordinate(proximity.Config{})
	origin.Error = 0.1
	_, _ = w.viv.Update("hub", origin, rtt)
}

// Scopes returns the observations to send, with a new sequence number.
func (w *Watcher) Scopes() *hubv1.Scopes {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := &hubv1.Scopes{
		Seq:             w.nextSeqLocked(),
		NetworkId:       w.claim,
		NetworkExplicit: w.cfg.Network != "",
		MeshPort:        int32(w.mesh.Port()),
		Region:          w.cfg.Location.Region,
		HubRttMs:        float64(w.hubRTT) / float64(time.Millisecond),
		Discovering:     !w.settled,
	}
	if w.lan.Subnet.IsValid() {
		sc.Subnet = w.lan.Subnet.Masked().String()
	}
	if w.lan.Gateway.IsValid() {
		sc.Gateway = w.lan.Gateway.String()
	}
	if p := w.cfg.Location.Point; p != nil {
		sc.HasPoint, sc.Latitude, sc.Longitude = true, p.Lat, p.Long
	}
	c := w.viv.Coordinate()
	sc.Coordinate = &hubv1.Coordinate{Vec: c.Vec, Error: c.Error, Adjustment: c.Adjustment, Height: c.Height}
	for _, m := range w.table.Members() {
		if m.State == membership.Left {
			continue
		}
		p := w.peers[m.ID]
		sc.Peers = append(sc.Peers, &hubv1.LANPeer{
			DeviceId: m.ID, Address: p.addr, RttMs: float64(p.rtt) / float64(time.Millisecond), LastSeen: timestamppb.New(p.lastSeen),
		})
	}
	slices.SortFunc(sc.Peers, func(a, b *hubv1.LANPeer) int {
		switch {
		case a.GetDeviceId() < b.GetDeviceId():
			return -1
		case a.GetDeviceId() > b.GetDeviceId():
			return 1
		}
		return 0
	})
	return sc
}

// nextSeqLocked numbers a report: the wall clock in nanoseconds, so that it
// grows across agent restarts too, and never less than the last one plus one.
func (w *Watcher) nextSeqLocked() uint64 {
	w.lastSeq = max(w.lastSeq+1, uint64(time.Now().UnixNano()))
	return w.lastSeq
}

// Clusters describes the network cluster the device claims and the LAN
// peers it verified, for edgeagent status.
func (w *Watcher) Clusters() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claim == "" {
		return nil
	}
	if !w.settled {
		return []string{"network " + w.claim + " (discovering LAN peers)"}
	}
	peers := w.aliveLocked()
	if len(peers) == 0 {
		return []string{"network " + w.claim + " (no LAN peers)"}
	}
	return []string{fmt.Sprintf("network %s (%d LAN peers: %s)", w.claim, len(peers), strings.Join(peers, ", "))}
}

// aliveLocked returns the IDs of the peers that have not left, sorted.
func (w *Watcher) aliveLocked() []string {
	var out []string
	for _, m := range w.table.Members() {
		if m.State != membership.Left {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out
}

// Run waits until the device joined, then announces it on the LAN, browses
// for its peers and probes them until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-w.creds.Joined():
	}
	_, _, account, ok := w.creds.Get()
	if !ok {
		return errors.New("joined without an identity")
	}
	w.mu.Lock()
	hint := w.claim
	w.mu.Unlock()
	disc, err := mdns.New(mdns.Config{
		DeviceID: w.cfg.DeviceID, Account: account, Port: w.mesh.Port(), Version: version.Version,
		NetworkHint: hint, BrowseInterval: w.cfg.BrowseInterval,
		OnEvent: func(ev mdns.Event) {
			if ev.Type == mdns.PeerSeen && ev.Changed {
				w.probeSoon()
			}
		},
	}, w.log.With("component", "mdns"))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = disc.Run(ctx) })
	wg.Go(func() {
		// Answers to the first browse come within a second on a LAN; the
		// probe round after that settles the first view of the peers.
		// Without multicast the browse never starts: the device then reports
		// after a while that it sees no peers rather than discover forever.
		select {
		case <-ctx.Done():
			return
		case <-disc.Ready():
		case <-time.After(settleWithoutMDNS):
		}
		w.mu.Lock()
		w.settleAt = time.Now().Add(settleDelay)
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(settleDelay):
			w.probeSoon()
		}
	})
	w.probeLoop(ctx, disc)
	return nil
}

var errNoAddress = errors.New("peer announced no usable address")

// settleDelay is how long after the first browse started the agent reports
// its first view of its LAN peers.
const settleDelay = time.Second

// settleWithoutMDNS is how long the agent waits for mDNS to start before it
// reports its view of its LAN anyway.
const settleWithoutMDNS = 15 * time.Second

// probeSoon asks probeLoop for a round now.
func (w *Watcher) probeSoon() {
	select {
	case w.probeNow <- struct{}{}:
	default:
	}
}

// probeLoop probes the announced peers every ProbeInterval and whenever a
// new one is announced, tracks their liveness, and re-reads the LAN now and
// then.
func (w *Watcher) probeLoop(ctx context.Context, disc *mdns.Discovery) {
	t := time.NewTicker(w.cfg.ProbeInterval)
	defer t.Stop()
	lanTick := time.NewTicker(w.cfg.LANInterval)
	defer lanTick.Stop()
	lastCoord := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lanTick.C:
			if w.readLAN() {
				w.mu.Lock()
				disc.SetNetworkHint(w.claim)
				w.mu.Unlock()
				w.signal()
			}
			continue
		case <-t.C:
		case <-w.probeNow:
		}
		w.probeAll(ctx, disc.Peers())
		w.mu.Lock()
		changes := w.table.Expire(time.Now())
		for _, c := range changes {
			w.log.Info("LAN peer changed", "peer", c.Member.ID, "change", c.Type.String())
			if c.Member.State == membership.Left {
				if p, ok := w.peers[c.Member.ID]; ok {
					w.mesh.Forget(p.addr)
				}
			}
		}
		alive := w.aliveLocked()
		news := !slices.Equal(alive, w.sentFor)
		if news {
			w.sentFor = alive
		}
		if !w.settled && !w.settleAt.IsZero() && !time.Now().Before(w.settleAt) {
			w.settled, news = true, true
		}
		w.mu.Unlock()
		if news || time.Since(lastCoord) >= w.cfg.CoordinateInterval {
			lastCoord = time.Now()
			w.signal()
		}
	}
}

// Bounds of a probe round: what a LAN flooded with fake announcements can
// make the agent do. Each probe of an unproven peer costs a dial and a TLS
// handshake of up to the mesh's timeout per address.
const (
	// probeWorkers is how many peers are probed at once.
	probeWorkers = 8
	// maxProbesPerRound is how many peers one round probes: every verified
	// peer first, then unverified ones in turn, a different slice each round.
	maxProbesPerRound = 64
	// maxAddrsPerProbe is how many of a peer's addresses one probe tries.
	maxAddrsPerProbe = 4
)

// roundPeers chooses the peers of one probe round from those announced:
// the verified ones (known) first, then the others starting at the start-th
// (mod their number, so that successive rounds take turns), limit in all,
// never self.
func roundPeers(peers []mdns.Peer, self string, known func(id string) bool, limit, start int) []mdns.Peer {
	var verified, others []mdns.Peer
	for _, p := range peers {
		switch {
		case p.ID == self:
		case known(p.ID):
			verified = append(verified, p)
		default:
			others = append(others, p)
		}
	}
	out := verified[:min(len(verified), limit)]
	if n := limit - len(out); n > 0 && len(others) > 0 {
		start = ((start % len(others)) + len(others)) % len(others)
		others = slices.Concat(others[start:], others[:start])
		out = append(out, others[:min(n, len(others))]...)
	}
	return out
}

// probeAll probes a bounded round of the announced peers, probeWorkers at
// a time, each at its first address that answers. The round ends by the
// time a peer would turn suspect, however many peers are announced, so that
// a flood of announcements cannot delay the probes that keep the verified
// peers alive.
func (w *Watcher) probeAll(ctx context.Context, peers []mdns.Peer) {
	ctx, cancel := context.WithTimeout(ctx, 3*w.cfg.ProbeInterval)
	defer cancel()
	w.mu.Lock()
	start := w.probeCursor
	w.mu.Unlock()
	round := roundPeers(peers, w.cfg.DeviceID, func(id string) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		_, ok := w.peers[id]
		return ok
	}, maxProbesPerRound, start)
	w.mu.Lock()
	w.probeCursor = start + maxProbesPerRound
	w.mu.Unlock()
	next := make(chan mdns.Peer)
	var wg sync.WaitGroup
	for range min(probeWorkers, len(round)) {
		wg.Go(func() {
			for p := range next {
				if err := w.probe(ctx, p); err != nil {
					w.log.Debug("probe LAN peer", "peer", p.ID, "err", err)
				}
			}
		})
	}
	for _, p := range round {
		select {
		case next <- p:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
}

func (w *Watcher) probe(ctx context.Context, p mdns.Peer) error {
	addrs := slices.Clone(p.Addrs)
	// IPv4 first: link-local IPv6 needs a zone the announcement does not carry.
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		switch {
		case a.Is4() && !b.Is4():
			return -1
		case !a.Is4() && b.Is4():
			return 1
		}
		return 0
	})
	w.mu.Lock()
	known, ok := w.peers[p.ID]
	w.mu.Unlock()
	if ok {
		addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return mesh.JoinHostPort(a.String(), p.Port) == known.addr })
		addrs = append([]netip.Addr{netip.MustParseAddrPort(known.addr).Addr()}, addrs...)
	}
	err := errNoAddress
	for _, a := range addrs[:min(len(addrs), maxAddrsPerProbe)] {
		if a.Is6() && a.IsLinkLocalUnicast() {
			continue
		}
		addr := mesh.JoinHostPort(a.String(), p.Port)
		var res mesh.Result
		res, err = w.mesh.Probe(ctx, addr, p.ID)
		if err != nil {
			continue
		}
		now := time.Now()
		w.mu.Lock()
		if c, joined := w.table.Observe(p.ID, now); joined {
			w.log.Info("LAN peer changed", "peer", p.ID, "change", c.Type.String(), "addr", addr)
		}
		w.peers[p.ID] = peerInfo{addr: addr, rtt: res.RTT, lastSeen: now}
		if res.Coordinate != nil {
			_, _ = w.viv.Update(p.ID, *res.Coordinate, res.RTT)
		}
		w.mu.Unlock()
		return nil
	}
	return err
}

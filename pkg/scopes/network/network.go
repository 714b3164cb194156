// Package network decides which network cluster a device belongs to. A network
// cluster is the set of one account's devices that reach each other on a
// link-local network: they see each other over mDNS (package mdns) and prove
// who they are over mutual TLS.
//
// Each device claims a cluster ID: ID derives it from facts about the device's
// LAN that stay the same for as long as the LAN does (its subnet and default
// gateway address), or takes the name the operator gave with --network.
// Devices of one LAN compute the same claim, so the ID stays the same while
// devices join and leave. Facts that come and go with traffic (the gateway's
// hardware address, which appears in the neighbour table once something
// talks to the gateway, and changes when a router is swapped) are read for
// diagnostics only: two LANs that happen to use the same subnet and gateway
// address are told apart by who sees whom, not by their routers.
//
// Merge reconciles the views of the devices that see each other,
// deterministically, and keeps a cluster's ID for as long as its devices
// keep forming it. The provider runs Merge over what its agents report; an
// agent can run it over what it sees while its uplink is down.
//
// ID and Merge are pure. DiscoverLAN reads the facts from the operating system.
package network

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LAN holds what a device knows about the link-local network it is on.
type LAN struct {
	// Interface names the interface the facts were read from. It is not part of
	// the ID.
	Interface string
	// Subnet is the prefix of that interface, e.g. 192.168.1.0/24. The zero
	// value means unknown.
	Subnet netip.Prefix
	// Gateway is the default gateway's address. The zero value means unknown.
	Gateway netip.Addr
	// GatewayMAC is the default gateway's hardware address from the
	// neighbour table, for diagnostics. It is not part of the ID: it is
	// missing until something talks to the gateway, and changes with the
	// router, while the LAN stays the same. Nil means unknown.
	GatewayMAC net.HardwareAddr
	// Override is the network name the operator gave (--network NAME). When
	// set, it alone decides the ID.
	Override string
}

// IDLength is the length of the IDs ID derives from LAN facts.
const IDLength = 10

// maxOverrideID is the longest operator-given name ID keeps as it is.
const maxOverrideID = 24

var overrideRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ID returns the network cluster ID a device on lan claims.
//
// An operator's override that is a DNS label of at most 24 lower-case
// characters is the ID as it is, so the virtual node reads
// edge-<account>-net-<override>; any other override is hashed. Otherwise the
// ID is the first IDLength lower-case hex digits of a SHA-256 over the subnet
// and the gateway's address. The gateway's hardware address is left out, so
// the ID does not change once it appears in the neighbour table (the hash
// input keeps the place it once had, empty, so IDs are those of earlier
// versions read before the gateway was known). ID returns "" (no claim) when
// neither an override nor a subnet is known.
func ID(lan LAN) string {
	if o := lan.Override; o != "" {
		if len(o) <= maxOverrideID && overrideRE.MatchString(o) {
			return o
		}
		return hashID("edgefabric-net-override:" + o)
	}
	if !lan.Subnet.IsValid() {
		return ""
	}
	var b strings.Builder
	b.WriteString("edgefabric-lan:v1|")
	b.WriteString(lan.Subnet.Masked().String())
	b.WriteString("|")
	if lan.Gateway.IsValid() {
		b.WriteString(lan.Gateway.Unmap().String())
	}
	b.WriteString("|")
	return hashID(b.String())
}

func hashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:IDLength]
}

// View is what one device reports about its LAN.
type View struct {
	// Device is the device's ID.
	Device string
	// Claim is the cluster ID the device derived with ID; "" claims nothing.
	Claim string
	// Explicit says Claim comes from an operator's override (LAN.Override).
	// Explicit claims win over derived ones.
	Explicit bool
	// Peers are the devices the device sees on its LAN and whose identity it
	// verified. Only peers that report a view of their own count.
	Peers []string
}

// Cluster is one network cluster: an ID and its members, sorted.
type Cluster struct {
	ID      string
	Members []string
	// Claim is the claim the ID was chosen for: the ID itself when a member
	// claimed it, the claim a derived ID was hashed from, or "" when no
	// member claimed anything. Merge reads it from prev to tell whether the
	// cluster's devices still claim its LAN; "" there means unknown.
	Claim string
}

// Merge groups devices into network clusters and names each cluster.
//
// Devices that see each other, directly or through others (in either
// direction), form one cluster. IDs are handed out in rounds, every cluster
// against every other, so the result does not depend on the order of the
// input. In each round the strongest wish goes first (more devices behind
// it, then the larger cluster, then the lowest member ID, then the lexically
// smaller ID), and a cluster takes an ID no earlier one took:
//
//  1. explicit claims of its members (operators' overrides);
//  2. the ID of a prev cluster it overlaps, most overlapping members first;
//     prev clusters whose claim one of its members still makes come before
//     those nobody claims any longer, so that a device that moved to another
//     LAN does not drag its old ID into a cluster that has one;
//  3. derived claims of its members;
//  4. a hash of its first wish (or "") and its lowest member ID.
//
// Round 2 keeps an ID for as long as any of its devices keep forming the
// cluster: devices joining and leaving, a claim that changes with the
// inputs, a LAN that splits (the part with most of the old members keeps
// the ID), never rename it. Two LANs whose devices claim the same ID (the
// same private subnet and gateway address, or the same override) stay two
// clusters: the one with more claimants, or the one that had it, keeps the
// ID; the other gets a derived one, which it then keeps. prev may be nil.
// Several views of one device are combined. The result is sorted by ID and
// depends on its inputs only.
func Merge(views []View, prev []Cluster) []Cluster {
	byDevice := map[string]*View{}
	var devices []string
	for _, v := range views {
		if v.Device == "" {
			continue
		}
		cur, ok := byDevice[v.Device]
		if !ok {
			c := v
			c.Peers = slices.Clone(v.Peers)
			byDevice[v.Device] = &c
			devices = append(devices, v.Device)
			continue
		}
		cur.Peers = append(cur.Peers, v.Peers...)
		if betterClaim(v, *cur) {
			cur.Claim, cur.Explicit = v.Claim, v.Explicit
		}
	}
	slices.Sort(devices)
	comps := components(devices, byDevice)

	prevOf := map[string][]int{} // device → indexes of the prev clusters it was in
	for i, c := range prev {
		for _, m := range c.Members {
			prevOf[m] = append(prevOf[m], i)
		}
	}

	// Every cluster's wishes, by round.
	type wish struct {
		round  int
		weight int // devices behind the wish
		comp   int // index into comps
		id     string
		claim  string // what the ID is chosen for (Cluster.Claim)
	}
	var wishes []wish
	for ci, members := range comps {
		explicit, derived, overlap := map[string]int{}, map[string]int{}, map[int]int{}
		claimed := map[string]bool{}
		for _, m := range members {
			v := byDevice[m]
			switch {
			case v.Claim == "":
			case v.Explicit:
				explicit[v.Claim]++
			default:
				derived[v.Claim]++
			}
			if v.Claim != "" {
				claimed[v.Claim] = true
			}
			for _, pi := range prevOf[m] {
				overlap[pi]++
			}
		}
		for id, n := range explicit {
			wishes = append(wishes, wish{round: 1, weight: n, comp: ci, id: id, claim: id})
		}
		for pi, n := range overlap {
			p := prev[pi]
			round := 3 // round 2, after the IDs still claimed
			if claimed[p.ID] || (p.Claim != "" && claimed[p.Claim]) {
				round = 2
			}
			wishes = append(wishes, wish{round: round, weight: n, comp: ci, id: p.ID, claim: cmp.Or(p.Claim, p.ID)})
		}
		for id, n := range derived {
			wishes = append(wishes, wish{round: 4, weight: n, comp: ci, id: id, claim: id})
		}
	}
	slices.SortFunc(wishes, func(a, b wish) int {
		return cmp.Or(
			cmp.Compare(a.round, b.round),
			cmp.Compare(b.weight, a.weight),
			cmp.Compare(len(comps[b.comp]), len(comps[a.comp])),
			cmp.Compare(comps[a.comp][0], comps[b.comp][0]),
			cmp.Compare(a.id, b.id),
		)
	})

	named := make([]*Cluster, len(comps))
	taken := map[string]bool{}
	first := make([]string, len(comps)) // each cluster's strongest wish
	seen := make([]bool, len(comps))
	for _, w := range wishes {
		if !seen[w.comp] {
			seen[w.comp], first[w.comp] = true, w.claim
		}
		if named[w.comp] != nil || taken[w.id] {
			continue
		}
		taken[w.id] = true
		named[w.comp] = &Cluster{ID: w.id, Members: comps[w.comp], Claim: w.claim}
	}
	out := make([]Cluster, 0, len(comps))
	for ci, members := range comps {
		if c := named[ci]; c != nil {
			out = append(out, *c)
			continue
		}
		id := hashID("edgefabric-net-dup:" + first[ci] + "|" + members[0])
		for n := 1; taken[id]; n++ {
			id = hashID("edgefabric-net-dup:" + first[ci] + "|" + members[0] + "|" + strconv.Itoa(n))
		}
		taken[id] = true
		out = append(out, Cluster{ID: id, Members: members, Claim: first[ci]})
	}
	slices.SortFunc(out, func(a, b Cluster) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// components returns the connected components of the devices (sorted) over
// the peers each sees, each sorted, in the order of their lowest member.
func components(devices []string, byDevice map[string]*View) [][]string {
	index := make(map[string]int, len(devices))
	for i, d := range devices {
		index[d] = i
	}
	parent := make([]int, len(devices))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for i, d := range devices {
		for _, p := range byDevice[d].Peers {
			if j, ok := index[p]; ok {
				a, b := find(i), find(j)
				if a != b {
					parent[max(a, b)] = min(a, b) // the root stays the lowest index: the lowest ID
				}
			}
		}
	}
	var comps [][]string
	at := map[int]int{} // root → index in comps
	for i, d := range devices {
		r := find(i)
		ci, ok := at[r]
		if !ok {
			ci = len(comps)
			at[r] = ci
			comps = append(comps, nil)
		}
		comps[ci] = append(comps[ci], d) // devices are sorted, so members are too
	}
	return comps
}

// betterClaim reports whether a's claim beats b's when one device sent both:
// explicit over derived over none, then the lexically smaller.
func betterClaim(a, b View) bool {
	rank := func(v View) int {
		switch {
		case v.Claim == "":
			return 0
		case v.Explicit:
			return 2
		}
		return 1
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra > rb
	}
	return a.Claim != "" && a.Claim < b.Claim
}

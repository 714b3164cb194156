// Package network decides which network cluster a device belongs to. A network
// cluster is the set of one account's devices that reach each other on a
// link-local network: they see each other over mDNS (package mdns) and prove
// who they are over mutual TLS.
//
// Each device claims a cluster ID: ID derives it from facts about the device's
// LAN (its subnet and default gateway), or takes the name the operator gave
// with --network. Devices of one LAN compute the same claim, so the ID stays
// the same while devices join and leave. Where claims disagree (a device that
// could not read its gateway's hardware address, an operator's override on
// some devices only) Merge reconciles the views of the devices that see each
// other, deterministically. The provider runs Merge over what its agents
// report; an agent can run it over what it sees while its uplink is down.
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
	// GatewayMAC is the default gateway's hardware address from the neighbour
	// table. It tells apart two LANs that use the same private subnet and
	// gateway address. Nil means unknown.
	GatewayMAC net.HardwareAddr
	// Override is the network name the operator gave (--network NAME). When
	// set, it alone decides the ID.
	Override string
}

// Fill returns l with the gateway hardware address taken from prev when l
// lacks it and prev describes the same subnet and gateway. An agent keeps the
// facts it read last (e.g. in its store) and fills in what a later reading
// missed, so that a gateway that briefly stops answering ARP does not change
// the device's claim.
func (l LAN) Fill(prev LAN) LAN {
	if len(l.GatewayMAC) == 0 && len(prev.GatewayMAC) > 0 &&
		l.Subnet.Masked() == prev.Subnet.Masked() && l.Gateway == prev.Gateway {
		l.GatewayMAC = slices.Clone(prev.GatewayMAC)
	}
	return l
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
// ID is the first IDLength lower-case hex digits of a SHA-256 over the subnet,
// the gateway's address and, when known, its hardware address. ID returns ""
// (no claim) when neither an override nor a subnet is known.
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
	if len(lan.GatewayMAC) > 0 {
		b.WriteString(strings.ToLower(lan.GatewayMAC.String()))
	}
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
}

// Merge groups devices into network clusters and names each cluster.
//
// Devices that see each other, directly or through others (in either
// direction), form one cluster. Its ID is chosen from the candidates below,
// in order, skipping IDs an earlier cluster took; clusters are served
// largest first, ties by their lowest member ID:
//
//  1. explicit claims of its members, most claimed first, ties in lexical order;
//  2. IDs of prev clusters it overlaps that at least one of its members still
//     claims, largest overlap first, ties in lexical order, so that an ID
//     does not flip while devices join and leave;
//  3. derived claims of its members, most claimed first, ties in lexical order;
//  4. a hash of its first candidate (or "") and its lowest member ID.
//
// A device that moved to another LAN no longer claims its old cluster's ID,
// so it does not drag that ID along. Two LANs whose devices claim the same ID
// (the same private subnet and gateway address with no gateway hardware
// address known, or the same override) stay two clusters; the smaller gets a
// derived ID. prev may be nil. Several views of one device are combined. The
// result is sorted by ID and depends on its inputs only, not their order.
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

	// Connected components, by union-find over device indexes.
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
	groups := map[int][]string{}
	for i, d := range devices {
		r := find(i)
		groups[r] = append(groups[r], d) // devices are sorted, so members are too
	}
	comps := make([][]string, 0, len(groups))
	for _, g := range groups {
		comps = append(comps, g)
	}
	slices.SortFunc(comps, func(a, b []string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return cmp.Compare(a[0], b[0])
	})

	prevOf := map[string]string{}
	for _, c := range prev {
		for _, m := range c.Members {
			prevOf[m] = c.ID
		}
	}

	taken := map[string]bool{}
	out := make([]Cluster, 0, len(comps))
	for _, members := range comps {
		explicit, derived, overlap := map[string]int{}, map[string]int{}, map[string]int{}
		for _, m := range members {
			v := byDevice[m]
			switch {
			case v.Claim == "":
			case v.Explicit:
				explicit[v.Claim]++
			default:
				derived[v.Claim]++
			}
			if id, ok := prevOf[m]; ok {
				overlap[id]++
			}
		}
		sticky := map[string]int{}
		for id, n := range overlap {
			if derived[id] > 0 {
				sticky[id] = n
			}
		}
		candidates := slices.Concat(ranked(explicit), ranked(sticky), ranked(derived))
		id := ""
		for _, c := range candidates {
			if !taken[c] {
				id = c
				break
			}
		}
		if id == "" {
			first := ""
			if len(candidates) > 0 {
				first = candidates[0]
			}
			id = hashID("edgefabric-net-dup:" + first + "|" + members[0])
			for n := 1; taken[id]; n++ {
				id = hashID("edgefabric-net-dup:" + first + "|" + members[0] + "|" + strconv.Itoa(n))
			}
		}
		taken[id] = true
		out = append(out, Cluster{ID: id, Members: members})
	}
	slices.SortFunc(out, func(a, b Cluster) int { return cmp.Compare(a.ID, b.ID) })
	return out
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

// ranked returns the keys of counts, most counted first, ties in lexical order.
func ranked(counts map[string]int) []string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return keys
}

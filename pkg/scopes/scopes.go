// Package scopes is the shared vocabulary of cluster formation: the scopes by
// which devices are grouped into clusters (account, network, proximity), the
// names of the virtual nodes that stand for those clusters, and the account
// fingerprint agents announce on a LAN instead of the account's name.
//
// The parts live in sub-packages, each a pure core driven by its caller except
// where noted:
//
//   - network: facts about a device's LAN, the network cluster ID derived from
//     them, and Merge, which reconciles the views of devices that disagree.
//     DiscoverLAN reads the facts from the operating system.
//   - network/mdns: the adapter that announces an agent and browses for its
//     peers over multicast DNS (the only part that does network I/O).
//   - membership: a clock-driven liveness table, so an agent tracks its peers
//     while its uplink to the provider is down.
//   - proximity: Vivaldi network coordinates, great-circle distance, and
//     grouping devices into proximity clusters by a radius.
//
// Nothing here imports Kubernetes: the agent links these packages too.
package scopes

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Scope is a way of grouping an account's devices into clusters.
type Scope string

const (
	// Account groups all of an account's devices into one cluster.
	Account Scope = "account"
	// Network groups the devices that reach each other on one link-local network.
	Network Scope = "network"
	// Proximity groups devices that are close by estimated round-trip time or by
	// distance on the ground.
	Proximity Scope = "proximity"
)

// Scopes lists every scope, in a fixed order.
var Scopes = []Scope{Account, Network, Proximity}

// ParseScope returns the scope named s ("account", "network" or "proximity").
func ParseScope(s string) (Scope, error) {
	for _, sc := range Scopes {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown scope %q: want account, network or proximity", s)
}

// MaxNodeNameLength is the longest name NodeName returns, so that a node name
// also fits wherever a DNS label or a label value is expected.
const MaxNodeNameLength = 63

// nodeNameRE matches a DNS-1123 subdomain whose labels are non-empty.
var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidNodeName reports whether s is a name NodeName could return: a DNS-1123
// subdomain of at most MaxNodeNameLength characters.
func ValidNodeName(s string) bool {
	return len(s) <= MaxNodeNameLength && nodeNameRE.MatchString(s)
}

// maxIDInName and maxScopeInName are the longest cluster ID and scope kept
// in a name; longer ones are cut short and the name gets a hash.
const (
	maxIDInName    = 20
	maxScopeInName = 10
)

// NodeName returns the name of the virtual node that stands for one cluster of
// account's devices:
//
//	edge-<account>                  for the Account scope or "" (clusterID is ignored)
//	edge-<account>-net-<clusterID>  for the Network scope
//	edge-<account>-prox-<clusterID> for the Proximity scope
//
// That plain name is kept only when it could stand for nothing else: a valid
// DNS-1123 subdomain of at most 63 characters, holding no "--", and holding
// the markers "-net-" and "-prox-" only where NodeName put one (none for the
// Account scope). Otherwise (an account "a-net-x" would have the name of
// account "a"'s network "x"), and for any other scope, its parts are
// lower-cased, stripped of invalid characters and shortened, and a hash of
// the exact inputs is appended after "--"
// ("edge-<account…>-net-<id…>--<hash>"), which no plain name holds. So
// different inputs never share a name (the hash is 64 bits). The result
// depends on its inputs only; it never changes while they do not.
func NodeName(account string, scope Scope, clusterID string) string {
	var marker string
	plain := true // the marker spells the scope as it is
	switch scope {
	case Account, "":
		scope, clusterID = Account, ""
	case Network:
		marker = "-net-"
	case Proximity:
		marker = "-prox-"
	default:
		short := strings.ReplaceAll(sanitize(string(scope)), ".", "-")
		if short = trimName(short[:min(len(short), maxScopeInName)]); short == "" {
			short = "scope"
		}
		marker, plain = "-"+short+"-", false
	}
	name := "edge-" + account
	markers := 0
	if marker != "" {
		name += marker + clusterID
		markers = 1
	}
	if plain && ValidNodeName(name) && !strings.Contains(name, "--") && countMarkers(name) == markers {
		return name
	}

	h := sha256.New()
	for _, part := range []string{"edgefabric-node", string(scope), account, clusterID} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		h.Write([]byte(part))
	}
	hash := hex.EncodeToString(h.Sum(nil)[:8])
	tail := "--" + hash
	if marker != "" {
		id := strings.ReplaceAll(sanitize(clusterID), ".", "-")
		id = trimName(id[:min(len(id), maxIDInName)])
		if id == "" {
			tail = marker + "-" + hash
		} else {
			tail = marker + id + "--" + hash
		}
	}
	acct := sanitize(account)
	budget := MaxNodeNameLength - len("edge-") - len(tail)
	acct = trimName(acct[:min(len(acct), budget)])
	if acct == "" {
		return "edge" + tail
	}
	return "edge-" + acct + tail
}

// countMarkers counts the places in name where a scope marker ("-net-" or
// "-prox-") starts.
func countMarkers(name string) int {
	n := 0
	for i := range name {
		if strings.HasPrefix(name[i:], "-net-") || strings.HasPrefix(name[i:], "-prox-") {
			n++
		}
	}
	return n
}

// sanitize lower-cases s, turns characters a DNS-1123 subdomain cannot hold
// into '-', and drops empty labels and the dashes labels may not start or end with.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, s)
	var labels []string
	for l := range strings.SplitSeq(s, ".") {
		if l = strings.Trim(l, "-"); l != "" {
			labels = append(labels, l)
		}
	}
	return strings.Join(labels, ".")
}

// trimName removes the dots and dashes a name may not end with after it was cut short.
func trimName(s string) string { return strings.TrimRight(s, ".-") }

// Fingerprint returns the fingerprint of an account that agents announce on a
// LAN instead of the account's name: the first 8 bytes of
// SHA-256("edgefabric-account:" + account), in lower-case hex (16 characters).
// It lets agents of one account find each other without telling the LAN whose
// devices they are; it proves nothing, and peers still verify each other over
// mutual TLS.
func Fingerprint(account string) string {
	sum := sha256.Sum256([]byte("edgefabric-account:" + account))
	return hex.EncodeToString(sum[:8])
}

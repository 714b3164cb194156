package fabric

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/edgefabric/edgefabric/pkg/scopes"
	"github.com/edgefabric/edgefabric/pkg/scopes/network"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

// ClusterKey names one cluster of one account's devices.
type ClusterKey struct {
	Account string
	Scope   scopes.Scope
	// ID is the cluster's ID within its scope; "" for the account scope.
	ID string
}

// NodeName is the name of the virtual node that stands for the cluster.
func (k ClusterKey) NodeName() string { return scopes.NodeName(k.Account, k.Scope, k.ID) }

// Cluster is one cluster and its members (device IDs, sorted).
type Cluster struct {
	ClusterKey
	Members []string
	// Seed is a proximity cluster's seed device; "" for other scopes.
	Seed string
	// Claim is what a network cluster's ID was chosen for (network.Cluster's
	// Claim); "" for other scopes, and when unknown.
	Claim string
}

// ClusterConfig says which clusters Clusters forms.
type ClusterConfig struct {
	// Scopes are the scopes whose clusters are formed; nil means network and
	// account.
	Scopes []scopes.Scope
	// Proximity is the radius of proximity clusters; used only when Scopes
	// holds scopes.Proximity.
	Proximity proximity.GroupConfig
}

// DefaultScopes are the scopes that publish nodes unless configured otherwise.
var DefaultScopes = []scopes.Scope{scopes.Network, scopes.Account}

// ParseScopes reads a comma-separated list of scopes ("network,account").
func ParseScopes(s string) ([]scopes.Scope, error) {
	var out []scopes.Scope
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		sc, err := scopes.ParseScope(part)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("scopes %q: name at least one of account, network, proximity", s)
	}
	return out, nil
}

// Validate reports a configuration that cannot work.
func (c ClusterConfig) Validate() error {
	for _, sc := range c.Scopes {
		if _, err := scopes.ParseScope(string(sc)); err != nil {
			return err
		}
	}
	if slices.Contains(c.scopes(), scopes.Proximity) {
		if err := c.Proximity.Validate(); err != nil {
			return fmt.Errorf("proximity radius: %w", err)
		}
	}
	return nil
}

func (c ClusterConfig) scopes() []scopes.Scope {
	if c.Scopes == nil {
		return DefaultScopes
	}
	return c.Scopes
}

// Clusters forms the clusters of the given devices (of any accounts) for the
// configured scopes: a pure, deterministic function of its inputs. prev is
// its previous result (nil the first time), and may also hold clusters that
// stopped forming but whose nodes are still there; it keeps network and
// proximity cluster IDs, and so node names, stable for as long as devices
// keep forming them.
//
//   - account: one cluster per account with every known device.
//   - network: network.Merge over the devices' scope reports: the claim each
//     device derived from its LAN (or its --network), and the peers it
//     verified over the device mesh. A device that has gone offline keeps
//     its last report, so a LAN whose uplink is cut stays one cluster (its
//     node shows the devices offline). Devices without a claim, and devices
//     still discovering their LAN, are in no
//     network cluster.
//   - proximity: proximity.Group by coordinates, points or regions.
//
// The result is sorted by account, scope and ID.
func Clusters(devices []Device, cfg ClusterConfig, prev []Cluster) []Cluster {
	byAccount := map[string][]Device{}
	var accounts []string
	for _, d := range devices {
		if _, ok := byAccount[d.Account]; !ok {
			accounts = append(accounts, d.Account)
		}
		byAccount[d.Account] = append(byAccount[d.Account], d)
	}
	slices.Sort(accounts)
	prevBy := map[ClusterKey][]Cluster{}
	for _, c := range prev {
		k := ClusterKey{Account: c.Account, Scope: c.Scope}
		prevBy[k] = append(prevBy[k], c)
	}
	var out []Cluster
	for _, account := range accounts {
		devs := byAccount[account]
		slices.SortFunc(devs, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
		for _, sc := range cfg.scopes() {
			p := prevBy[ClusterKey{Account: account, Scope: sc}]
			switch sc {
			case scopes.Account:
				c := Cluster{ClusterKey: ClusterKey{Account: account, Scope: scopes.Account}}
				for _, d := range devs {
					c.Members = append(c.Members, d.ID)
				}
				out = append(out, c)
			case scopes.Network:
				out = append(out, networkClusters(account, devs, p)...)
			case scopes.Proximity:
				out = append(out, proximityClusters(account, devs, cfg.Proximity, p)...)
			}
		}
	}
	slices.SortFunc(out, func(a, b Cluster) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func networkClusters(account string, devs []Device, prev []Cluster) []Cluster {
	var views []network.View
	for _, d := range devs {
		sc := d.Scopes
		if sc == nil || sc.GetNetworkId() == "" || sc.GetDiscovering() {
			continue
		}
		v := network.View{Device: d.ID, Claim: sc.GetNetworkId(), Explicit: sc.GetNetworkExplicit()}
		for _, p := range sc.GetPeers() {
			v.Peers = append(v.Peers, p.GetDeviceId())
		}
		views = append(views, v)
	}
	if len(views) == 0 {
		return nil
	}
	var pn []network.Cluster
	for _, c := range prev {
		pn = append(pn, network.Cluster{ID: c.ID, Members: c.Members, Claim: c.Claim})
	}
	var out []Cluster
	for _, c := range network.Merge(views, pn) {
		out = append(out, Cluster{ClusterKey: ClusterKey{Account: account, Scope: scopes.Network, ID: c.ID}, Members: c.Members, Claim: c.Claim})
	}
	return out
}

func proximityClusters(account string, devs []Device, cfg proximity.GroupConfig, prev []Cluster) []Cluster {
	var pds []proximity.Device
	for _, d := range devs {
		sc := d.Scopes
		if sc == nil {
			continue
		}
		pd := proximity.Device{ID: d.ID, Location: proximity.Location{Region: sc.GetRegion()}}
		if sc.GetHasPoint() {
			pd.Location.Point = &proximity.Point{Lat: sc.GetLatitude(), Long: sc.GetLongitude()}
		}
		if c := sc.GetCoordinate(); c != nil && len(c.GetVec()) > 0 {
			pd.Coordinate = &proximity.Coordinate{Vec: slices.Clone(c.GetVec()), Error: c.GetError(), Adjustment: c.GetAdjustment(), Height: c.GetHeight()}
			if !pd.Coordinate.Valid() {
				pd.Coordinate = nil
			}
		}
		pds = append(pds, pd)
	}
	var pp []proximity.Cluster
	for _, c := range prev {
		pp = append(pp, proximity.Cluster{ID: c.ID, Seed: c.Seed, Members: c.Members})
	}
	cs, _, err := proximity.Group(pds, cfg, pp)
	if err != nil {
		return nil // Validate rejects such a config
	}
	var out []Cluster
	for _, c := range cs {
		out = append(out, Cluster{ClusterKey: ClusterKey{Account: account, Scope: scopes.Proximity, ID: c.ID}, Members: c.Members, Seed: c.Seed})
	}
	return out
}

// AllDevices returns a snapshot of every known device, sorted by account and ID.
func (f *Fabric) AllDevices() []Device {
	var out []Device
	for _, a := range f.Accounts() {
		out = append(out, f.Devices(a)...)
	}
	return out
}

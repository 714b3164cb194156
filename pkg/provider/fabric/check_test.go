package fabric

import (
	"log/slog"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/scopes"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

func TestChecks(t *testing.T) {
	many := func(n int) []string { return make([]string, n) }
	labels := map[string]string{}
	for i := range MaxLabels + 1 {
		labels[strings.Repeat("l", i+1)] = ""
	}
	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{"good hello", CheckHello(&hubv1.Hello{DeviceId: "pi-1", Addresses: []string{"10.0.0.2", "2001:db8::1"}, Runtimes: []string{"wasm"},
			Capacity: &hubv1.Resources{CpuMillis: 1000}, Scopes: &hubv1.Scopes{MeshPort: 7946, HasPoint: true, Latitude: -90, Longitude: 180}}), ""},
		{"too many labels", CheckHello(&hubv1.Hello{Labels: labels}), "labels"},
		{"too many addresses", CheckHello(&hubv1.Hello{Addresses: many(MaxAddresses + 1)}), "addresses"},
		{"not an address", CheckHello(&hubv1.Hello{Addresses: []string{"10.0.0.256"}}), "not an IP address"},
		{"too many runtimes", CheckHello(&hubv1.Hello{Runtimes: many(MaxRuntimes + 1)}), "runtimes"},
		{"negative capacity", CheckHello(&hubv1.Hello{Capacity: &hubv1.Resources{Pods: -1}}), "negative capacity"},
		{"long hostname", CheckHello(&hubv1.Hello{Hostname: strings.Repeat("h", maxString+1)}), "hostname"},
		{"bad scopes in the hello", CheckHello(&hubv1.Hello{Scopes: &hubv1.Scopes{MeshPort: 70000}}), "scopes: mesh port"},
		{"too many statuses in the hello", CheckHello(&hubv1.Hello{Statuses: make([]*hubv1.WorkloadStatus, MaxStatuses+1)}), "statuses"},
		{"NaN coordinate", CheckScopes(&hubv1.Scopes{Coordinate: &hubv1.Coordinate{Vec: []float64{math.NaN()}}}), "not finite"},
		{"infinite height", CheckScopes(&hubv1.Scopes{Coordinate: &hubv1.Coordinate{Height: math.Inf(1)}}), "not finite"},
		{"wide coordinate", CheckScopes(&hubv1.Scopes{Coordinate: &hubv1.Coordinate{Vec: make([]float64, MaxDimensions+1)}}), "dimensions"},
		{"too many peers", CheckScopes(&hubv1.Scopes{Peers: make([]*hubv1.LANPeer, MaxPeers+1)}), "peers"},
		{"negative peer rtt", CheckScopes(&hubv1.Scopes{Peers: []*hubv1.LANPeer{{DeviceId: "p", RttMs: -1}}}), "round trip"},
		{"latitude", CheckScopes(&hubv1.Scopes{HasPoint: true, Latitude: 90.5}), "latitude"},
		{"NaN hub rtt", CheckScopes(&hubv1.Scopes{HubRttMs: math.NaN()}), "hub round trip"},
		{"too many events", CheckStatusReport(&hubv1.StatusReport{Events: make([]*hubv1.Event, MaxEvents+1)}), "events"},
		{"long message", CheckStatusReport(&hubv1.StatusReport{Events: []*hubv1.Event{{Message: strings.Repeat("m", maxText+1)}}}), "beyond its bound"},
		{"good report", CheckStatusReport(&hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{Uid: "u", Message: "fine"}}}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr == "" {
				if tt.err != nil {
					t.Fatalf("got %v, want no error", tt.err)
				}
				return
			}
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", tt.err, tt.wantErr)
			}
		})
	}
}

// FuzzAgentMessage decodes arbitrary bytes as the hub decodes what a device
// sends, checks them as the hub does and feeds what passes into a fabric,
// then forms clusters and looks for the nearest devices from it: nothing
// may panic, and no coordinate that passed the checks may be invalid.
func FuzzAgentMessage(f *testing.F) {
	seed := func(m *hubv1.AgentMessage) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{DeviceId: "pi-2", Capacity: &hubv1.Resources{CpuMillis: 1000, Pods: 10},
		Addresses: []string{"10.0.0.2"}, Runtimes: []string{"wasm"}, Labels: map[string]string{"zone": "a"},
		Scopes: &hubv1.Scopes{Seq: 1, NetworkId: "lan1", HasPoint: true, Latitude: 48.1, Longitude: 11.5,
			Coordinate: &hubv1.Coordinate{Vec: []float64{0.01, 0, 0, 0, 0, 0, 0, 0}, Height: 1e-5}}}}})
	seed(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Scopes{Scopes: &hubv1.Scopes{Seq: 9, NetworkId: "lan1", Peers: []*hubv1.LANPeer{{DeviceId: "pi-1", RttMs: 1}},
		Coordinate: &hubv1.Coordinate{Vec: []float64{1, 2}}}}})
	seed(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Status{Status: &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{Uid: "uid-1", Phase: "Running"}},
		Events: []*hubv1.Event{{WorkloadUid: "uid-1", Reason: reasons.Fenced}}}}})
	seed(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Heartbeat{Heartbeat: &hubv1.Heartbeat{Usage: []*hubv1.WorkloadUsage{{}}}}})
	log := slog.New(slog.DiscardHandler)
	pi1, pi2 := identity.Device{ID: "pi-1", Account: "acme"}, identity.Device{ID: "pi-2", Account: "acme"}
	cfg := ClusterConfig{Scopes: []scopes.Scope{scopes.Network, scopes.Proximity}, Proximity: proximity.GroupConfig{Km: 10}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m hubv1.AgentMessage
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		fab := New(log)
		fab.MarkReady()
		fab.Connect(pi1, &hubv1.Hello{Capacity: &hubv1.Resources{CpuMillis: 1000, Pods: 10},
			Scopes: &hubv1.Scopes{Seq: 1, NetworkId: "lan1", Coordinate: &hubv1.Coordinate{Vec: make([]float64, 8), Height: 1e-5}}})
		fab.Assign("acme", "pi-2", &hubv1.Workload{Uid: "uid-1"})
		switch m := m.GetMsg().(type) {
		case *hubv1.AgentMessage_Hello:
			if CheckHello(m.Hello) != nil {
				return
			}
			fab.Connect(pi2, m.Hello)
		case *hubv1.AgentMessage_Scopes:
			if CheckScopes(m.Scopes) != nil {
				return
			}
			fab.Connect(pi2, &hubv1.Hello{})
			fab.ReportScopes(pi2, m.Scopes)
		case *hubv1.AgentMessage_Status:
			if CheckStatusReport(m.Status) != nil {
				return
			}
			fab.Report(pi2, m.Status)
		case *hubv1.AgentMessage_Heartbeat:
			fab.ReportUsage(pi2, m.Heartbeat.GetUsage())
			_, _ = fab.Usage("uid-1")
		default:
			return
		}
		devs := fab.Devices("acme")
		_ = Clusters(devs, cfg, nil)
		for _, d := range devs {
			if c := coordinateOf(d); c != nil && !c.Valid() {
				t.Fatalf("device %s has an invalid coordinate %+v", d.ID, c)
			}
			_ = Nearest(d, devs, Resources(nil), 0)
		}
	})
}

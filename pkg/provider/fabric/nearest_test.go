package fabric_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/placement"
)

func TestNearest(t *testing.T) {
	at := func(id, network string, x float64, online bool, cpuUsed int64) fabric.Device {
		sc := &hubv1.Scopes{NetworkId: network}
		if x >= 0 {
			sc.Coordinate = &hubv1.Coordinate{Vec: []float64{x, 0}, Height: 1e-5}
		}
		return fabric.Device{
			Device: identity.Device{Account: "a", ID: id}, Online: online, Scopes: sc,
			Capacity:  placement.Resources{CPUMillis: 1000, MemoryBytes: 1 << 30, Pods: 10},
			Allocated: placement.Resources{CPUMillis: cpuUsed},
		}
	}
	self := at("self", "lan1", 0, true, 0)
	other := at("x", "lan1", 0.001, true, 0)
	other.Account = "b"
	devices := []fabric.Device{
		self, other,
		at("far", "lan2", 0.080, true, 0),
		at("near", "lan2", 0.005, true, 0),
		at("lan-mate", "lan1", 0.030, true, 0),
		at("no-coordinate", "lan3", -1, true, 0),
		at("offline", "lan1", 0.001, false, 0),
		at("busy", "lan1", 0.001, true, 900),
	}
	tests := []struct {
		name  string
		free  placement.Resources
		limit int
		want  []string
	}{
		{name: "same network first, then by RTT, no coordinate last", free: placement.Resources{CPUMillis: 500},
			want: []string{"lan-mate", "near", "far", "no-coordinate"}},
		{name: "busy devices count when little is asked", free: placement.Resources{CPUMillis: 50},
			want: []string{"busy", "lan-mate", "near", "far", "no-coordinate"}},
		{name: "limit", free: placement.Resources{CPUMillis: 500}, limit: 2, want: []string{"lan-mate", "near"}},
		{name: "nothing has that much", free: placement.Resources{CPUMillis: 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, n := range fabric.Nearest(self, devices, tt.free, tt.limit) {
				got = append(got, n.ID)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("nearest (-want +got):\n%s", d)
			}
		})
	}
}

package fabric

import (
	"testing"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/placement"
)

func TestRequests(t *testing.T) {
	c := func(cpu, mem int64, policy string) *hubv1.Container {
		return &hubv1.Container{CpuRequestMillis: cpu, MemoryRequestBytes: mem, RestartPolicy: policy}
	}
	tests := []struct {
		name        string
		inits, apps []*hubv1.Container
		want        placement.Resources
	}{
		{name: "apps add up", apps: []*hubv1.Container{c(100, 10, ""), c(200, 20, "")}, want: placement.Resources{CPUMillis: 300, MemoryBytes: 30}},
		{name: "a big init container", inits: []*hubv1.Container{c(1000, 5, "")}, apps: []*hubv1.Container{c(100, 10, "")}, want: placement.Resources{CPUMillis: 1000, MemoryBytes: 10}},
		{name: "sidecars add to apps and later inits", inits: []*hubv1.Container{c(50, 50, "Always"), c(500, 1, "")}, apps: []*hubv1.Container{c(100, 10, "")},
			want: placement.Resources{CPUMillis: 550, MemoryBytes: 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requests(&hubv1.Workload{InitContainers: tt.inits, Containers: tt.apps})
			if got != tt.want {
				t.Errorf("requests: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

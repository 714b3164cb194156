package placement

import (
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

func TestChoose(t *testing.T) {
	dev := func(id string, online bool, cpuUsed, memUsed, pods int64) Candidate {
		return Candidate{
			ID: id, Online: online, Runtimes: []string{"wasm"},
			Capacity:  Resources{CPUMillis: 1000, MemoryBytes: 1 << 30, Pods: 10},
			Allocated: Resources{CPUMillis: cpuUsed, MemoryBytes: memUsed, Pods: pods},
		}
	}
	small := Request{Runtime: "wasm", Resources: Resources{CPUMillis: 100, MemoryBytes: 64 << 20}}
	for _, tc := range []struct {
		name    string
		cands   []Candidate
		req     Request
		want    string
		wantWhy string
	}{
		{name: "least loaded wins", cands: []Candidate{dev("a", true, 500, 0, 1), dev("b", true, 100, 0, 1)}, req: small, want: "b"},
		{name: "memory counts too", cands: []Candidate{dev("a", true, 0, 900<<20, 1), dev("b", true, 200, 0, 1)}, req: small, want: "b"},
		{name: "ties break on fewer pods then id", cands: []Candidate{dev("b", true, 0, 0, 0), dev("a", true, 0, 0, 0)}, req: Request{Runtime: "wasm"}, want: "a"},
		{name: "offline skipped", cands: []Candidate{dev("a", false, 0, 0, 0), dev("b", true, 900, 0, 5)}, req: small, want: "b"},
		{
			name:    "nothing fits says why",
			cands:   []Candidate{dev("a", false, 0, 0, 0), dev("b", true, 950, 0, 1), dev("c", true, 0, 1<<30, 1)},
			req:     small,
			wantWhy: "0/3 devices are available: 1 Insufficient cpu, 1 Insufficient memory, 1 offline.",
		},
		{name: "pod slots", cands: []Candidate{dev("a", true, 0, 0, 10)}, req: small, wantWhy: "0/1 devices are available: 1 Too many pods."},
		{name: "runtime", cands: []Candidate{dev("a", true, 0, 0, 0)}, req: Request{Runtime: "process"}, wantWhy: "0/1 devices are available: 1 no process runtime."},
		{
			name: "device selector",
			cands: []Candidate{
				withLabels(dev("a", true, 0, 0, 0), "camera", "yes"), withLabels(dev("b", true, 0, 0, 0), "camera", "no"),
				withLabels(dev("c", true, 0, 0, 0)),
			},
			req:  Request{Runtime: "wasm", Selector: selector(t, "camera=yes")},
			want: "a",
		},
		{
			name:    "device selector matches nothing",
			cands:   []Candidate{withLabels(dev("a", true, 0, 0, 0), "camera", "no"), dev("b", false, 0, 0, 0)},
			req:     Request{Runtime: "wasm", Selector: selector(t, "camera in (yes,maybe)")},
			wantWhy: "0/2 devices are available: 1 didn't match the device selector, 1 offline.",
		},
		{
			name:  "image platforms",
			cands: []Candidate{platform(dev("a", true, 0, 0, 0), "linux", "arm64"), platform(dev("b", true, 900, 0, 9), "linux", "amd64")},
			req:   Request{Runtime: "wasm", Platforms: []string{"linux/amd64"}},
			want:  "b",
		},
		{
			name:    "no device of the image's platforms",
			cands:   []Candidate{platform(dev("a", true, 0, 0, 0), "linux", "arm64")},
			req:     Request{Runtime: "wasm", Platforms: []string{"linux/amd64", "windows/amd64"}},
			wantWhy: "0/1 devices are available: 1 os/arch not among the image's platforms.",
		},
		{
			name:  "replicas spread before load",
			cands: []Candidate{same(dev("a", true, 0, 0, 0), 1), same(dev("b", true, 800, 0, 5), 0)},
			req:   small,
			want:  "b",
		},
		{
			name:  "spread evenly, then least loaded",
			cands: []Candidate{same(dev("a", true, 500, 0, 0), 1), same(dev("b", true, 100, 0, 5), 1), same(dev("c", true, 0, 0, 0), 2)},
			req:   small,
			want:  "b",
		},
		{name: "no devices", req: small, wantWhy: "0/0 devices are available: no device of this cluster is connected."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := Choose(tc.cands, tc.req)
			if got != tc.want || why != tc.wantWhy {
				t.Errorf("got (%q, %q), want (%q, %q)", got, why, tc.want, tc.wantWhy)
			}
		})
	}
}

func withLabels(c Candidate, kv ...string) Candidate {
	c.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Labels[kv[i]] = kv[i+1]
	}
	return c
}

func platform(c Candidate, os, arch string) Candidate {
	c.OS, c.Arch = os, arch
	return c
}

func same(c Candidate, n int) Candidate {
	c.SameOwner = n
	return c
}

func selector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestAdmissible(t *testing.T) {
	dev := func(id string, online bool, cpuUsed, pods int64) Candidate {
		return Candidate{
			ID: id, Online: online, Runtimes: []string{"wasm"},
			Capacity:  Resources{CPUMillis: 1000, MemoryBytes: 1 << 30, Pods: 10},
			Allocated: Resources{CPUMillis: cpuUsed, Pods: pods},
		}
	}
	req := Request{Runtime: "wasm", Resources: Resources{CPUMillis: 100, MemoryBytes: 64 << 20}}
	for _, tc := range []struct {
		name       string
		cands      []Candidate
		req        Request
		wantReject string
		wantMsg    string
	}{
		{name: "fits now", cands: []Candidate{dev("a", true, 0, 0)}, req: req},
		{
			name: "every pod slot taken", cands: []Candidate{dev("a", true, 0, 10), dev("b", true, 0, 10)}, req: req,
			wantReject: efv1.ReasonOutOfPods,
			wantMsg:    "Pod was rejected: Too many pods on device a (0/2 devices are available: 2 Too many pods.)",
		},
		{
			name: "cpu taken", cands: []Candidate{dev("a", true, 950, 1)}, req: req,
			wantReject: efv1.ReasonOutOfCPU,
			wantMsg:    "Pod was rejected: Insufficient cpu on device a (0/1 devices are available: 1 Insufficient cpu.)",
		},
		{name: "an offline device with room may come back", cands: []Candidate{dev("a", true, 0, 10), dev("b", false, 0, 0)}, req: req},
		{
			name: "an offline device that is full too does not hold the pod", cands: []Candidate{dev("a", true, 0, 10), dev("b", false, 0, 10)}, req: req,
			wantReject: efv1.ReasonOutOfPods,
			wantMsg:    "Pod was rejected: Too many pods on device a (0/2 devices are available: 1 Too many pods, 1 offline.)",
		},
		{name: "no device connected: waits", cands: []Candidate{dev("a", false, 0, 10)}, req: req},
		{name: "no device at all: waits", req: req},
		{name: "selector matches nothing: waits for a device that does", cands: []Candidate{dev("a", true, 0, 10)}, req: Request{Runtime: "wasm", Selector: selector(t, "camera=yes")}},
		{
			name: "only devices of the right runtime count", cands: []Candidate{dev("a", true, 0, 10), {ID: "b", Online: true, Runtimes: []string{"process"}, Capacity: Resources{CPUMillis: 1000, MemoryBytes: 1 << 30, Pods: 10}}}, req: req,
			wantReject: efv1.ReasonOutOfPods,
			wantMsg:    "Pod was rejected: Too many pods on device a (0/2 devices are available: 1 Too many pods, 1 no wasm runtime.)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Admissible(tc.cands, tc.req)
			if got.Reject != tc.wantReject || got.Message != tc.wantMsg {
				t.Errorf("Admissible = %+v, want reject %q with %q", got, tc.wantReject, tc.wantMsg)
			}
			if id, _ := Choose(tc.cands, tc.req); id != "" && got.Reject != "" {
				t.Errorf("rejected a pod Choose places on %s", id)
			}
		})
	}
}

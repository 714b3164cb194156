package placement

import "testing"

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

// Package placement chooses the device of an edge cluster that runs a pod. It is
// a pure function of the candidates and the request: filter the devices that can
// run the pod (online, runtime, os/arch against the image's platforms where
// known, the pod's device selector over device labels, free resources), then
// score them: spread replicas of the same owner across devices first, then
// prefer the least loaded. The fabric calls it with a snapshot of its devices;
// nothing here does I/O or holds state.
package placement

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// Resources is an amount of CPU, memory and pod slots.
type Resources struct {
	CPUMillis   int64
	MemoryBytes int64
	Pods        int64
}

// Candidate is one device as placement sees it.
type Candidate struct {
	ID        string
	Online    bool
	Capacity  Resources
	Allocated Resources // sum of the requests of what already runs there
	Runtimes  []string
	// OS and Arch are the device's GOOS and GOARCH; "" if unknown.
	OS, Arch string
	// Labels are the device's labels (--labels, os/arch/hostname).
	Labels map[string]string
	// SameOwner is how many pods of the request's owner already run there.
	SameOwner int
}

// Request is what a pod needs from its device.
type Request struct {
	Resources Resources
	Runtime   string
	// Platforms are the image's "os/arch" platforms; nil means unknown or
	// any (a WASM module runs everywhere).
	Platforms []string
	// Selector must match the device's labels; nil matches every device.
	Selector labels.Selector
}

// Choose returns the ID of the device to run req, or "" and a message naming
// why nothing fits, in the style of the scheduler's "0/3 devices are available:
// 2 Insufficient memory, 1 offline.".
func Choose(cands []Candidate, req Request) (string, string) {
	reasons := map[string]int{}
	type scored struct {
		id    string
		same  int
		score float64
		pods  int64
	}
	var fits []scored
	for _, c := range cands {
		if r := misfit(c, req); r != "" {
			reasons[r]++
			continue
		}
		fits = append(fits, scored{id: c.ID, same: c.SameOwner, score: load(c, req), pods: c.Allocated.Pods})
	}
	if len(fits) == 0 {
		return "", noFit(len(cands), reasons)
	}
	sort.Slice(fits, func(i, j int) bool {
		a, b := fits[i], fits[j]
		if a.same != b.same {
			return a.same < b.same
		}
		if a.score != b.score {
			return a.score < b.score
		}
		if a.pods != b.pods {
			return a.pods < b.pods
		}
		return a.id < b.id
	})
	return fits[0].id, ""
}

func misfit(c Candidate, req Request) string {
	if !c.Online {
		return "offline"
	}
	if r := mismatch(c, req); r != "" {
		return r
	}
	r, _ := short(c, req)
	return r
}

// mismatch says why the device can never run req whatever it has free, or "".
func mismatch(c Candidate, req Request) string {
	switch {
	case req.Runtime != "" && !slices.Contains(c.Runtimes, req.Runtime):
		return "no " + req.Runtime + " runtime"
	case len(req.Platforms) > 0 && !slices.Contains(req.Platforms, c.OS+"/"+c.Arch):
		return "os/arch not among the image's platforms"
	case req.Selector != nil && !req.Selector.Matches(labels.Set(c.Labels)):
		return "didn't match the device selector"
	}
	return ""
}

// short says which resource the device lacks for req, in the scheduler's
// words and as the kubelet's admission reason, or "" if it has room.
func short(c Candidate, req Request) (msg, reason string) {
	switch {
	case c.Capacity.Pods > 0 && c.Allocated.Pods+1 > c.Capacity.Pods:
		return "Too many pods", efv1.ReasonOutOfPods
	case c.Allocated.CPUMillis+req.Resources.CPUMillis > c.Capacity.CPUMillis:
		return "Insufficient cpu", efv1.ReasonOutOfCPU
	case c.Allocated.MemoryBytes+req.Resources.MemoryBytes > c.Capacity.MemoryBytes:
		return "Insufficient memory", efv1.ReasonOutOfMemory
	}
	return "", ""
}

// Admission is what a node does with a pod bound to it that no device can
// take now.
type Admission struct {
	// Reject is the reason to reject the pod with, as a kubelet rejects a
	// pod it cannot admit (efv1.ReasonOutOfCPU, ...): a connected device could
	// run it but for room that is taken. "" means the pod may wait.
	Reject string
	// Message says why, naming the resource, for the pod's status.
	Message string
}

// Admissible decides what becomes of a pod that Choose found no device for.
// The pod is rejected when what keeps it out is room: some connected device
// could run it but lacks a resource (Reject names the first such resource
// of the first such device), and no device that is offline now, and may
// come back, would take it. Otherwise it may wait: for a device that comes
// back, or for one that matches its selector, runtime or platform to join,
// as a pod that fits nowhere waits today. A pod some device can take now is
// admitted (the zero Admission).
func Admissible(cands []Candidate, req Request) Admission {
	var first Candidate
	var firstMsg, firstReason string
	for _, c := range cands {
		if mismatch(c, req) != "" {
			continue
		}
		msg, reason := short(c, req)
		if reason == "" {
			return Admission{} // it fits now, or once its device is back
		}
		if c.Online && firstReason == "" {
			first, firstMsg, firstReason = c, msg, reason
		}
	}
	if firstReason == "" {
		return Admission{}
	}
	_, why := Choose(cands, req)
	return Admission{Reject: firstReason, Message: fmt.Sprintf("Pod was rejected: %s on device %s (%s)", firstMsg, first.ID, why)}
}

// load is the device's utilisation after placing req: the mean of its CPU and
// memory fractions, so a device busy in either dimension ranks lower.
func load(c Candidate, req Request) float64 {
	frac := func(used, cap int64) float64 {
		if cap <= 0 {
			return 1
		}
		return float64(used) / float64(cap)
	}
	return (frac(c.Allocated.CPUMillis+req.Resources.CPUMillis, c.Capacity.CPUMillis) +
		frac(c.Allocated.MemoryBytes+req.Resources.MemoryBytes, c.Capacity.MemoryBytes)) / 2
}

func noFit(n int, reasons map[string]int) string {
	if n == 0 {
		return "0/0 devices are available: no device of this cluster is connected."
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", reasons[k], k))
	}
	return fmt.Sprintf("0/%d devices are available: %s.", n, strings.Join(parts, ", "))
}

package lifecycle

import (
	"bufio"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/provider/translate"
)

// TestScenarios runs testdata/*.txt: scenarios of commands, each followed
// by the actions it must produce (indented). A scenario starts with
// "config"; "at <duration>" sets the time of the commands that follow.
//
//	config grace=30s pending=2s          a new node: Config, no pods
//	pod <p> [containers=a,b] [grace=10s] [fence] [hostnetwork] [volumes]
//	        [recorded=<d>/<epoch>] [annotated=<d>]
//	device <d> <os/arch> online|offline [seen=<t>] [addr=<ip>,…]
//	create <p> [device=<d> epoch=<n>] [refused|tenancy-unknown]
//	recover <p> device=<d> epoch=<n>
//	update <p> | delete <p> [graceful] | unreachable <p> | evict-failed <p>
//	placed <p> <d> [chosen] | unplaceable <p> <reason> <msg> | rejected <p> <reason> <msg>
//	report <p> seq=<n> [creating|running|exited=<code>|pull=<os/arch>,…] [ip=<ip>] [from=<d>|none]
//	due <p> <d>                          the creating timer fired
//	tick | leave <d> | dissolve | reform | removed <d> <why>   every pod steps a Tick
//	retry                                every pod steps Retry
//	refresh <p> volumes=<h> spec=<h>
//	state                                every pod's state
//
// Actions of a command on several pods are prefixed with the pod's name.
// Log actions are not shown.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	checked := 0
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { checked += runScenarios(t, file) })
	}
	if checked < 100 {
		t.Errorf("only %d commands checked; are the scenario files complete?", checked)
	}
}

type world struct {
	cfg       Config
	now       time.Time
	pods      map[string]Pod
	specs     map[string]*corev1.Pod
	devices   map[string]Device
	left      map[string]time.Time
	dissolved time.Time
}

var epoch = time.Unix(1_000_000, 0)

// rewrite writes each command's actual output into the scenario files, to be
// read and reviewed before it is committed.
var rewrite = flag.Bool("rewrite", false, "rewrite testdata with the actions got")

func runScenarios(t *testing.T, file string) int {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		w       *world
		cmdLine int
		cmd     string
		want    []string
		checked int
		out     []string // the file rewritten
	)
	run := func() {
		if cmd == "" {
			return
		}
		got, err := w.exec(cmd)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", file, cmdLine, cmd, err)
		}
		out = append(out, cmd)
		for _, g := range got {
			out = append(out, "  "+g)
		}
		if *rewrite {
			want = got
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s:%d: %s (-want +got):\n%s", file, cmdLine, cmd, diff)
		}
		checked++
		cmd, want = "", nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
			run()
			out = append(out, line)
		case strings.HasPrefix(line, "  "):
			want = append(want, strings.TrimSpace(line))
		case strings.HasPrefix(line, "config"):
			run()
			out = append(out, line)
			w = newWorld(t, line)
		default:
			run()
			if w == nil {
				t.Fatalf("%s:%d: no config before %q", file, n, line)
			}
			cmd, cmdLine = line, n
		}
	}
	run()
	if *rewrite {
		if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return checked
}

func newWorld(t *testing.T, line string) *world {
	w := &world{
		cfg: Config{DeviceLossGrace: 30 * time.Second, PendingDelay: 2 * time.Second},
		now: epoch, pods: map[string]Pod{}, specs: map[string]*corev1.Pod{}, devices: map[string]Device{},
		left: map[string]time.Time{},
	}
	for _, kv := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		switch k {
		case "grace":
			w.cfg.DeviceLossGrace = d
		case "pending":
			w.cfg.PendingDelay = d
		default:
			t.Fatalf("%s: unknown %s", line, k)
		}
	}
	return w
}

// opts parses the key=value and bare words of a command.
func opts(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

func (w *world) exec(cmd string) ([]string, error) {
	f := strings.Fields(cmd)
	if f[0] == "at" {
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return nil, err
		}
		w.now = epoch.Add(d)
		f = f[2:]
		if len(f) == 0 {
			return nil, nil
		}
	}
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	o := opts(f[1:])
	switch f[0] {
	case "pod":
		w.specs[f[1]] = newPod(f[1], o)
		return nil, nil
	case "device":
		d := Device{ID: f[1], Online: arg(3) == "online"}
		d.OS, d.Arch, _ = strings.Cut(f[2], "/")
		if s, ok := o["seen"]; ok {
			dur, err := time.ParseDuration(s)
			if err != nil {
				return nil, err
			}
			d.LastSeen = epoch.Add(dur)
		}
		if a, ok := o["addr"]; ok {
			d.Addresses = strings.Split(a, ",")
		}
		w.devices[d.ID] = d
		return nil, nil
	case "state":
		var out []string
		for _, name := range slices.Sorted(maps.Keys(w.pods)) {
			if w.pods[name].Phase == Gone {
				continue
			}
			out = append(out, name+" "+formatState(w.pods[name]))
		}
		return out, nil
	case "tick", "leave", "dissolve", "reform", "removed":
		tick := Tick{Since: epoch, Cluster: "network cluster n1", Node: "edge-a-net-n1"}
		switch f[0] {
		case "leave":
			w.left[f[1]] = w.now
		case "dissolve":
			w.dissolved = w.now
		case "reform":
			w.dissolved = time.Time{}
		case "removed":
			tick.Removed, tick.Why = f[1], strings.Join(f[2:], " ")
		}
		tick.Devices, tick.Left, tick.Dissolved = w.devices, w.left, w.dissolved
		return w.stepAll(tick), nil
	case "retry":
		return w.stepAll(Retry{}), nil
	}
	name := arg(1)
	if name == "" {
		return nil, fmt.Errorf("no pod")
	}
	var ev Event
	switch f[0] {
	case "create", "recover":
		spec, ok := w.specs[name]
		if !ok {
			return nil, fmt.Errorf("no pod %s", name)
		}
		pod := spec.DeepCopy()
		dev := o["device"]
		var ep uint64
		if s, ok := o["epoch"]; ok {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, err
			}
			ep = n
		}
		if f[0] == "recover" {
			ev = Recover{Pod: pod, Device: dev, Epoch: ep, Workload: workload(pod, "v1", "s1")}
			break
		}
		c := Create{Pod: pod, Device: dev, Epoch: ep}
		if _, ok := o["refused"]; ok {
			c.Tenancy = "namespace default belongs to account b"
		}
		_, c.TenancyUnknown = o["tenancy-unknown"]
		ev = c
	case "update":
		pod := w.current(name).DeepCopy()
		pod.Labels = map[string]string{"updated": "yes"}
		ev = Update{Pod: pod}
	case "delete":
		pod := w.current(name).DeepCopy()
		if _, ok := o["graceful"]; ok {
			ts := metav1.NewTime(w.now)
			pod.DeletionTimestamp = &ts
		}
		ev = Delete{Pod: pod}
	case "unreachable":
		ev = Unreachable{}
	case "evict-failed":
		ev = EvictFailed{}
	case "placed":
		_, chosen := o["chosen"]
		ev = Placed{Device: f[2], Workload: workload(w.current(name), "v1", "s1"), Chosen: chosen}
	case "unplaceable":
		ev = Unplaceable{Reason: f[2], Message: strings.Join(f[3:], " ")}
	case "rejected":
		ev = Rejected{Reason: f[2], Message: strings.Join(f[3:], " ")}
	case "report":
		ev = w.report(name, o)
	case "due":
		ev = CreatingDue{Device: f[2]}
	case "refresh":
		p := w.pods[name]
		ev = Refresh{Device: p.Device, Base: p.Sent, Workload: workload(w.current(name), o["volumes"], o["spec"])}
	default:
		return nil, fmt.Errorf("unknown command")
	}
	return w.step(name, ev, false), nil
}

// current is the pod as the node knows it, else as declared.
func (w *world) current(name string) *corev1.Pod {
	if p, ok := w.pods[name]; ok {
		return p.Pod
	}
	return w.specs[name]
}

func (w *world) stepAll(ev Event) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(w.pods)) {
		out = append(out, w.step(name, ev, true)...)
	}
	return out
}

func (w *world) step(name string, ev Event, prefix bool) []string {
	before := w.pods[name]
	p, actions := Step(w.cfg, before, ev, w.now)
	w.pods[name] = p // Gone pods stay, to be stepped as a late event would
	var out []string
	for _, a := range actions {
		s := formatAction(a)
		if s == "" {
			continue
		}
		if prefix {
			s = name + ": " + s
		}
		out = append(out, s)
	}
	return out
}

func newPod(name string, o map[string]string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{}},
	}
	containers := []string{"app"}
	if c, ok := o["containers"]; ok {
		containers = strings.Split(c, ",")
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "registry.example/" + c + ":1"})
	}
	if g, ok := o["grace"]; ok {
		pod.Annotations[efv1.AnnotationDeviceLossGrace] = g
	}
	if _, ok := o["fence"]; ok {
		pod.Annotations[efv1.AnnotationFenceOnPartition] = "true"
	}
	if _, ok := o["hostnetwork"]; ok {
		pod.Spec.HostNetwork = true
	}
	if _, ok := o["volumes"]; ok {
		pod.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}
	}
	if a, ok := o["annotated"]; ok {
		// Annotations someone other than the provider wrote.
		pod.Annotations[efv1.AnnotationDevice], pod.Annotations[efv1.AnnotationFencingEpoch] = a, "9"
	}
	if s, ok := o["recorded"]; ok {
		// A placement recorded by a provider before its restart.
		dev, e, _ := strings.Cut(s, "/")
		n, _ := strconv.ParseUint(e, 10, 64)
		MarkPlaced(pod, dev, n, epoch)
		pod.Status.HostIP = "10.0.0.1"
	}
	return pod
}

// workload is a stand-in translation of pod: the hashes say what changed.
func workload(pod *corev1.Pod, volumes, spec string) *hubv1.Workload {
	fence, _ := translate.FenceOnPartition(pod)
	return &hubv1.Workload{Uid: string(pod.UID), Name: pod.Name, Namespace: pod.Namespace, VolumesHash: volumes, SpecHash: spec, FenceOnPartition: fence}
}

func (w *world) report(name string, o map[string]string) Event {
	pod := w.current(name)
	ws := &hubv1.WorkloadStatus{Uid: string(pod.UID), PodIp: o["ip"]}
	if s, ok := o["seq"]; ok {
		ws.Seq, _ = strconv.ParseUint(s, 10, 64)
	}
	for _, c := range pod.Spec.Containers {
		cs := &hubv1.ContainerStatus{Name: c.Name, Image: c.Image}
		switch {
		case has(o, "creating"):
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{Reason: reasons.ContainerCreating}}}
		case has(o, "running"):
			ws.Phase = "Running"
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{}}}
		case has(o, "exited"):
			code, _ := strconv.Atoi(o["exited"])
			ws.Phase = "Succeeded"
			if code != 0 {
				ws.Phase = "Failed"
			}
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{ExitCode: int32(code), Reason: "Completed"}}}
		case has(o, "pull"):
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{Reason: "ErrImagePull", Message: "no matching platform"}}}
			cs.ImagePlatforms = strings.Split(o["pull"], ",")
		}
		ws.Containers = append(ws.Containers, cs)
	}
	r := Report{Status: ws}
	from := w.pods[name].Device
	if s, ok := o["from"]; ok {
		from = s
	}
	if d, ok := w.devices[from]; ok && d.Online {
		r.Device = &d
	}
	return r
}

func has(o map[string]string, k string) bool { _, ok := o[k]; return ok }

func formatState(p Pod) string {
	s := p.Phase.String()
	if p.Device != "" {
		s += " device=" + p.Device
	}
	if p.Epoch != 0 {
		s += fmt.Sprintf(" epoch=%d", p.Epoch)
	}
	if p.Seq != 0 {
		s += fmt.Sprintf(" seq=%d", p.Seq)
	}
	if p.Waiting != "" {
		s += " waiting=" + p.Waiting
	}
	if p.Held != nil {
		s += " held"
	}
	if p.Platform != "" {
		s += " platform=" + p.Platform
	}
	if p.Evicted {
		s += " evicted"
	}
	if p.Placed() {
		s += " holds-room"
	}
	s += " status=" + formatStatus(p.Pod.Status)
	return s
}

func formatStatus(st corev1.PodStatus) string {
	s := string(st.Phase)
	if s == "" {
		s = "-"
	}
	if st.Reason != "" {
		s += "/" + st.Reason
	}
	var cs []string
	for _, c := range st.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			cs = append(cs, c.Name+":"+c.State.Waiting.Reason)
		case c.State.Running != nil:
			cs = append(cs, c.Name+":running")
		case c.State.Terminated != nil:
			cs = append(cs, fmt.Sprintf("%s:exited(%d,%s)", c.Name, c.State.Terminated.ExitCode, c.State.Terminated.Reason))
		}
	}
	if len(cs) > 0 {
		s += " " + strings.Join(cs, ",")
	}
	if st.PodIP != "" {
		s += " ip=" + st.PodIP
	}
	for _, c := range st.Conditions {
		if c.Type == efv1.ConditionPlaced {
			s += " placed=(" + c.Message + ")"
		}
	}
	return s
}

func formatAction(a Action) string {
	switch a := a.(type) {
	case Assign:
		s := fmt.Sprintf("assign %s epoch=%d", a.Device, a.Workload.GetFencingEpoch())
		if a.Workload.GetDeviceLossGraceMillis() != 0 {
			s += fmt.Sprintf(" fence=%dms", a.Workload.GetDeviceLossGraceMillis())
		}
		if a.Workload.GetVolumesHash() != "" {
			s += fmt.Sprintf(" volumes=%s spec=%s", a.Workload.GetVolumesHash(), a.Workload.GetSpecHash())
		}
		return s
	case Unassign:
		if a.Confirm {
			return "unassign confirm"
		}
		return "unassign"
	case Place:
		s := "place"
		if a.Device != "" {
			s += " device=" + a.Device
		}
		if a.MayReject {
			s += " may-reject"
		}
		return s
	case WriteStatus:
		s := "status " + formatStatus(a.Pod.Status)
		if d := a.Pod.Annotations[efv1.AnnotationDevice]; d != "" {
			s += " annotated=" + d + "/" + a.Pod.Annotations[efv1.AnnotationFencingEpoch]
		}
		return s
	case Record:
		return fmt.Sprintf("event %s %s: %s", a.Type, a.Reason, a.Message)
	case Log:
		return ""
	case StartCreating:
		return fmt.Sprintf("timer creating %s after %s", a.Device, a.After)
	case LearnPlatforms:
		return fmt.Sprintf("learn %s %s", a.Image, strings.Join(a.Platforms, ","))
	case Nudge:
		return "nudge"
	case RemoveObject:
		return "remove-object"
	case Evict:
		return "evict"
	case Forget:
		return "forget"
	}
	return fmt.Sprintf("unknown action %T", a)
}

func TestRecordedPlacement(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}}
	if _, _, ok := RecordedPlacement(pod); ok {
		t.Error("a pod never placed: ok")
	}
	MarkPlaced(pod, "d1", 3, epoch)
	dev, e, ok := RecordedPlacement(pod)
	if !ok || dev != "d1" || e != 3 {
		t.Errorf("RecordedPlacement = %q, %d, %v; want d1, 3, true", dev, e, ok)
	}
	pod.Annotations[efv1.AnnotationDevice] = "d2" // someone edited the pod
	if _, _, ok := RecordedPlacement(pod); ok {
		t.Error("annotations the condition does not confirm: ok")
	}
}

func TestReportedPodIP(t *testing.T) {
	own := []string{"10.1.2.3", "fd00::3"}
	tests := []struct {
		name         string
		reported     string
		addresses    []string
		want, reject string
	}{
		{name: "none reported", want: "10.1.2.3", addresses: own},
		{name: "its first address", reported: "10.1.2.3", addresses: own, want: "10.1.2.3"},
		{name: "its other address", reported: "fd00::3", addresses: own, want: "fd00::3"},
		{name: "its address, mapped", reported: "::ffff:10.1.2.3", addresses: own, want: "10.1.2.3"},
		{name: "another machine's address", reported: "10.96.0.1", addresses: own, want: "10.1.2.3", reject: "10.96.0.1"},
		{name: "loopback", reported: "127.0.0.1", addresses: own, want: "10.1.2.3", reject: "127.0.0.1"},
		{name: "not an IP", reported: "kubernetes.default", addresses: own, want: "10.1.2.3", reject: "kubernetes.default"},
		{name: "a device with no address", reported: "10.1.2.3", want: "", reject: "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, rejected := ReportedPodIP(tt.reported, tt.addresses)
			if ip != tt.want || rejected != tt.reject {
				t.Errorf("ReportedPodIP(%q, %v) = %q, %q; want %q, %q", tt.reported, tt.addresses, ip, rejected, tt.want, tt.reject)
			}
		})
	}
}

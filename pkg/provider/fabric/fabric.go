// Package fabric is the provider's registry of devices and of what each device
// should run. It knows which devices are connected, places workloads on them,
// keeps each device's desired state with a generation number, and queues what a
// connected device must hear next. It knows nothing of Kubernetes or gRPC: the
// hub feeds it agent sessions and reports; the node manager feeds it workloads
// and listens for changes through Listener.
package fabric

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/placement"
)

// Listener hears what changes in the fabric. Calls are made without the
// fabric's lock held, one at a time per fabric; they must not block for long.
type Listener interface {
	// DevicesChanged is called when a device of account connects, disconnects or
	// changes its capacity.
	DevicesChanged(account string)
	// WorkloadStatus is called with the newest status a device reported.
	WorkloadStatus(uid string, st *hubv1.WorkloadStatus)
	// WorkloadEvent is called for each event a device raised about a workload.
	WorkloadEvent(uid string, ev *hubv1.Event)
}

// Device is a snapshot of one device.
type Device struct {
	identity.Device
	Online       bool
	OS, Arch     string
	Hostname     string
	AgentVersion string
	Capacity     placement.Resources
	Allocated    placement.Resources
	Labels       map[string]string
	Addresses    []string
	Runtimes     []string
	LastSeen     time.Time
	Workloads    int
	// Scopes is the newest scope report of the device (nil if it sent none).
	// It is shared: do not modify it.
	Scopes *hubv1.Scopes
}

// IP is the address pods on the device are served on.
func (d Device) IP() string {
	if len(d.Addresses) == 0 {
		return ""
	}
	return d.Addresses[0]
}

// reservation is a device's room held for a workload PlaceWith chose it for.
type reservation struct {
	device string // device key
	res    placement.Resources
}

type device struct {
	Device
	sess       *Session
	generation uint64
	workloads  map[string]*hubv1.Workload // by uid
	// early holds the newest status of each workload the device reported
	// before the fabric was ready, when it could not tell which workloads are
	// the device's; MarkReady passes on those it owns.
	early map[string]*hubv1.WorkloadStatus
	// usage is the newest resource usage the device reported, by workload
	// uid, and prevUsage the one before (rates come from the two).
	usage, prevUsage map[string]*hubv1.WorkloadUsage
}

// Fabric is safe for concurrent use.
type Fabric struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	devices map[string]*device // by device key (account/id)
	owner   map[string]string  // workload uid → device key
	// reserved holds what PlaceWith chose until Assign (or Remove) makes it
	// part of the device's desired state: placements that run at the same
	// time, for pods of different nodes, see each other's choices.
	reserved map[string]reservation // by workload uid
	streams  map[string]*pendingStream
	nextID   uint64
	listener Listener
	ready    chan struct{}

	notifyMu sync.Mutex // serialises listener calls
}

// New returns an empty fabric. It is not ready until MarkReady is called:
// devices may connect, but they are not sent their desired state before then,
// so a restarted provider never tells a device to drop work it has not yet
// rebuilt from Kubernetes.
func New(log *slog.Logger) *Fabric {
	return &Fabric{
		log:      log,
		now:      time.Now,
		devices:  map[string]*device{},
		owner:    map[string]string{},
		reserved: map[string]reservation{},
		streams:  map[string]*pendingStream{},
		ready:    make(chan struct{}),
	}
}

// SetListener sets who hears about changes. Call it before devices connect.
func (f *Fabric) SetListener(l Listener) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listener = l
}

// MarkReady says the fabric holds every workload it should; sessions waiting
// for their desired state get it now.
func (f *Fabric) MarkReady() {
	f.mu.Lock()
	select {
	case <-f.ready:
		f.mu.Unlock()
		return
	default:
	}
	close(f.ready)
	early := map[identity.Device][]*hubv1.WorkloadStatus{}
	for _, d := range f.devices {
		if d.sess != nil {
			d.sess.queueFull(d.generation, d.workloads)
		}
		for _, st := range d.early {
			early[d.Device.Device] = append(early[d.Device.Device], st)
		}
		d.early = nil
	}
	f.mu.Unlock()
	// What changed on the devices while the provider was away (an agent
	// restarted, a container restarted) is in these, and in nothing the
	// devices send later unless something changes again.
	for id, sts := range early {
		f.Report(id, &hubv1.StatusReport{Statuses: sts})
	}
}

// Ready is closed once MarkReady was called.
func (f *Fabric) Ready() <-chan struct{} { return f.ready }

func key(d identity.Device) string { return d.Account + "/" + d.ID }

func (f *Fabric) isReady() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

// Connect registers a device's new control session, replacing an older one.
// The returned session yields what must be sent to the agent.
func (f *Fabric) Connect(id identity.Device, hello *hubv1.Hello) *Session {
	f.mu.Lock()
	d := f.devices[key(id)]
	if d == nil {
		d = &device{workloads: map[string]*hubv1.Workload{}}
		f.devices[key(id)] = d
	}
	if d.sess != nil {
		d.sess.close()
	}
	d.Device.Device = id
	d.Online = true
	d.OS, d.Arch, d.Hostname, d.AgentVersion = hello.GetOs(), hello.GetArch(), hello.GetHostname(), hello.GetAgentVersion()
	d.Capacity = resources(hello.GetCapacity())
	d.Labels = hello.GetLabels()
	d.Addresses = hello.GetAddresses()
	d.Runtimes = hello.GetRuntimes()
	d.LastSeen = f.now()
	if sc := hello.GetScopes(); sc != nil {
		// A restarted agent counts its reports from 1 again: the hello's
		// report replaces whatever came before it.
		d.Scopes = proto.CloneOf(sc)
	}
	s := newSession(id)
	d.sess = s
	if f.isReady() {
		s.queueFull(d.generation, d.workloads)
	}
	f.mu.Unlock()

	f.log.Info("device connected", "device", id.ID, "account", id.Account, "os", d.OS, "arch", d.Arch)
	f.notify(func(l Listener) { l.DevicesChanged(id.Account) })
	f.Report(id, &hubv1.StatusReport{Statuses: hello.GetStatuses()})
	return s
}

// Disconnect marks the device offline if s is still its current session.
func (f *Fabric) Disconnect(s *Session) {
	f.mu.Lock()
	d := f.devices[key(s.device)]
	if d == nil || d.sess != s {
		f.mu.Unlock()
		return
	}
	s.close()
	d.sess = nil
	d.Online = false
	d.LastSeen = f.now()
	for id, p := range f.streams {
		if p.device == key(s.device) {
			p.fail(errors.New("device disconnected"))
			delete(f.streams, id)
		}
	}
	f.mu.Unlock()
	f.log.Info("device disconnected", "device", s.device.ID, "account", s.device.Account)
	f.notify(func(l Listener) { l.DevicesChanged(s.device.Account) })
}

// Drop removes a device from the fabric: it no longer counts in any cluster,
// capacity or placement, its desired state is forgotten, and its session, if
// it has one, ends (with ErrDecommissioned when decommissioned is true, so
// the hub can tell the agent why). It returns the UIDs of the workloads the
// device held, whose pods must be placed again, and whether the device was
// known. A dropped device that connects again is a new device.
func (f *Fabric) Drop(id identity.Device, decommissioned bool) (uids []string, known bool) {
	f.mu.Lock()
	k := key(id)
	d := f.devices[k]
	if d == nil {
		f.mu.Unlock()
		return nil, false
	}
	if d.sess != nil {
		if decommissioned {
			d.sess.closeWith(ErrDecommissioned)
		} else {
			d.sess.close()
		}
	}
	for uid := range d.workloads {
		uids = append(uids, uid)
	}
	for uid, owner := range f.owner {
		if owner == k {
			delete(f.owner, uid)
		}
	}
	for uid, r := range f.reserved {
		if r.device == k {
			delete(f.reserved, uid)
		}
	}
	for sid, p := range f.streams {
		if p.device == k {
			p.fail(errors.New("device removed from the fleet"))
			delete(f.streams, sid)
		}
	}
	delete(f.devices, k)
	f.mu.Unlock()
	sort.Strings(uids)
	f.notify(func(l Listener) { l.DevicesChanged(id.Account) })
	return uids, true
}

// Heartbeat records that the device is alive.
func (f *Fabric) Heartbeat(id identity.Device) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.devices[key(id)]; d != nil {
		d.LastSeen = f.now()
	}
}

// ReportScopes records a device's newer scope report (by seq; older ones are
// dropped) and tells the listener when it changes what clusters could be
// formed from it (claims, peers, location), not on every coordinate update.
func (f *Fabric) ReportScopes(id identity.Device, sc *hubv1.Scopes) {
	f.mu.Lock()
	d := f.devices[key(id)]
	if d == nil || d.sess == nil || (d.Scopes != nil && sc.GetSeq() <= d.Scopes.GetSeq()) {
		f.mu.Unlock()
		return
	}
	changed := !sameShape(d.Scopes, sc)
	d.Scopes = proto.CloneOf(sc)
	f.mu.Unlock()
	if changed {
		f.notify(func(l Listener) { l.DevicesChanged(id.Account) })
	}
}

// sameShape reports whether two scope reports form the same clusters as far
// as networks and locations go: the same claim, the same verified peers, the
// same location.
func sameShape(a, b *hubv1.Scopes) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.GetNetworkId() != b.GetNetworkId() || a.GetNetworkExplicit() != b.GetNetworkExplicit() || a.GetDiscovering() != b.GetDiscovering() ||
		a.GetHasPoint() != b.GetHasPoint() || a.GetLatitude() != b.GetLatitude() || a.GetLongitude() != b.GetLongitude() ||
		a.GetRegion() != b.GetRegion() || len(a.GetPeers()) != len(b.GetPeers()) {
		return false
	}
	peers := map[string]bool{}
	for _, p := range a.GetPeers() {
		peers[p.GetDeviceId()] = true
	}
	for _, p := range b.GetPeers() {
		if !peers[p.GetDeviceId()] {
			return false
		}
	}
	return true
}

// Report passes a device's status report to the listener. Statuses of
// workloads the device does not own (any more) are dropped; before the fabric
// is ready, statuses are also kept for MarkReady, which passes on those of
// workloads the device turned out to own.
func (f *Fabric) Report(id identity.Device, r *hubv1.StatusReport) {
	f.mu.Lock()
	k := key(id)
	if d := f.devices[k]; d != nil && !f.isReady() {
		if d.early == nil {
			d.early = map[string]*hubv1.WorkloadStatus{}
		}
		for _, st := range r.GetStatuses() {
			d.early[st.GetUid()] = st
		}
	}
	var sts []*hubv1.WorkloadStatus
	for _, st := range r.GetStatuses() {
		if f.owner[st.GetUid()] == k {
			sts = append(sts, st)
		}
	}
	var evs []*hubv1.Event
	for _, ev := range r.GetEvents() {
		owner, ok := f.owner[ev.GetWorkloadUid()]
		// A device that was cut off says it stopped its copy of a pod that
		// fences on partition once it is back, when the pod may run
		// elsewhere already: that event still belongs to the pod.
		fencedHere := ok && ev.GetReason() == reasons.Fenced && strings.HasPrefix(owner, id.Account+"/")
		if owner == k || fencedHere {
			evs = append(evs, ev)
		}
	}
	f.mu.Unlock()
	if len(sts) == 0 && len(evs) == 0 {
		return
	}
	f.notify(func(l Listener) {
		for _, st := range sts {
			l.WorkloadStatus(st.GetUid(), st)
		}
		for _, ev := range evs {
			l.WorkloadEvent(ev.GetWorkloadUid(), ev)
		}
	})
}

func (f *Fabric) notify(fn func(Listener)) {
	f.mu.Lock()
	l := f.listener
	f.mu.Unlock()
	if l == nil {
		return
	}
	f.notifyMu.Lock()
	defer f.notifyMu.Unlock()
	fn(l)
}

// Devices returns a snapshot of account's devices, sorted by ID. A
// device's Allocated includes the room held for placements not yet assigned.
func (f *Fabric) Devices(account string) []Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devicesLocked(account)
}

func (f *Fabric) devicesLocked(account string) []Device {
	var out []Device
	var held map[string]placement.Resources
	for _, r := range f.reserved {
		if held == nil {
			held = map[string]placement.Resources{}
		}
		h := held[r.device]
		h.CPUMillis += r.res.CPUMillis
		h.MemoryBytes += r.res.MemoryBytes
		h.Pods++
		held[r.device] = h
	}
	for k, d := range f.devices {
		if d.Account != account {
			continue
		}
		c := d.Device
		c.Allocated = allocated(d.workloads)
		if h, ok := held[k]; ok {
			c.Allocated.CPUMillis += h.CPUMillis
			c.Allocated.MemoryBytes += h.MemoryBytes
			c.Allocated.Pods += h.Pods
		}
		c.Workloads = len(d.workloads)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Accounts returns the accounts that have devices, sorted.
func (f *Fabric) Accounts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, d := range f.devices {
		if !seen[d.Account] {
			seen[d.Account] = true
			out = append(out, d.Account)
		}
	}
	sort.Strings(out)
	return out
}

// Device returns one device by account and ID.
func (f *Fabric) Device(account, id string) (Device, bool) {
	for _, d := range f.Devices(account) {
		if d.ID == id {
			return d, true
		}
	}
	return Device{}, false
}

// Place chooses a device of account for w, or returns "" and why none fits.
func (f *Fabric) Place(account string, w *hubv1.Workload) (string, string) {
	return f.PlaceWith(account, w, PlaceOptions{})
}

// PlaceOptions narrow and steer PlaceWith.
type PlaceOptions struct {
	// Members are the devices of the cluster the pod is placed in; nil means
	// every device of the account.
	Members []string
	// Selector must match the device's labels; nil matches every device.
	Selector labels.Selector
	// Platforms are the image's os/arch platforms; nil means any.
	Platforms []string
	// SameOwner counts the pods of the pod's owner on a device, so that
	// replicas spread; nil counts none.
	SameOwner func(device string) int
}

// PlaceWith chooses a device of account for w among opts.Members, or returns
// "" and why none fits. The chosen device's room for w is held until w is
// assigned (Assign) or given up (Remove), so that placements running at the
// same time never promise one device's room twice.
func (f *Fabric) PlaceWith(account string, w *hubv1.Workload, opts PlaceOptions) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.reserved, w.GetUid()) // a new try replaces an older hold
	cands := candidates(f.devicesLocked(account), opts)
	req := placement.Request{Resources: requests(w), Runtime: w.GetRuntime(), Selector: opts.Selector, Platforms: opts.Platforms}
	id, why := placement.Choose(cands, req)
	if id != "" {
		f.reserved[w.GetUid()] = reservation{device: key(identity.Device{ID: id, Account: account}), res: req.Resources}
	}
	return id, why
}

// Admissible says whether w could run on a device of opts.Members, as
// placement.Admissible does, with the devices as they are now.
func (f *Fabric) Admissible(account string, w *hubv1.Workload, opts PlaceOptions) placement.Admission {
	f.mu.Lock()
	cands := candidates(f.devicesLocked(account), opts)
	f.mu.Unlock()
	return placement.Admissible(cands, placement.Request{Resources: requests(w), Runtime: w.GetRuntime(), Selector: opts.Selector, Platforms: opts.Platforms})
}

func candidates(devs []Device, opts PlaceOptions) []placement.Candidate {
	var cands []placement.Candidate
	for _, d := range devs {
		if opts.Members != nil && !slices.Contains(opts.Members, d.ID) {
			continue
		}
		c := placement.Candidate{
			ID: d.ID, Online: d.Online, Capacity: d.Capacity, Allocated: d.Allocated, Runtimes: d.Runtimes,
			OS: d.OS, Arch: d.Arch, Labels: d.Labels,
		}
		if opts.SameOwner != nil {
			c.SameOwner = opts.SameOwner(d.ID)
		}
		cands = append(cands, c)
	}
	return cands
}

// Assign makes w part of the desired state of device id of account, moving it
// from any other device, and queues the change for the device.
func (f *Fabric) Assign(account, id string, w *hubv1.Workload) {
	f.mu.Lock()
	k := key(identity.Device{ID: id, Account: account})
	delete(f.reserved, w.GetUid())
	if old, ok := f.owner[w.GetUid()]; ok && old != k {
		f.removeLocked(w.GetUid())
		delete(f.owner, w.GetUid())
	}
	d := f.devices[k]
	if d == nil {
		// A device known from a pod annotation but not connected since the
		// provider started: remember the work for when it comes back.
		d = &device{workloads: map[string]*hubv1.Workload{}}
		d.Device.Device = identity.Device{ID: id, Account: account}
		f.devices[k] = d
	}
	if cur, ok := d.workloads[w.GetUid()]; ok && f.owner[w.GetUid()] == k && cur.GetSpecHash() != "" && cur.GetSpecHash() == w.GetSpecHash() && cur.GetVolumesHash() == w.GetVolumesHash() {
		f.mu.Unlock()
		return // nothing the device runs would change
	}
	f.owner[w.GetUid()] = k
	d.workloads[w.GetUid()] = w
	d.generation++
	if d.sess != nil && f.isReady() {
		d.sess.queueDelta(&hubv1.WorkloadDelta{Generation: d.generation, Upsert: w})
	}
	f.mu.Unlock()
	f.notify(func(l Listener) { l.DevicesChanged(account) })
}

// Remove drops workload uid from its device's desired state, and the room
// PlaceWith held for it, if any. It reports the
// device that held it and whether that device is connected, so the caller knows
// whether to wait for the device to confirm the stop. Until Forget, the device's
// reports about uid still reach the listener.
func (f *Fabric) Remove(uid string) (deviceID string, online bool) {
	f.mu.Lock()
	delete(f.reserved, uid)
	k, ok := f.owner[uid]
	var account string
	if ok {
		d := f.devices[k]
		deviceID, online, account = d.ID, d.sess != nil, d.Account
		f.removeLocked(uid)
	}
	f.mu.Unlock()
	if ok {
		f.notify(func(l Listener) { l.DevicesChanged(account) })
	}
	return deviceID, online
}

// Forget drops what the fabric remembers of a removed workload.
func (f *Fabric) Forget(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.owner[uid]
	if !ok {
		return
	}
	if d := f.devices[k]; d != nil {
		if _, running := d.workloads[uid]; running {
			return // assigned again since
		}
	}
	delete(f.owner, uid)
}

func (f *Fabric) removeLocked(uid string) {
	k := f.owner[uid]
	d := f.devices[k]
	if d == nil {
		return
	}
	if _, ok := d.workloads[uid]; !ok {
		return
	}
	delete(d.workloads, uid)
	d.generation++
	if d.sess != nil && f.isReady() {
		d.sess.queueDelta(&hubv1.WorkloadDelta{Generation: d.generation, DeleteUid: uid})
	}
}

// OpenStream asks the device running workload uid to open a data stream for
// req and waits until it does, or ctx ends. The returned stream carries the
// data; closing it tells the device to stop.
func (f *Fabric) OpenStream(ctx context.Context, uid string, req *hubv1.StreamRequest) (*Stream, error) {
	f.mu.Lock()
	k, ok := f.owner[uid]
	if !ok {
		f.mu.Unlock()
		return nil, fmt.Errorf("workload %s is not placed on any device", uid)
	}
	d := f.devices[k]
	if d.sess == nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("device %s is not connected", d.ID)
	}
	f.nextID++
	req.Id = fmt.Sprintf("s%d-%d", f.now().UnixNano(), f.nextID)
	req.WorkloadUid = uid
	p := &pendingStream{device: k, done: make(chan struct{})}
	f.streams[req.Id] = p
	d.sess.queueStream(req)
	f.mu.Unlock()

	select {
	case <-p.done:
		if p.err != nil {
			return nil, p.err
		}
		return p.stream, nil
	case <-ctx.Done():
		f.mu.Lock()
		delete(f.streams, req.Id)
		f.mu.Unlock()
		return nil, ctx.Err()
	}
}

// AcceptStream hands a stream the device opened to the waiting OpenStream.
// The stream must come from the device the request was sent to.
func (f *Fabric) AcceptStream(id identity.Device, streamID string, s *Stream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.streams[streamID]
	if !ok {
		return fmt.Errorf("no stream %q is awaited", streamID)
	}
	if p.device != key(id) {
		return fmt.Errorf("stream %q was not asked of device %s", streamID, id.ID)
	}
	delete(f.streams, streamID)
	p.stream = s
	close(p.done)
	return nil
}

type pendingStream struct {
	device string
	done   chan struct{}
	stream *Stream
	err    error
}

func (p *pendingStream) fail(err error) {
	p.err = err
	close(p.done)
}

// Resources converts wire resources; nil is zero.
func Resources(r *hubv1.Resources) placement.Resources { return resources(r) }

func resources(r *hubv1.Resources) placement.Resources {
	return placement.Resources{CPUMillis: r.GetCpuMillis(), MemoryBytes: r.GetMemoryBytes(), Pods: r.GetPods()}
}

// Requests is what a workload holds on its device as Devices counts it in
// Allocated: its requests (see requests) and one pod slot.
func Requests(w *hubv1.Workload) placement.Resources {
	r := requests(w)
	r.Pods = 1
	return r
}

// requests is what a workload reserves on its device, as Kubernetes
// computes a pod's effective requests: the larger of what the app containers
// and all sidecars request together, and what each init container requests
// alongside the sidecars started before it.
func requests(w *hubv1.Workload) placement.Resources {
	var app, sidecars, initPeak placement.Resources
	for _, c := range w.GetInitContainers() {
		if c.GetRestartPolicy() == "Always" {
			sidecars.CPUMillis += c.GetCpuRequestMillis()
			sidecars.MemoryBytes += c.GetMemoryRequestBytes()
			continue
		}
		initPeak.CPUMillis = max(initPeak.CPUMillis, sidecars.CPUMillis+c.GetCpuRequestMillis())
		initPeak.MemoryBytes = max(initPeak.MemoryBytes, sidecars.MemoryBytes+c.GetMemoryRequestBytes())
	}
	for _, c := range w.GetContainers() {
		app.CPUMillis += c.GetCpuRequestMillis()
		app.MemoryBytes += c.GetMemoryRequestBytes()
	}
	return placement.Resources{
		CPUMillis:   max(app.CPUMillis+sidecars.CPUMillis, initPeak.CPUMillis),
		MemoryBytes: max(app.MemoryBytes+sidecars.MemoryBytes, initPeak.MemoryBytes),
	}
}

func allocated(ws map[string]*hubv1.Workload) placement.Resources {
	var total placement.Resources
	for _, w := range ws {
		r := requests(w)
		total.CPUMillis += r.CPUMillis
		total.MemoryBytes += r.MemoryBytes
		total.Pods++
	}
	return total
}

// Package supervisor is the agent's reconcile core: it keeps the workloads the
// hub wants running on this device, pulls their images, runs their containers,
// restarts them per the pod's restart policy with the kubelet's exponential
// back-off, and keeps the newest status of each workload and the events it
// raised for the hub client to send. It works the same with or without a hub
// connection, which is what keeps a device autonomous when the cloud is away.
package supervisor

import (
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgefabric/edgefabric/pkg/agent/clock"
	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// Images pulls images; *image.Store implements it.
type Images interface {
	Pull(ctx context.Context, ref string, policy image.PullPolicy) (*image.Artifact, error)
	Lookup(ref string) (*image.Artifact, error)
}

// Config configures a Supervisor.
type Config struct {
	// LogDir holds container logs, the files of every container in the one
	// directory (see LogFiles). Required.
	LogDir string
	// VolumeDir holds the pods' volumes, one directory per workload; empty
	// means "volumes" next to LogDir.
	VolumeDir string
	// SharedMemoryDir is a memory-backed directory (such as /dev/shm) for
	// volumes that must not touch the disk (emptyDir medium Memory, secrets)
	// where the agent cannot mount a tmpfs of its own. Empty means none:
	// such volumes then need root on Linux.
	SharedMemoryDir string
	// PodIP is reported as the pod IP of every workload.
	PodIP string
	// BackoffBase is the first restart back-off; zero means 10 s (the kubelet's).
	BackoffBase time.Duration
	// BackoffMax caps the back-off; zero means 5 minutes (the kubelet's).
	BackoffMax time.Duration
	// LogMaxBytes is the size at which a container's log file is rotated; zero means 10 MiB.
	LogMaxBytes int64
	// LogMaxFiles is how many rotated files are kept per container; zero means 5.
	LogMaxFiles int
	// LastContact returns when the device last heard from the hub (zero:
	// not since the agent started); the workloads that fence on partition
	// are stopped when it is too long ago (see FenceDue). Nil means they
	// never are: they run as any other.
	LastContact func() time.Time
	// Fenced, if not nil, is called after workloads were fenced. Only a
	// desired state from the hub starts them again.
	Fenced func()
	// Clock times the fencing (LastContact is on it) and the back-off of
	// restarts and pulls; nil means the system clock.
	Clock clock.Clock
}

func (c *Config) defaults() {
	if c.VolumeDir == "" {
		c.VolumeDir = filepath.Join(filepath.Dir(filepath.Clean(c.LogDir)), "volumes")
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = 10 << 20
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = 5
	}
}

const maxEvents = 512

// Supervisor runs workloads. Create it with New, then call Run.
type Supervisor struct {
	cfg      Config
	clock    clock.Clock
	images   Images
	runtimes Runtimes
	store    *store.Store
	pending  *store.WriteBehind // desired state on its way to the store
	resumed  chan struct{}      // closed once Run has resumed the stored workloads
	log      *slog.Logger
	seq      atomic.Uint64 // the newest status's seq (see workload.publish)

	mu         sync.Mutex
	ctx        context.Context // Run's; nil before Run
	generation uint64
	workloads  map[string]*workload
	fenced     map[string]string                // why, by uid: fenced until a desired state from the hub
	dirty      map[string]*hubv1.WorkloadStatus // newest unsent status by uid
	events     []*hubv1.Event
	wake       chan struct{}
	wg         sync.WaitGroup
}

// New returns a supervisor that runs containers with the given runtimes
// (by name: RuntimeWASM, RuntimeProcess); workloads start once Run is called.
func New(cfg Config, images Images, runtimes Runtimes, st *store.Store, log *slog.Logger) *Supervisor {
	cfg.defaults()
	s := &Supervisor{
		cfg: cfg, clock: clock.Or(cfg.Clock), images: images, runtimes: runtimes, store: st, log: log,
		pending:   store.NewWriteBehind(st, log),
		resumed:   make(chan struct{}),
		workloads: map[string]*workload{},
		fenced:    map[string]string{},
		dirty:     map[string]*hubv1.WorkloadStatus{},
		wake:      make(chan struct{}, 1),
	}
	s.seq.Store(uint64(time.Now().UnixNano()))
	return s
}

// Run starts the workloads of the stored desired state, then serves until ctx
// ends; it stops every workload before it returns.
func (s *Supervisor) Run(ctx context.Context) error {
	gen, ws, err := s.store.Desired()
	if err != nil {
		// The hub's full state replaces it when the agent connects.
		s.log.Error("stored desired state unreadable; waiting for the hub's", "err", err)
		gen, ws = 0, nil
	}
	fenced, err := s.store.Fenced()
	if err != nil {
		s.log.Error("stored fenced workloads unreadable", "err", err)
	}
	s.mu.Lock()
	s.ctx = ctx
	for uid, why := range fenced {
		s.fenced[uid] = why
	}
	s.mu.Unlock()
	if len(ws) > 0 {
		s.log.Info("resuming workloads from store", "count", len(ws), "generation", gen)
	}
	s.removeOrphanVolumes(ws)
	s.tidyLogs(ws)
	var persisting sync.WaitGroup
	persisting.Go(func() { _ = s.pending.Run(ctx) })
	s.reconcile(gen, ws, true)
	close(s.resumed)
	persisting.Go(func() { s.fenceLoop(ctx) })
	<-ctx.Done()
	s.wg.Wait()
	persisting.Wait()
	return nil
}

// Resumed is closed once Run has started the workloads of the stored
// desired state: from then on ImagesInUse knows every image they need.
func (s *Supervisor) Resumed() <-chan struct{} { return s.resumed }

// ImagesInUse returns what the image cache's GC must keep: the references
// of every container (init containers too) of every desired workload,
// running, waiting or fenced, and the image IDs their containers were
// started from (a tag may have moved since). Both are sorted.
func (s *Supervisor) ImagesInUse() image.InUse {
	s.mu.Lock()
	ws := make([]*workload, 0, len(s.workloads))
	for _, w := range s.workloads {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	refs, ids := map[string]bool{}, map[string]bool{}
	for _, w := range ws {
		for _, c := range append(slices.Clone(w.spec.GetInitContainers()), w.spec.GetContainers()...) {
			refs[c.GetImage()] = true
		}
		w.mu.Lock()
		for _, cs := range w.containers {
			if id := cs.GetImageId(); id != "" {
				ids[id] = true
			}
		}
		w.mu.Unlock()
	}
	var in image.InUse
	in.Refs = slices.Sorted(maps.Keys(refs))
	in.ImageIDs = slices.Sorted(maps.Keys(ids))
	return in
}

// Generation is the generation of the desired state the supervisor holds.
func (s *Supervisor) Generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generation
}

// SetDesired makes ws everything that should run: workloads whose spec hash is
// unchanged keep running untouched, changed ones restart, missing ones stop.
// The change reaches the store in the background (store.WriteBehind).
// It waits until Run has resumed the stored workloads, which it replaces.
//
// The desired state comes from the hub: the workloads fenced on partition
// that it still holds start again; those it does not are removed as any.
func (s *Supervisor) SetDesired(gen uint64, ws []*hubv1.Workload) error {
	<-s.resumed
	s.pending.Queue(store.Change{Generation: gen, Replace: true, Workloads: ws})
	s.mu.Lock()
	unfence := s.fenced
	s.fenced = map[string]string{}
	s.mu.Unlock()
	for uid := range unfence {
		if err := s.store.SetFenced(uid, ""); err != nil {
			s.log.Error("persist unfenced workload", "uid", uid, "err", err)
		}
	}
	s.reconcile(gen, ws, false)
	return nil
}

// Apply applies one change of the desired state; the change reaches the
// store in the background (store.WriteBehind).
// It waits until Run has resumed the stored workloads.
func (s *Supervisor) Apply(d *hubv1.WorkloadDelta) error {
	<-s.resumed
	if w := d.GetUpsert(); w != nil {
		s.pending.Queue(store.Change{Generation: d.GetGeneration(), Upsert: w})
		s.mu.Lock()
		s.generation = d.GetGeneration()
		s.mu.Unlock()
		s.upsert(w, false)
		return nil
	}
	s.pending.Queue(store.Change{Generation: d.GetGeneration(), Delete: d.GetDeleteUid()})
	s.mu.Lock()
	s.generation = d.GetGeneration()
	old := s.workloads[d.GetDeleteUid()]
	delete(s.workloads, d.GetDeleteUid())
	_, fenced := s.fenced[d.GetDeleteUid()]
	delete(s.fenced, d.GetDeleteUid())
	s.mu.Unlock()
	if fenced {
		if err := s.store.SetFenced(d.GetDeleteUid(), ""); err != nil {
			s.log.Error("persist unfenced workload", "uid", d.GetDeleteUid(), "err", err)
		}
	}
	if old != nil {
		old.stop(true)
	}
	return nil
}

func (s *Supervisor) reconcile(gen uint64, ws []*hubv1.Workload, resumed bool) {
	want := map[string]bool{}
	for _, w := range ws {
		want[w.GetUid()] = true
	}
	s.mu.Lock()
	s.generation = gen
	var gone []*workload
	for uid, w := range s.workloads {
		if !want[uid] {
			gone = append(gone, w)
			delete(s.workloads, uid)
		}
	}
	s.mu.Unlock()
	for _, w := range gone {
		w.stop(true)
	}
	for _, w := range ws {
		s.upsert(w, resumed)
	}
}

// upsert starts w, or restarts it if its spec changed.
func (s *Supervisor) upsert(spec *hubv1.Workload, resumed bool) {
	s.mu.Lock()
	if s.ctx == nil {
		s.mu.Unlock()
		return // Run starts it from the store
	}
	old := s.workloads[spec.GetUid()]
	if old != nil && old.fenced == "" && old.spec.GetSpecHash() == spec.GetSpecHash() && spec.GetSpecHash() != "" {
		old.fence = fenceOf(spec) // not in the spec hash
		// The running workload keeps its spec (its goroutines read it
		// without a lock; what they use is what the hash covers); only new
		// volume contents are applied, without a restart.
		volumesChanged := old.volumesHash() != spec.GetVolumesHash()
		s.mu.Unlock()
		if volumesChanged {
			old.updateVolumes(spec)
		}
		return
	}
	w := newWorkload(s, proto.Clone(spec).(*hubv1.Workload), resumed || old != nil)
	s.workloads[spec.GetUid()] = w
	ctx := s.ctx
	why := s.fenced[spec.GetUid()]
	if why == "" && w.fence.on && s.cfg.LastContact != nil {
		if last, now := s.cfg.LastContact(), s.clock.Now(); FenceDue(last, w.fence.grace, now) {
			why = fenceWhy(last, w.fence.grace, now)
			s.fenced[spec.GetUid()] = why
		}
	}
	w.fenced = why
	s.mu.Unlock()
	if old != nil {
		old.stop(false)
	}
	if why != "" {
		// Fenced: it waits, stopped, for a desired state from the hub.
		if err := s.store.SetFenced(spec.GetUid(), why); err != nil {
			s.log.Error("persist fenced workload", "pod", w.key(), "err", err)
		}
		w.idle(why)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		w.run(ctx)
	}()
}

// Statuses returns the current status of every workload.
func (s *Supervisor) Statuses() []*hubv1.WorkloadStatus {
	s.mu.Lock()
	ws := make([]*workload, 0, len(s.workloads))
	for _, w := range s.workloads {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	out := make([]*hubv1.WorkloadStatus, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetUid() < out[j].GetUid() })
	return out
}

// Updates is signalled when TakeReport has something new.
func (s *Supervisor) Updates() <-chan struct{} { return s.wake }

// TakeReport returns the statuses changed and the events raised since the last
// call; only the newest status of each workload is kept in between.
func (s *Supervisor) TakeReport() *hubv1.StatusReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 && len(s.events) == 0 {
		return nil
	}
	r := &hubv1.StatusReport{Events: s.events}
	for _, st := range s.dirty {
		r.Statuses = append(r.Statuses, st)
	}
	sort.Slice(r.Statuses, func(i, j int) bool { return r.Statuses[i].GetUid() < r.Statuses[j].GetUid() })
	s.dirty = map[string]*hubv1.WorkloadStatus{}
	s.events = nil
	return r
}

// Workload returns the spec of a workload the device runs.
func (s *Supervisor) Workload(uid string) (*hubv1.Workload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.workloads[uid]
	if !ok {
		return nil, false
	}
	return w.spec, true
}

// Instance returns the running instance of a container of a workload, for
// exec and attach; it implements Execer where the runtime can exec.
func (s *Supervisor) Instance(uid, container string) (Instance, bool) {
	s.mu.Lock()
	w, ok := s.workloads[uid]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.running[container]
	if !ok {
		return nil, false
	}
	return r.inst, true
}

func (s *Supervisor) publish(st *hubv1.WorkloadStatus) {
	s.mu.Lock()
	s.dirty[st.GetUid()] = st
	s.mu.Unlock()
	s.signal()
}

func (s *Supervisor) event(uid, container, typ, reason, msg string) {
	s.mu.Lock()
	if len(s.events) >= maxEvents {
		s.events = s.events[1:]
	}
	s.events = append(s.events, &hubv1.Event{
		WorkloadUid: uid, Container: container, Type: typ, Reason: reason, Message: msg, Time: timestamppb.Now(),
	})
	s.mu.Unlock()
	s.signal()
}

func (s *Supervisor) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

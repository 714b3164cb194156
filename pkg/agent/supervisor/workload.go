package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgefabric/edgefabric/pkg/agent/clock"
	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// workload runs the containers of one pod.
type workload struct {
	s       *Supervisor
	spec    *hubv1.Workload
	resumed bool // started again after an agent restart or a spec change

	// Guarded by s.mu: what the workload asks of fencing (see fence.go), and
	// why it was fenced (empty: it was not).
	fence  fenceSpec
	fenced string

	cancel  context.CancelFunc
	started chan struct{} // closed once cancel is set
	done    chan struct{}

	mu         sync.Mutex
	containers map[string]*hubv1.ContainerStatus // init and app containers by name
	vols       *volumeSet
	// newer holds the workload's latest spec when only its volume contents
	// changed since it started (nil: spec is the latest).
	newer     *hubv1.Workload
	startTime *timestamppb.Timestamp
	seq       uint64
	deleted   bool
	// fencedWhy is set once the workload was fenced (see fence.go): its
	// last status then says no phase even when it is removed, since the
	// pod may be placed on this device again.
	fencedWhy string
	running   map[string]*running // by container name, for exec and attach
}

func newWorkload(s *Supervisor, spec *hubv1.Workload, resumed bool) *workload {
	w := &workload{
		s: s, spec: spec, resumed: resumed, fence: fenceOf(spec),
		started:    make(chan struct{}),
		done:       make(chan struct{}),
		containers: map[string]*hubv1.ContainerStatus{},
		running:    map[string]*running{},
		startTime:  timestamppb.Now(),
	}
	appWaiting := reasons.ContainerCreating
	if len(spec.GetInitContainers()) > 0 {
		appWaiting = reasons.PodInitializing
	}
	for _, c := range spec.GetInitContainers() {
		w.containers[c.GetName()] = &hubv1.ContainerStatus{
			Name: c.GetName(), Image: c.GetImage(),
			State: waiting(reasons.ContainerCreating, ""),
		}
	}
	for _, c := range spec.GetContainers() {
		w.containers[c.GetName()] = &hubv1.ContainerStatus{
			Name: c.GetName(), Image: c.GetImage(),
			State: waiting(appWaiting, ""),
		}
	}
	return w
}

// containerKind says how a container of a pod runs.
type containerKind int

const (
	kindApp     containerKind = iota
	kindInit                  // runs to completion before the next
	kindSidecar               // an init container with restartPolicy Always
)

func (w *workload) key() string { return w.spec.GetNamespace() + "/" + w.spec.GetName() }

func (w *workload) run(parent context.Context) {
	defer close(w.done)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	w.cancel = cancel
	close(w.started)
	w.publish()

	used := w.latest()
	vs, err := w.setupVolumes(used)
	w.mu.Lock()
	w.vols = vs
	w.mu.Unlock()
	if err == nil && w.latest() != used {
		w.updateVolumes(w.latest()) // contents changed while they were set up
	}
	defer func() {
		w.mu.Lock()
		deleted := w.deleted
		w.mu.Unlock()
		if deleted {
			w.removeVolumes(vs)
		} else {
			w.releaseMemory(vs) // memory volumes never outlive the agent
		}
	}()
	if err != nil {
		w.event("", "Warning", reasons.FailedMount, "MountVolume.SetUp failed: %v", err)
		w.mu.Lock()
		for _, cs := range w.containers {
			cs.State = waiting(reasons.CreateContainerConfigError, err.Error())
		}
		w.mu.Unlock()
		w.publish()
		<-ctx.Done()
		return
	}

	// Sidecars keep running until the app containers have ended, and stop
	// after them.
	sideCtx, sideCancel := context.WithCancel(context.WithoutCancel(ctx))
	var sidecars sync.WaitGroup
	defer func() {
		sideCancel()
		sidecars.Wait()
		w.publish()
	}()
	for _, c := range w.spec.GetInitContainers() {
		if c.GetRestartPolicy() == "Always" {
			started := make(chan struct{})
			sidecars.Add(1)
			go func() {
				defer sidecars.Done()
				w.runContainer(sideCtx, c, kindSidecar, started)
			}()
			select {
			case <-started:
			case <-ctx.Done():
				return
			}
			continue
		}
		if !w.runContainer(ctx, c, kindInit, nil) {
			return // failed for good, or the workload stops
		}
	}

	var wg sync.WaitGroup
	for _, c := range w.spec.GetContainers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runContainer(ctx, c, kindApp, nil)
		}()
	}
	wg.Wait()
}

// stop ends the workload and waits for its containers to stop. deleted means
// the workload is gone from the desired state (its last status says so): its
// logs are removed then, also when it had already stopped (fenced).
func (w *workload) stop(deleted bool) {
	w.mu.Lock()
	w.deleted = w.deleted || deleted
	w.mu.Unlock()
	<-w.started
	w.cancel()
	<-w.done
	if deleted {
		w.endFenced()
		w.removeLogs()
	}
}

func (w *workload) status() *hubv1.WorkloadStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.statusLocked()
}

func (w *workload) statusLocked() *hubv1.WorkloadStatus {
	st := &hubv1.WorkloadStatus{
		Uid: w.spec.GetUid(), Namespace: w.spec.GetNamespace(), Name: w.spec.GetName(),
		StartTime: w.startTime, PodIp: w.s.cfg.PodIP, Seq: w.seq,
	}
	for _, c := range w.spec.GetContainers() {
		st.Containers = append(st.Containers, proto.Clone(w.containers[c.GetName()]).(*hubv1.ContainerStatus))
	}
	for _, c := range w.spec.GetInitContainers() {
		st.InitContainers = append(st.InitContainers, proto.Clone(w.containers[c.GetName()]).(*hubv1.ContainerStatus))
	}
	if w.deleted && w.fencedWhy == "" {
		st.Phase = "Succeeded"
		for _, c := range st.Containers {
			if t := c.GetState().GetTerminated(); t == nil || t.GetExitCode() != 0 {
				st.Phase = "Failed"
			}
		}
	}
	return st
}

// update changes one container's status and publishes the workload's.
// update changes the status of container name and publishes the workload's
// status, unless fn changed nothing: every publication is a report to the
// hub and a status write to the API server.
func (w *workload) update(name string, fn func(*hubv1.ContainerStatus)) {
	w.mu.Lock()
	cs := w.containers[name]
	before := proto.Clone(cs)
	fn(cs)
	same := proto.Equal(before, cs)
	w.mu.Unlock()
	if !same {
		w.publish()
	}
}

func (w *workload) publish() {
	w.mu.Lock()
	// From the supervisor's counter: the statuses of a pod stay ordered
	// when its workload is replaced, or removed and given to the device
	// again, and across agent restarts (the counter starts at the time).
	w.seq = w.s.seq.Add(1)
	st := w.statusLocked()
	w.mu.Unlock()
	w.s.publish(st)
}

func (w *workload) event(container, typ, reason, format string, args ...any) {
	w.s.event(w.spec.GetUid(), container, typ, reason, fmt.Sprintf(format, args...))
}

// runContainer runs one container until it ends for good (by its restart
// policy) or ctx ends, and reports whether it ended for good with exit code
// 0. started, if not nil, is closed once the container has started (its
// startup probe passed).
func (w *workload) runContainer(ctx context.Context, c *hubv1.Container, kind containerKind, started chan struct{}) bool {
	policy := w.spec.GetRestartPolicy()
	switch {
	case kind == kindSidecar:
		policy = "Always"
	case kind == kindInit && policy != "Never":
		policy = "OnFailure"
	}
	var startedOnce sync.Once
	onStarted := func() {
		if started != nil {
			startedOnce.Do(func() { close(started) })
		}
	}
	log := w.s.log.With("pod", w.key(), "container", c.GetName())
	restarts, err := w.s.store.Restarts(w.spec.GetUid(), c.GetName())
	if err != nil {
		log.Warn("read restart count", "err", err)
	}
	if w.resumed {
		// The agent (or the spec) changed under a container that was running:
		// it runs again, which counts as a restart.
		restarts++
		w.saveRestarts(c.GetName(), restarts)
	}
	w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.RestartCount = restarts })

	crashes := 0
	for {
		art := w.pull(ctx, c)
		if art == nil {
			return false // stopped while pulling
		}
		w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.ImageId = art.ImageID })
		term := w.runOnce(ctx, c, art, restarts, onStarted)
		if ctx.Err() != nil {
			w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.State, cs.Ready, cs.Started = term, false, false })
			return false
		}
		exit := term.GetTerminated().GetExitCode()
		if !shouldRestart(policy, exit) {
			w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.State, cs.Ready, cs.Started = term, false, false })
			return exit == 0
		}
		ran := term.GetTerminated().GetFinishedAt().AsTime().Sub(term.GetTerminated().GetStartedAt().AsTime())
		if ran > 10*time.Minute {
			crashes = 0 // it ran well for a while: forget earlier crashes, as the kubelet does
		}
		delay := w.backoff(crashes)
		crashes++
		restarts++
		w.saveRestarts(c.GetName(), restarts)
		if delay > 0 {
			// The event first: whoever sees the CrashLoopBackOff status finds it.
			w.event(c.GetName(), "Warning", reasons.BackOff, "Back-off restarting failed container %s in pod %s", c.GetName(), w.key())
		}
		w.update(c.GetName(), func(cs *hubv1.ContainerStatus) {
			cs.LastState, cs.RestartCount, cs.Ready, cs.Started = term, restarts, false, false
			cs.State = term
			if delay > 0 {
				cs.State = waiting(reasons.CrashLoopBackOff, fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.GetName(), w.key()))
			}
		})
		if delay > 0 {
			if !sleepOn(ctx, w.s.clock, delay) {
				w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.State = term })
				return false
			}
		}
	}
}

// backoff is the wait before restart number n+1 after consecutive crashes:
// none for the first, then the base doubling up to the cap.
func (w *workload) backoff(n int) time.Duration {
	if n == 0 {
		return 0
	}
	d := w.s.cfg.BackoffBase
	for i := 1; i < n && d < w.s.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, w.s.cfg.BackoffMax)
}

func shouldRestart(policy string, exit int32) bool {
	switch policy {
	case "Never":
		return false
	case "OnFailure":
		return exit != 0
	default:
		return true
	}
}

func (w *workload) saveRestarts(container string, n int32) {
	if err := w.s.store.SetRestarts(w.spec.GetUid(), container, n); err != nil {
		w.s.log.Warn("persist restart count", "pod", w.key(), "container", container, "err", err)
	}
}

// pull gets the container's image, retrying with back-off; nil once ctx ends.
func (w *workload) pull(ctx context.Context, c *hubv1.Container) *image.Artifact {
	ref, name := c.GetImage(), c.GetName()
	policy := image.PullPolicy(c.GetImagePullPolicy())
	for failures := 0; ; failures++ {
		if policy != image.PullPolicy("Always") {
			if art, err := w.s.images.Lookup(ref); err == nil {
				w.event(name, "Normal", reasons.Pulled, "Container image %q already present on machine", ref)
				return art
			}
		}
		var art *image.Artifact
		var err error
		if policy == image.PullPolicy("Never") {
			err = fmt.Errorf("container image %q is not present with pull policy of Never", ref)
			w.update(name, func(cs *hubv1.ContainerStatus) { cs.State = waiting(reasons.ErrImageNeverPull, err.Error()) })
			w.event(name, "Warning", reasons.ErrImageNeverPull, "%v", err)
		} else {
			w.event(name, "Normal", reasons.Pulling, "Pulling image %q", ref)
			t0 := time.Now()
			art, err = w.s.images.Pull(ctx, ref, policy)
			if err == nil {
				w.event(name, "Normal", reasons.Pulled, "Successfully pulled image %q in %s", ref, time.Since(t0).Round(time.Millisecond))
				return art
			}
			if ctx.Err() != nil {
				return nil
			}
			var pe *image.PlatformError
			errors.As(err, &pe)
			w.update(name, func(cs *hubv1.ContainerStatus) {
				cs.State = waiting(reasons.ErrImagePull, err.Error())
				cs.ImagePlatforms = nil
				if pe != nil {
					cs.ImagePlatforms = pe.Platforms
				}
			})
			w.event(name, "Warning", reasons.Failed, "Failed to pull image %q: %v", ref, err)
		}
		delay := max(w.backoff(failures+1), time.Second)
		if !sleepOn(ctx, w.s.clock, min(delay/2, 2*time.Second)) {
			return nil
		}
		if policy != image.PullPolicy("Never") {
			w.update(name, func(cs *hubv1.ContainerStatus) {
				cs.State = waiting(reasons.ImagePullBackOff, fmt.Sprintf("Back-off pulling image %q: %v", ref, err))
			})
			w.event(name, "Normal", reasons.BackOff, "Back-off pulling image %q", ref)
		}
		if !sleepOn(ctx, w.s.clock, delay) {
			return nil
		}
	}
}

// runOnce runs the container once and returns how it ended.
func (w *workload) runOnce(ctx context.Context, c *hubv1.Container, art *image.Artifact, attempt int32, onStarted func()) *hubv1.ContainerState {
	name := c.GetName()
	started := timestamppb.Now()
	lw, err := logs.Open(w.s.LogFiles(w.spec.GetUid(), name), int(attempt), w.s.cfg.LogMaxBytes, w.s.cfg.LogMaxFiles)
	if err != nil {
		return w.startFailed(name, started, fmt.Errorf("open log: %w", err))
	}
	defer lw.Close()
	att := newAttachPoint(c)
	defer att.end()
	rt, err := w.runtimeFor(art)
	if err != nil {
		return w.startFailed(name, started, err)
	}
	w.mu.Lock()
	vs := w.vols
	w.mu.Unlock()
	mounts, release, err := w.mounts(c, vs)
	if err != nil {
		return w.startFailed(name, started, err)
	}
	defer release() // once the container has ended: runOnce waits for it
	workingDir := c.GetWorkingDir()
	if workingDir == "" {
		workingDir = art.WorkingDir
	}
	inst, err := rt.Start(context.WithoutCancel(ctx), ContainerSpec{
		ID:               w.spec.GetUid() + "_" + name,
		Artifact:         art,
		Args:             argv(c, art),
		Env:              env(c, art, w.spec.GetName()),
		WorkingDir:       workingDir,
		Mounts:           mounts,
		MemoryLimitBytes: c.GetMemoryLimitBytes(),
		CPULimitMillis:   c.GetCpuLimitMillis(),
		Stdin:            att.stdin(),
		Stdout:           att.output(lw.Stdout(), false),
		Stderr:           att.output(lw.Stderr(), true),
		Listeners:        listeners(c),
		RunAsUser:        c.RunAsUser,
		RunAsGroup:       c.RunAsGroup,
		RunAsNonRoot:     c.GetRunAsNonRoot(),
		Security: process.Security{
			CapAdd: c.GetCapabilitiesAdd(), CapDrop: c.GetCapabilitiesDrop(), ReadOnlyRootFS: c.GetReadOnlyRootFilesystem(),
		},
		Privileged:               c.GetPrivileged(),
		AllowPrivilegeEscalation: c.AllowPrivilegeEscalation,
		TTY:                      c.GetTty(),
	})
	if err != nil {
		return w.startFailed(name, started, err)
	}
	if n, ok := inst.(sandboxNoter); ok && n.SandboxNote() != "" {
		w.event(name, "Warning", reasons.NoUserNamespace, "%s", n.SandboxNote())
	}
	var usage func() wasm.Usage
	if u, ok := inst.(interface{ Usage() wasm.Usage }); ok {
		usage = u.Usage
	}
	w.setRunning(name, &running{
		inst:     inst,
		commands: commandsOf(art, argv(c, art), imageModules(w.s.images)),
		attach:   att,
		usage:    usage,
		started:  started.AsTime(),
	})
	defer w.setRunning(name, nil)
	w.update(name, func(cs *hubv1.ContainerStatus) {
		cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{StartedAt: started}}}
		cs.ImagePlatforms = nil
		// Without a startup probe the container has started; without a
		// readiness probe too, it is ready: said in the same report as
		// Running, so the pod is Ready with its first status write.
		cs.Started = c.GetStartupProbe() == nil
		cs.Ready = cs.Started && c.GetReadinessProbe() == nil
	})
	w.event(name, "Normal", reasons.Started, "Started container %s", name)

	probeCtx, stopProbes := context.WithCancel(ctx)
	probesDone := make(chan struct{})
	kill := make(chan string, 1)
	go func() {
		defer close(probesDone)
		w.runProbes(probeCtx, c, inst, kill, onStarted)
	}()
	grace := time.Duration(w.spec.GetTerminationGraceSeconds()) * time.Second
	select {
	case <-inst.Done():
	case <-ctx.Done():
		w.event(name, "Normal", reasons.Killing, "Stopping container %s", name)
		inst.Stop(w.stopGrace(grace))
	case why := <-kill:
		for _, p := range []*hubv1.Probe{c.GetLivenessProbe(), c.GetStartupProbe()} {
			if p.GetTerminationGraceSeconds() > 0 {
				grace = time.Duration(p.GetTerminationGraceSeconds()) * time.Second
			}
		}
		w.event(name, "Normal", reasons.Killing, "%s", why)
		inst.Stop(grace)
	}
	stopProbes()
	<-probesDone
	res := inst.Result()
	msg := res.Message
	if res.Reason == reasons.OOMKilled {
		if c.GetMemoryLimitBytes() > 0 {
			w.event(name, "Warning", reasons.OOMKilled, "Container %s exceeded its memory limit of %d bytes", name, c.GetMemoryLimitBytes())
		} else {
			w.event(name, "Warning", reasons.OOMKilled, "Container %s exceeded the device's memory limit for containers that set none: %s", name, res.Message)
		}
	}
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
		ExitCode: int32(res.ExitCode), Reason: res.Reason, Message: msg, StartedAt: started, FinishedAt: timestamppb.Now(),
	}}}
}

// runtimeFor picks the runtime of a container: the workload's, or with no
// runtimeClassName the one the image's platform asks for.
func (w *workload) runtimeFor(art *image.Artifact) (Runtime, error) {
	name := w.spec.GetRuntime()
	if name == "" {
		name = RuntimeWASM
	}
	native := art.Packaging == image.PackagingNative
	switch {
	case native && (name == RuntimeProcess || w.spec.GetRuntimeAuto()):
		name = RuntimeProcess
	case native:
		return nil, fmt.Errorf("image %s is a native %s image, and runtimeClassName %s runs WebAssembly modules only: use edgefabric-process or leave runtimeClassName unset", art.Ref, art.Platform, "edgefabric-"+name)
	case name == RuntimeProcess:
		return nil, fmt.Errorf("image %s is a WebAssembly module, and runtimeClassName edgefabric-process runs native images only: use edgefabric-wasm or leave runtimeClassName unset", art.Ref)
	}
	rt := w.s.runtimes[name]
	if rt == nil {
		return nil, fmt.Errorf("runtime %q is not available on this device", name)
	}
	return rt, nil
}

// startFailed reports a container that could not start (a bad module, say) as
// terminated with exit code 128, as the kubelet reports a runtime start error.
func (w *workload) startFailed(name string, started *timestamppb.Timestamp, err error) *hubv1.ContainerState {
	w.event(name, "Warning", reasons.Failed, "Error: %v", err)
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
		ExitCode: 128, Reason: reasons.StartError, Message: err.Error(), StartedAt: started, FinishedAt: timestamppb.Now(),
	}}}
}

// argv follows Docker and Kubernetes: command replaces the image's entrypoint
// (and drops its cmd); args replace the cmd.
func argv(c *hubv1.Container, art *image.Artifact) []string {
	entry, cmd := art.Entrypoint, art.Cmd
	if len(c.GetCommand()) > 0 {
		entry, cmd = c.GetCommand(), nil
	}
	if len(c.GetArgs()) > 0 {
		cmd = c.GetArgs()
	}
	out := append(append([]string{}, entry...), cmd...)
	if len(out) == 0 {
		out = []string{c.GetName()}
	}
	return out
}

// env is the image's environment overridden by the container's, plus HOSTNAME
// set to the pod name as in a pod.
func env(c *hubv1.Container, art *image.Artifact, podName string) []string {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	set("HOSTNAME", podName)
	for _, kv := range art.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, e := range c.GetEnv() {
		set(e.GetName(), e.GetValue())
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out
}

func waiting(reason, msg string) *hubv1.ContainerState {
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{Reason: reason, Message: msg}}}
}

func sleep(ctx context.Context, d time.Duration) bool {
	return sleepOn(ctx, clock.Real{}, d)
}

// sleepOn waits d on clk; it reports false if ctx ended first.
func sleepOn(ctx context.Context, clk clock.Clock, d time.Duration) bool {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

var _ = errors.Is

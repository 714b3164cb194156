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

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// workload runs the containers of one pod.
type workload struct {
	s       *Supervisor
	spec    *hubv1.Workload
	resumed bool // started again after an agent restart or a spec change

	cancel  context.CancelFunc
	started chan struct{} // closed once cancel is set
	done    chan struct{}

	mu         sync.Mutex
	containers map[string]*hubv1.ContainerStatus
	startTime  *timestamppb.Timestamp
	seq        uint64
	deleted    bool
	running    map[string]*running // by container name, for exec and attach
}

func newWorkload(s *Supervisor, spec *hubv1.Workload, resumed bool) *workload {
	w := &workload{
		s: s, spec: spec, resumed: resumed,
		started:    make(chan struct{}),
		done:       make(chan struct{}),
		containers: map[string]*hubv1.ContainerStatus{},
		startTime:  timestamppb.Now(),
	}
	for _, c := range spec.GetContainers() {
		w.containers[c.GetName()] = &hubv1.ContainerStatus{
			Name: c.GetName(), Image: c.GetImage(),
			State: waiting("ContainerCreating", ""),
		}
	}
	return w
}

func (w *workload) key() string { return w.spec.GetNamespace() + "/" + w.spec.GetName() }

func (w *workload) run(parent context.Context) {
	defer close(w.done)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	w.cancel = cancel
	close(w.started)
	w.publish()

	var wg sync.WaitGroup
	for _, c := range w.spec.GetContainers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runContainer(ctx, c)
		}()
	}
	wg.Wait()
	w.publish()
}

// stop ends the workload and waits for its containers to stop. deleted means
// the workload is gone from the desired state (its last status says so).
func (w *workload) stop(deleted bool) {
	w.mu.Lock()
	w.deleted = w.deleted || deleted
	w.mu.Unlock()
	<-w.started
	w.cancel()
	<-w.done
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
	if w.deleted {
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
func (w *workload) update(name string, fn func(*hubv1.ContainerStatus)) {
	w.mu.Lock()
	fn(w.containers[name])
	w.mu.Unlock()
	w.publish()
}

func (w *workload) publish() {
	w.mu.Lock()
	w.seq++
	st := w.statusLocked()
	w.mu.Unlock()
	w.s.publish(st)
}

func (w *workload) event(container, typ, reason, format string, args ...any) {
	w.s.event(w.spec.GetUid(), container, typ, reason, fmt.Sprintf(format, args...))
}

func (w *workload) runContainer(ctx context.Context, c *hubv1.Container) {
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
			return // stopped while pulling
		}
		w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.ImageId = art.ImageID })
		term := w.runOnce(ctx, c, art, restarts)
		if ctx.Err() != nil {
			w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.State, cs.Ready = term, false })
			return
		}
		exit := term.GetTerminated().GetExitCode()
		if !shouldRestart(w.spec.GetRestartPolicy(), exit) {
			w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.State, cs.Ready = term, false })
			return
		}
		ran := term.GetTerminated().GetFinishedAt().AsTime().Sub(term.GetTerminated().GetStartedAt().AsTime())
		if ran > 10*time.Minute {
			crashes = 0 // it ran well for a while: forget earlier crashes, as the kubelet does
		}
		delay := w.backoff(crashes)
		crashes++
		restarts++
		w.saveRestarts(c.GetName(), restarts)
		w.update(c.GetName(), func(cs *hubv1.ContainerStatus) {
			cs.LastState, cs.RestartCount, cs.Ready = term, restarts, false
			cs.State = term
			if delay > 0 {
				cs.State = waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.GetName(), w.key()))
			}
		})
		if delay > 0 {
			w.event(c.GetName(), "Warning", "BackOff", "Back-off restarting failed container %s in pod %s", c.GetName(), w.key())
			if !sleep(ctx, delay) {
				w.update(c.GetName(), func(cs *hubv1.ContainerStatus) { cs.State = term })
				return
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
				w.event(name, "Normal", "Pulled", "Container image %q already present on machine", ref)
				return art
			}
		}
		var art *image.Artifact
		var err error
		if policy == image.PullPolicy("Never") {
			err = fmt.Errorf("container image %q is not present with pull policy of Never", ref)
			w.update(name, func(cs *hubv1.ContainerStatus) { cs.State = waiting("ErrImageNeverPull", err.Error()) })
			w.event(name, "Warning", "ErrImageNeverPull", "%v", err)
		} else {
			w.event(name, "Normal", "Pulling", "Pulling image %q", ref)
			t0 := time.Now()
			art, err = w.s.images.Pull(ctx, ref, policy)
			if err == nil {
				w.event(name, "Normal", "Pulled", "Successfully pulled image %q in %s", ref, time.Since(t0).Round(time.Millisecond))
				return art
			}
			if ctx.Err() != nil {
				return nil
			}
			w.update(name, func(cs *hubv1.ContainerStatus) { cs.State = waiting("ErrImagePull", err.Error()) })
			w.event(name, "Warning", "Failed", "Failed to pull image %q: %v", ref, err)
		}
		delay := max(w.backoff(failures+1), time.Second)
		if !sleep(ctx, min(delay/2, 2*time.Second)) {
			return nil
		}
		if policy != image.PullPolicy("Never") {
			w.update(name, func(cs *hubv1.ContainerStatus) {
				cs.State = waiting("ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: %v", ref, err))
			})
			w.event(name, "Normal", "BackOff", "Back-off pulling image %q", ref)
		}
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// runOnce runs the container once and returns how it ended.
func (w *workload) runOnce(ctx context.Context, c *hubv1.Container, art *image.Artifact, attempt int32) *hubv1.ContainerState {
	name := c.GetName()
	started := timestamppb.Now()
	lw, err := logs.Open(w.s.LogDir(w.spec.GetUid(), name), int(attempt), w.s.cfg.LogMaxBytes, w.s.cfg.LogMaxFiles)
	if err != nil {
		return w.startFailed(name, started, fmt.Errorf("open log: %w", err))
	}
	defer lw.Close()
	att := newAttachPoint(c)
	defer att.end()
	inst, err := w.s.runtime.Start(context.WithoutCancel(ctx), wasm.Spec{
		ModulePath:       art.ModulePath,
		Args:             argv(c, art),
		Env:              env(c, art, w.spec.GetName()),
		MemoryLimitBytes: c.GetMemoryLimitBytes(),
		Stdin:            att.stdin(),
		Stdout:           att.output(lw.Stdout(), false),
		Stderr:           att.output(lw.Stderr(), true),
		Listeners:        listeners(c),
	})
	if err != nil {
		return w.startFailed(name, started, err)
	}
	w.setRunning(name, &running{
		exec:    &wasmExecer{rt: w.s.runtime, mods: imageModules(w.s.images), c: c, art: art, argv: argv(c, art), env: env(c, art, w.spec.GetName())},
		attach:  att,
		usage:   inst.Usage,
		started: started.AsTime(),
	})
	defer w.setRunning(name, nil)
	w.update(name, func(cs *hubv1.ContainerStatus) {
		cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{StartedAt: started}}}
		cs.Ready = true
	})
	w.event(name, "Normal", "Started", "Started container %s", name)

	select {
	case <-inst.Done():
	case <-ctx.Done():
		grace := time.Duration(w.spec.GetTerminationGraceSeconds()) * time.Second
		w.event(name, "Normal", "Killing", "Stopping container %s", name)
		inst.Stop(grace)
	}
	res := inst.Result()
	msg := res.Message
	if res.Reason == "OOMKilled" {
		w.event(name, "Warning", "OOMKilled", "Container %s exceeded its memory limit of %d bytes", name, c.GetMemoryLimitBytes())
	}
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
		ExitCode: int32(res.ExitCode), Reason: res.Reason, Message: msg, StartedAt: started, FinishedAt: timestamppb.Now(),
	}}}
}

// startFailed reports a container that could not start (a bad module, say) as
// terminated with exit code 128, as the kubelet reports a runtime start error.
func (w *workload) startFailed(name string, started *timestamppb.Timestamp, err error) *hubv1.ContainerState {
	w.event(name, "Warning", "Failed", "Error: %v", err)
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
		ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: started, FinishedAt: timestamppb.Now(),
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
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var _ = errors.Is

package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// podImages are examples/health as a wasm image and as a native image.
type podImages struct {
	wasm, native string
}

// TestPodSemantics runs pods that use what makes a pod more than one
// container: native process containers, init containers and sidecars,
// probes, volumes and their updates, memory limits; on one fabric, driving
// the real kubectl where a user would.
func TestPodSemantics(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("native images are built for Linux")
	}
	f := startFabric(t, 1)
	wasmRef, _ := f.PushExample("health", "v1", ocitest.Image)
	nativeRef := f.Registry + "/health-native:v1"
	ocitest.PushNative(t, nativeRef, ocitest.BuildGoNative(t, "examples/health"))
	imgs := podImages{wasm: wasmRef, native: nativeRef}
	// The RuntimeClasses edgefabric ships.
	if out, err := f.Kubectl("apply", "-f", filepath.Join(ocitest.RepoRoot(t), "examples", "runtimeclasses.yaml")); err != nil {
		t.Fatalf("kubectl apply runtimeclasses: %v\n%s", err, out)
	}
	t.Run("pods", func(t *testing.T) {
		for name, test := range map[string]func(*fabrictest.Fabric, podImages){
			"native process":    testNativeProcess,
			"init and sidecars": testInitAndSidecars,
			"init failure":      testInitFailure,
			"probes":            testProbes,
			"configmap update":  testConfigMapUpdate,
			"secret volume":     testSecretVolume,
			"process oom":       testProcessOOM,
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				test(f.For(t), imgs)
			})
		}
	})
	f.CheckAlive()
}

func initContainer(name, image string, env ...string) corev1.Container {
	c := corev1.Container{Name: name, Image: image}
	for i := 0; i+1 < len(env); i += 2 {
		c.Env = append(c.Env, corev1.EnvVar{Name: env[i], Value: env[i+1]})
	}
	return c
}

func mountAt(volume, path string) func(*corev1.Container) {
	return func(c *corev1.Container) {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: path})
	}
}

// testNativeProcess runs a static Go binary from an ordinary linux image
// with the process runtime, chosen by runtimeClassName and by the image's
// platform alone.
func testNativeProcess(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	created := time.Now()
	f.Create(f.Pod("native-class", imgs.native, fabrictest.Env("WATCH_FILE", "/etc/motd"), func(p *corev1.Pod) {
		p.Spec.RuntimeClassName = new("edgefabric-process")
	}))
	f.Create(f.Pod("native-auto", imgs.native, fabrictest.Env("WATCH_FILE", "/etc/motd")))
	f.Create(f.Pod("native-wrong-class", imgs.native, func(p *corev1.Pod) { p.Spec.RuntimeClassName = new("edgefabric-wasm") }))
	f.Create(f.Pod("wasm-auto", imgs.wasm, fabrictest.Env("WATCH_FILE", "/nonexistent")))
	for _, name := range []string{"native-class", "native-auto", "wasm-auto"} {
		p := f.WaitPod(name, 90*time.Second, fabrictest.PodReady)
		// A first pull and (native) unpack or (wasm) compile; for the record.
		t.Logf("%s: Ready %s after it was created", name, time.Since(created).Round(10*time.Millisecond))
		if name == "wasm-auto" {
			continue
		}
		if app(p).ImageID == "" {
			t.Errorf("%s: no imageID in %+v", name, app(p))
		}
		// The image's own file, read from inside the container's root.
		f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "WATCH_FILE: a native edgefabric image") }, name)
	}
	// kubectl exec runs a program of the image in the container's
	// environment (its root: /etc/motd is the image's), with exit codes.
	out, err := f.Kubectl("exec", "native-class", "--", "app", "check")
	if err != nil || !strings.Contains(out, "healthy") {
		t.Errorf("kubectl exec native-class -- app check: got %q, %v; want healthy", out, err)
	}
	out, err = f.Kubectl("exec", "native-class", "--", "/app/bin/app", "check")
	if err != nil || !strings.Contains(out, "healthy") {
		t.Errorf("kubectl exec native-class -- /app/bin/app check: got %q, %v", out, err)
	}
	if _, err := f.Kubectl("exec", "native-class", "--", "no-such-program"); err == nil || !strings.Contains(err.Error(), "exit code 127") {
		t.Errorf("kubectl exec of a missing program: got %v, want exit code 127", err)
	}
	p := f.WaitPod("native-wrong-class", 60*time.Second, func(p *corev1.Pod) bool {
		return app(p).LastTerminationState.Terminated != nil || app(p).State.Terminated != nil
	})
	term := app(p).LastTerminationState.Terminated
	if term == nil {
		term = app(p).State.Terminated
	}
	if term.Reason != reasons.StartError || !strings.Contains(term.Message, "runs WebAssembly modules only") {
		t.Errorf("native image under edgefabric-wasm: got %+v, want a StartError that says why", term)
	}
}

// testInitAndSidecars: init containers run in order to completion, a sidecar
// keeps running beside the app; they share an emptyDir, in both runtimes.
func testInitAndSidecars(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	for _, rt := range []struct{ name, image string }{{"wasm", imgs.wasm}, {"process", imgs.native}} {
		name := "init-" + rt.name
		f.Create(f.Pod(name, rt.image, fabrictest.Env("WATCH_FILE", "/shared/order"), func(p *corev1.Pod) {
			first := initContainer("first", rt.image, "APPEND_FILE", "/shared/order", "APPEND_TEXT", "first")
			side := initContainer("side", rt.image, "WATCH_FILE", "/shared/order")
			side.RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
			second := initContainer("second", rt.image, "APPEND_FILE", "/shared/order", "APPEND_TEXT", "second")
			for _, c := range []*corev1.Container{&first, &side, &second, &p.Spec.Containers[0]} {
				mountAt("shared", "/shared")(c)
			}
			p.Spec.InitContainers = []corev1.Container{first, side, second}
			p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}))
	}
	for _, rt := range []string{"wasm", "process"} {
		name := "init-" + rt
		p := f.WaitPod(name, 90*time.Second, fabrictest.PodReady)
		if c := fabrictest.Condition(p, corev1.PodInitialized); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("%s: Initialized condition %+v, want True", name, c)
		}
		if n := len(p.Status.InitContainerStatuses); n != 3 {
			t.Fatalf("%s: %d initContainerStatuses, want 3", name, n)
		}
		for _, cs := range p.Status.InitContainerStatuses {
			switch cs.Name {
			case "side":
				if cs.State.Running == nil || cs.Started == nil || !*cs.Started {
					t.Errorf("%s: sidecar %+v, want running and started", name, cs.State)
				}
			default:
				if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
					t.Errorf("%s: init container %s %+v, want completed", name, cs.Name, cs.State)
				}
			}
		}
		f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "WATCH_FILE: first\nsecond\n") }, name)
		// The sidecar saw the first init container's line before the second ran.
		f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "WATCH_FILE: first\n") }, name, "-c", "side")
		out, err := f.Kubectl("get", "pod", name, "--no-headers")
		if err != nil || !strings.Contains(out, "2/2") || !strings.Contains(out, "Running") {
			t.Errorf("kubectl get pod %s: got %q (%v), want 2/2 Running (app and sidecar)", name, out, err)
		}
	}
}

// testInitFailure: a failing init container under restartPolicy Never fails
// the pod; kubectl shows Init:Error. Under Always it crash-loops.
func testInitFailure(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	bad := func(p *corev1.Pod) {
		// Appending to a directory that does not exist fails with exit code 1.
		p.Spec.InitContainers = []corev1.Container{initContainer("bad", imgs.native, "APPEND_FILE", "/missing/dir/file")}
	}
	f.Create(f.Pod("init-never", imgs.native, fabrictest.RestartPolicy(corev1.RestartPolicyNever), bad))
	f.Create(f.Pod("init-always", imgs.native, bad))
	p := f.WaitPod("init-never", 90*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if cs := p.Status.InitContainerStatuses; len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Terminated.ExitCode != 1 {
		t.Errorf("init-never: init container statuses %+v, want terminated with exit 1", cs)
	}
	if w := app(p).State.Waiting; w == nil || w.Reason != reasons.PodInitializing {
		t.Errorf("init-never: app %+v, want waiting PodInitializing", app(p).State)
	}
	if out, err := f.Kubectl("get", "pod", "init-never", "--no-headers"); err != nil || !strings.Contains(out, "Init:Error") {
		t.Errorf("kubectl get pod init-never: got %q (%v), want Init:Error", out, err)
	}
	f.WaitPod("init-always", 90*time.Second, func(p *corev1.Pod) bool {
		cs := p.Status.InitContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 2 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reasons.CrashLoopBackOff &&
			p.Status.Phase == corev1.PodPending
	})
	// Between back-offs the init container runs again for a moment (Init:0/1).
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := f.Kubectl("get", "pod", "init-always", "--no-headers")
		if err == nil && strings.Contains(out, "Init:CrashLoopBackOff") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("kubectl get pod init-always: got %q (%v), want Init:CrashLoopBackOff", out, err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testProbes: readiness gates Ready, a failing liveness probe restarts the
// container with Unhealthy and Killing events.
func testProbes(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	probe := func(path string, threshold int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: 1, FailureThreshold: threshold, TimeoutSeconds: 2,
		}
	}
	readyAddr := fabrictest.FreePort(t)
	liveAddr := fabrictest.FreePort(t)
	port := func(addr string) int32 {
		_, p, _ := strings.Cut(addr, ":")
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		return int32(n)
	}
	f.Create(f.Pod("probe-ready", imgs.native, fabrictest.Env("LISTEN", readyAddr, "READY_AFTER", "6s"), func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port(readyAddr)}}
		c.ReadinessProbe = probe("/readyz", 1)
		c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}, PeriodSeconds: 1, FailureThreshold: 30}
	}))
	f.Create(f.Pod("probe-live", imgs.native, fabrictest.Env("LISTEN", liveAddr, "FAIL_AFTER", "3s"), func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port(liveAddr)}}
		c.LivenessProbe = probe("/healthz", 2)
	}))

	// Running but not ready until READY_AFTER has passed.
	p := f.WaitPod("probe-ready", 90*time.Second, func(p *corev1.Pod) bool {
		return app(p).State.Running != nil && app(p).Started != nil && *app(p).Started
	})
	if fabrictest.PodReady(p) && time.Since(app(p).State.Running.StartedAt.Time) < 5*time.Second {
		t.Errorf("probe-ready was Ready %s after it started, before its readiness probe could pass", time.Since(app(p).State.Running.StartedAt.Time))
	}
	p = f.WaitPod("probe-ready", 60*time.Second, fabrictest.PodReady)
	if !app(p).Ready {
		t.Errorf("probe-ready: container not ready in a Ready pod: %+v", app(p))
	}
	f.WaitEvent("probe-ready", reasons.Unhealthy, 30*time.Second)

	// Liveness: restarted once /healthz fails.
	p = f.WaitPod("probe-live", 120*time.Second, func(p *corev1.Pod) bool { return app(p).RestartCount >= 1 })
	if app(p).LastTerminationState.Terminated == nil {
		t.Errorf("probe-live: no last termination state after a liveness restart: %+v", app(p))
	}
	ev := f.WaitEvent("probe-live", reasons.Killing, 30*time.Second)
	if !strings.Contains(ev.Message, "failed liveness probe, will be restarted") {
		t.Errorf("probe-live: Killing event %q", ev.Message)
	}
	ev = f.WaitEvent("probe-live", reasons.Unhealthy, 30*time.Second)
	if !strings.Contains(ev.Message, "Liveness probe failed") {
		t.Errorf("probe-live: Unhealthy event %q", ev.Message)
	}
}

// testConfigMapUpdate: a configMap volume's files follow the configMap
// within a minute, without a restart, in both runtimes.
func testConfigMapUpdate(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "site", Namespace: namespace}, Data: map[string]string{"greeting": "hello v1"}}
	if _, err := f.Client.CoreV1().ConfigMaps(namespace).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []struct{ name, image string }{{"wasm", imgs.wasm}, {"process", imgs.native}} {
		f.Create(f.Pod("cm-"+rt.name, rt.image, fabrictest.Env("WATCH_FILE", "/etc/site/greeting"), func(p *corev1.Pod) {
			mountAt("site", "/etc/site")(&p.Spec.Containers[0])
			p.Spec.Volumes = []corev1.Volume{{Name: "site", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "site"},
			}}}}
		}))
	}
	for _, rt := range []string{"wasm", "process"} {
		f.WaitPod("cm-"+rt, 90*time.Second, fabrictest.PodReady)
		f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "WATCH_FILE: hello v1") }, "cm-"+rt)
	}
	cm.Data["greeting"] = "hello v2"
	if _, err := f.Client.CoreV1().ConfigMaps(namespace).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	for _, rt := range []string{"wasm", "process"} {
		f.LogsUntil(60*time.Second, func(s string) bool { return strings.Contains(s, "WATCH_FILE: hello v2") }, "cm-"+rt)
		t.Logf("cm-%s: configMap update reached the file after %s", rt, time.Since(updated).Round(100*time.Millisecond))
		p, err := f.Client.CoreV1().Pods(namespace).Get(t.Context(), "cm-"+rt, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if app(p).RestartCount != 0 {
			t.Errorf("cm-%s: restarted %d times by a configMap update", rt, app(p).RestartCount)
		}
	}
}

// testSecretVolume: a secret volume reaches the container, and the secret is
// nowhere on the device's disk (the agent's data directory, tmpfs mounts
// aside).
func testSecretVolume(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	const secret = "s3cr3t-e2e-7f1c9a"
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: namespace}, Data: map[string][]byte{"password": []byte(secret)}}
	if _, err := f.Client.CoreV1().Secrets(namespace).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Create(f.Pod("secret-vol", imgs.native, fabrictest.Env("WATCH_FILE", "/creds/password"), func(p *corev1.Pod) {
		mountAt("creds", "/creds")(&p.Spec.Containers[0])
		p.Spec.Volumes = []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}}}
		p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"},
		}})
	}))
	p := f.WaitPod("secret-vol", 90*time.Second, fabrictest.PodReady)
	f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "WATCH_FILE: "+secret) }, "secret-vol")
	dev := f.DeviceOf(p)
	var found []string
	_ = filepath.WalkDir(dev.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			var st syscall.Statfs_t
			if syscall.Statfs(path, &st) == nil && st.Type == 0x01021994 { // TMPFS_MAGIC
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && !strings.HasSuffix(path, ".log") && !strings.Contains(path, string(filepath.Separator)+"logs"+string(filepath.Separator)) {
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(secret)) {
				found = append(found, path)
			}
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("the secret is on the device's disk in the clear: %v", found)
	}
}

// testProcessOOM: a native process over its memory limit is killed and
// reported OOMKilled; the agent lives on.
func testProcessOOM(f *fabrictest.Fabric, imgs podImages) {
	t := f.T()
	f.Create(f.Pod("proc-oom", imgs.native, fabrictest.RestartPolicy(corev1.RestartPolicyNever), fabrictest.Env("ALLOC_MB", "256"), func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	}))
	p := f.WaitPod("proc-oom", 90*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := app(p).State.Terminated; term == nil || term.Reason != reasons.OOMKilled || term.ExitCode != 137 {
		t.Errorf("proc-oom: got %+v, want terminated OOMKilled 137", app(p).State)
	}
	f.WaitEvent("proc-oom", reasons.OOMKilled, 30*time.Second)
}

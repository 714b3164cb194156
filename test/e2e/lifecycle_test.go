package e2e

import (
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// cpu requests n millicores for the pod's container.
func cpu(n int64) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		q := *resource.NewMilliQuantity(n, resource.DecimalSI)
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: q}
	}
}

// testPlacement checks that a pod goes to the least loaded device that fits:
// the fabric's devices offer 2000m each and nothing else asks for CPU.
func testPlacement(f *fabrictest.Fabric, img image) {
	t := f.T()
	placed := func(name string, millis int64) string {
		f.Create(f.Pod(name, img.ref, cpu(millis), fabrictest.Env("INTERVAL", "1s")))
		p := f.WaitPod(name, 60*time.Second, func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] != "" })
		ev := f.WaitEvent(name, efv1.ReasonScheduled, 30*time.Second)
		dev := f.DeviceOf(p).ID
		if want := "Scheduled to device " + dev; ev.Message != want || ev.Type != corev1.EventTypeNormal {
			t.Errorf("pod %s: Scheduled event %s %q, want Normal %q", name, ev.Type, ev.Message, want)
		}
		return dev
	}
	// The first pod takes half a device; the next two are cheaper and go to
	// the other, emptier devices although they would fit beside it.
	a := placed("place-a", 1000)
	b := placed("place-b", 300)
	c := placed("place-c", 300)
	if b == a || c == a || b == c {
		t.Errorf("placement: place-a on %s, place-b on %s, place-c on %s; want three different devices", a, b, c)
	}
	// 1500m fits only beside place-b or place-c.
	if d := placed("place-d", 1500); d == a {
		t.Errorf("place-d (1500m) went to %s, which has only 1000m left", d)
	}
	// Nothing has 1900m left: the pod is rejected as a kubelet rejects a
	// pod it cannot admit, saying why, so that its controller (if it has
	// one) replaces it where there is room.
	f.Create(f.Pod("place-e", img.ref, cpu(1900)))
	p := f.WaitPod("place-e", 30*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if p.Status.Reason != efv1.ReasonOutOfCPU || !strings.Contains(p.Status.Message, "Insufficient cpu") {
		t.Errorf("place-e: got %s: %q; want %s with Insufficient cpu", p.Status.Reason, p.Status.Message, efv1.ReasonOutOfCPU)
	}
	ev := f.WaitEvent("place-e", efv1.ReasonOutOfCPU, 30*time.Second)
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "0/3 devices are available") {
		t.Errorf("place-e %s event: %s %q", efv1.ReasonOutOfCPU, ev.Type, ev.Message)
	}
	// Freeing place-a's device lets such a pod run there.
	if _, err := f.Kubectl("delete", "pod", "place-a", "--wait=true", "--timeout=30s"); err != nil {
		t.Fatal(err)
	}
	f.Create(f.Pod("place-f", img.ref, cpu(1900)))
	p = f.WaitPod("place-f", 60*time.Second, fabrictest.PodReady)
	if dev := p.Annotations[efv1.AnnotationDevice]; dev != a {
		t.Errorf("place-f went to %s, want %s, freed by place-a", dev, a)
	}
}

// testEnv checks environment from literals, a Secret and a ConfigMap, $(VAR)
// expansion, and command and args replacing the image's entrypoint.
func testEnv(f *fabrictest.Fabric, img image) {
	t := f.T()
	ctx := t.Context()
	if _, err := f.Client.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "env-secret"},
		StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "env-config"},
		Data:       map[string]string{"color": "blue"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Create(f.Pod("env", img.ref, func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Command = []string{"/app/module.wasm", "from-command"}
		c.Args = []string{"$(GREETING)", "second"}
		c.Env = []corev1.EnvVar{
			{Name: "GREETING", Value: "hi there"},
			{Name: "SECRET_VAL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "password",
			}}},
			{Name: "CM_VAL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "env-config"}, Key: "color",
			}}},
			{Name: "COMBINED", Value: "$(GREETING) in $(CM_VAL)"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "PRINT_ENV", Value: "GREETING,SECRET_VAL,CM_VAL,COMBINED,POD_NAME"},
		}
	}))
	f.WaitPod("env", 60*time.Second, fabrictest.PodReady)
	want := []string{
		"hello from env",
		`args: ["from-command" "hi there" "second"]`,
		"GREETING=hi there",
		"SECRET_VAL=s3cret",
		"CM_VAL=blue",
		"COMBINED=hi there in blue",
		"POD_NAME=env",
	}
	out := f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "POD_NAME=") }, "env")
	got := fabrictest.Lines(out)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("logs of env: missing line %q in\n%s", w, out)
		}
	}
}

// testConfigError checks a pod whose ConfigMap is missing: it waits with
// CreateContainerConfigError and starts once the ConfigMap exists.
func testConfigError(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("config-error", img.ref, func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "LATE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "late-config"}, Key: "k",
			}}},
			{Name: "PRINT_ENV", Value: "LATE"},
		}
	}))
	p := f.WaitPod("config-error", 30*time.Second, func(p *corev1.Pod) bool {
		w := app(p).State.Waiting
		return w != nil && w.Reason == reasons.CreateContainerConfigError
	})
	if msg := app(p).State.Waiting.Message; !strings.Contains(msg, "late-config") {
		t.Errorf("CreateContainerConfigError message does not name the ConfigMap: %q", msg)
	}
	if ev := f.WaitEvent("config-error", reasons.Failed, 30*time.Second); ev.Type != corev1.EventTypeWarning {
		t.Errorf("Failed event type %s", ev.Type)
	}
	if _, err := f.Client.CoreV1().ConfigMaps(namespace).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "late-config"},
		Data:       map[string]string{"k": "arrived"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.WaitPod("config-error", 60*time.Second, fabrictest.PodReady)
	f.LogsUntil(30*time.Second, func(s string) bool { return slices.Contains(fabrictest.Lines(s), "LATE=arrived") }, "config-error")
}

// testRestartPolicy runs containers that exit, under each restart policy.
func testRestartPolicy(f *fabrictest.Fabric, img image) {
	t := f.T()
	type want struct {
		phase    corev1.PodPhase
		exitCode int32
		reason   string
		restarts bool // restartCount keeps growing
	}
	cases := []struct {
		name   string
		policy corev1.RestartPolicy
		exit   string
		want   want
	}{
		{"never-fails", corev1.RestartPolicyNever, "3", want{corev1.PodFailed, 3, reasons.Error, false}},
		{"never-succeeds", corev1.RestartPolicyNever, "0", want{corev1.PodSucceeded, 0, reasons.Completed, false}},
		{"onfailure-succeeds", corev1.RestartPolicyOnFailure, "0", want{corev1.PodSucceeded, 0, reasons.Completed, false}},
		{"onfailure-fails", corev1.RestartPolicyOnFailure, "3", want{corev1.PodRunning, 3, reasons.Error, true}},
		{"always-succeeds", corev1.RestartPolicyAlways, "0", want{corev1.PodRunning, 0, reasons.Completed, true}},
	}
	for _, tc := range cases {
		f.Create(f.Pod(tc.name, img.ref, fabrictest.RestartPolicy(tc.policy), fabrictest.Env("COUNT", "1", "INTERVAL", "10ms", "EXIT_CODE", tc.exit)))
	}
	for _, tc := range cases {
		if tc.want.restarts {
			p := f.WaitPod(tc.name, 60*time.Second, func(p *corev1.Pod) bool { return app(p).RestartCount >= 2 })
			last := app(p).LastTerminationState.Terminated
			if p.Status.Phase != tc.want.phase || last == nil || last.ExitCode != tc.want.exitCode || last.Reason != tc.want.reason {
				t.Errorf("%s: got phase %s, lastState %+v; want %s and exit %d (%s)", tc.name, p.Status.Phase, last, tc.want.phase, tc.want.exitCode, tc.want.reason)
			}
			continue
		}
		p := f.WaitPod(tc.name, 60*time.Second, func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		})
		cs := app(p)
		term := cs.State.Terminated
		if p.Status.Phase != tc.want.phase || term == nil || term.ExitCode != tc.want.exitCode || term.Reason != tc.want.reason || cs.RestartCount != 0 {
			t.Errorf("%s: got phase %s, state %+v, restarts %d; want %s, exit %d (%s), no restart", tc.name, p.Status.Phase, cs.State, cs.RestartCount, tc.want.phase, tc.want.exitCode, tc.want.reason)
			continue
		}
		if term.StartedAt.IsZero() || term.FinishedAt.Before(&term.StartedAt) {
			t.Errorf("%s: terminated startedAt %s, finishedAt %s", tc.name, term.StartedAt, term.FinishedAt)
		}
		for _, ct := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
			c := fabrictest.Condition(p, ct)
			wantReason := efv1.ReasonPodCompleted
			if tc.want.phase == corev1.PodFailed {
				wantReason = efv1.ReasonPodFailed
			}
			if c == nil || c.Status != corev1.ConditionFalse || c.Reason != wantReason {
				t.Errorf("%s: condition %s: got %+v, want False %s", tc.name, ct, c, wantReason)
			}
		}
		// A pod that has finished is deleted as quickly as a running one.
		start := time.Now()
		if _, err := f.Kubectl("delete", "pod", tc.name, "--wait=true", "--timeout=30s"); err != nil {
			t.Errorf("delete finished pod %s: %v", tc.name, err)
		} else if d := time.Since(start); d > 10*time.Second {
			t.Errorf("deleting finished pod %s took %s", tc.name, d)
		}
	}
}

// testMemoryLimit checks that the container's memory limit caps the module.
func testMemoryLimit(f *fabrictest.Fabric, img image) {
	t := f.T()
	limit := func(q string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(q)}
		}
	}
	f.Create(f.Pod("mem-oom", img.ref, fabrictest.RestartPolicy(corev1.RestartPolicyNever), limit("64Mi"), fabrictest.Env("ALLOC_MB", "128", "COUNT", "1")))
	f.Create(f.Pod("mem-fits", img.ref, fabrictest.RestartPolicy(corev1.RestartPolicyNever), limit("64Mi"), fabrictest.Env("ALLOC_MB", "16", "COUNT", "1")))

	p := f.WaitPod("mem-oom", 60*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := app(p).State.Terminated; term == nil || term.Reason != reasons.OOMKilled || term.ExitCode != 137 {
		t.Errorf("mem-oom: got state %+v, want terminated OOMKilled with exit code 137", app(p).State)
	}
	p = f.WaitPod("mem-fits", 60*time.Second, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("mem-fits: got phase %s, state %+v; want Succeeded", p.Status.Phase, app(p).State)
	}
	if out, err := f.Kubectl("logs", "mem-fits"); err != nil || !slices.Contains(fabrictest.Lines(out), "allocated 16 MiB") {
		t.Errorf("mem-fits logs: got %q, %v", out, err)
	}
}

// testDelete deletes a running pod with kubectl: it is gone within seconds
// and its workload no longer runs on the device.
func testDelete(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("delete-me", img.ref, fabrictest.Env("INTERVAL", "100ms")))
	p := f.WaitPod("delete-me", 60*time.Second, fabrictest.PodReady)
	lf := f.DeviceOf(p).Logs(p, "app")
	f.WaitFileGrows(lf.Current(0), 0, 10*time.Second)
	// Held open, the log can still be watched once the device removes it.
	logFile, err := os.Open(lf.Current(0))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	size := func() int64 {
		fi, err := logFile.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	start := time.Now()
	if _, err := f.Kubectl("delete", "pod", "delete-me", "--wait=true", "--timeout=30s"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("kubectl delete took %s, want under 10s", d)
	}
	f.WaitPodGone("delete-me", 5*time.Second)
	// The device removes the pod's logs, as a kubelet does, and the
	// container no longer writes them.
	f.WaitLogsRemoved(lf, 5*time.Second)
	before := size()
	time.Sleep(time.Second) // the container printed every 100ms
	if now := size(); now != before {
		t.Errorf("the deleted container still writes: log grew from %d to %d bytes", before, now)
	}
	if ev := f.WaitEvent("delete-me", reasons.Killing, 10*time.Second); ev.Type != corev1.EventTypeNormal {
		t.Errorf("Killing event type %s", ev.Type)
	}
}

// testUnsupported creates pods asking for what edgefabric cannot give: each
// fails at once, saying why in its status and a Warning event, and nothing
// crashes.
func testUnsupported(f *fabrictest.Fabric, img image) {
	t := f.T()
	if _, err := f.Client.NodeV1().RuntimeClasses().Create(t.Context(), &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc",
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, reason, says string
		mutate             func(*corev1.Pod)
	}{
		{"unsupported-hostnetwork", efv1.ReasonHostNetworkUnsupported, "hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true }},
		{"unsupported-privileged", efv1.ReasonPrivilegedUnsupported, "privileged", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: new(true)}
		}},
		{"unsupported-hostpath", efv1.ReasonHostPathUnsupported, "hostPath", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "root", MountPath: "/host"}}
		}},
		{"unsupported-runtimeclass", efv1.ReasonUnknownRuntimeClass, `"gvisor"`, func(p *corev1.Pod) { p.Spec.RuntimeClassName = new("gvisor") }},
	}
	for _, tc := range cases {
		f.Create(f.Pod(tc.name, img.ref, tc.mutate))
	}
	for _, tc := range cases {
		p := f.WaitPod(tc.name, 30*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != tc.reason || !strings.Contains(p.Status.Message, tc.says) {
			t.Errorf("%s: status reason %q message %q; want %s, a message about %s", tc.name, p.Status.Reason, p.Status.Message, tc.reason, tc.says)
		}
		if w := app(p).State.Waiting; w == nil || w.Reason != tc.reason {
			t.Errorf("%s: container state %+v, want waiting %s", tc.name, app(p).State, tc.reason)
		}
		if dev := p.Annotations[efv1.AnnotationDevice]; dev != "" {
			t.Errorf("%s was placed on device %s", tc.name, dev)
		}
		ev := f.WaitEvent(tc.name, tc.reason, 30*time.Second)
		if ev.Type != corev1.EventTypeWarning || ev.Message != p.Status.Message {
			t.Errorf("%s: event %s %q, want Warning %q", tc.name, ev.Type, ev.Message, p.Status.Message)
		}
		// kubectl shows the reason.
		out, err := f.Kubectl("get", "pod", tc.name, "--no-headers")
		if err != nil || !strings.Contains(out, tc.reason) {
			t.Errorf("kubectl get pod %s: got %q, %v; want the reason %s", tc.name, out, err, tc.reason)
		}
	}
	// Such pods are deleted as quickly as others.
	start := time.Now()
	if _, err := f.Kubectl("delete", "pod", cases[0].name, "--wait=true", "--timeout=30s"); err != nil {
		t.Error(err)
	} else if d := time.Since(start); d > 10*time.Second {
		t.Errorf("deleting a failed pod took %s", d)
	}
	f.CheckAlive()
}

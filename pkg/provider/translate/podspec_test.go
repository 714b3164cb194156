package translate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

func TestWorkloadProbes(t *testing.T) {
	tests := []struct {
		name    string
		probe   *corev1.Probe
		want    *hubv1.Probe
		wantErr string
	}{
		{
			name: "httpGet on a named port with defaults",
			probe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz", Port: intstr.FromString("http"), HTTPHeaders: []corev1.HTTPHeader{{Name: "X-A", Value: "1"}},
			}}},
			want: &hubv1.Probe{
				Handler:        &hubv1.Probe_HttpGet{HttpGet: &hubv1.Probe_HTTPGet{Path: "/healthz", Port: 8080, Scheme: "HTTP", Headers: envList("X-A", "1")}},
				TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
			},
		},
		{
			name: "tcpSocket with timings",
			probe: &corev1.Probe{
				ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}},
				InitialDelaySeconds: 2, TimeoutSeconds: 3, PeriodSeconds: 4, SuccessThreshold: 5, FailureThreshold: 6,
				TerminationGracePeriodSeconds: new(int64(7)),
			},
			want: &hubv1.Probe{
				Handler:             &hubv1.Probe_TcpSocket{TcpSocket: &hubv1.Probe_TCPSocket{Port: 9000}},
				InitialDelaySeconds: 2, TimeoutSeconds: 3, PeriodSeconds: 4, SuccessThreshold: 5, FailureThreshold: 6,
				TerminationGraceSeconds: 7,
			},
		},
		{
			name:  "exec",
			probe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ok"}}}},
			want: &hubv1.Probe{
				Handler:        &hubv1.Probe_Exec_{Exec: &hubv1.Probe_Exec{Command: []string{"cat", "/tmp/ok"}}},
				TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
			},
		},
		{
			name:  "grpc",
			probe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 50051, Service: new("svc")}}},
			want: &hubv1.Probe{
				Handler:        &hubv1.Probe_Grpc{Grpc: &hubv1.Probe_GRPC{Port: 50051, Service: "svc"}},
				TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
			},
		},
		{
			name:    "unknown named port",
			probe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}},
			wantErr: `no container port named "nope"`,
		},
		{
			name:    "no handler",
			probe:   &corev1.Probe{},
			wantErr: "no handler",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
			pod.Spec.Containers[0].LivenessProbe = tt.probe
			pod.Spec.Containers[0].ReadinessProbe = tt.probe
			pod.Spec.Containers[0].StartupProbe = tt.probe
			w, err := Workload(pod, newSource(), "10.0.0.7")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Workload: got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Workload: %v", err)
			}
			c := w.GetContainers()[0]
			for kind, got := range map[string]*hubv1.Probe{"liveness": c.GetLivenessProbe(), "readiness": c.GetReadinessProbe(), "startup": c.GetStartupProbe()} {
				if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
					t.Errorf("%s probe (-want +got):\n%s", kind, diff)
				}
			}
		})
	}
}

func TestWorkloadInitContainers(t *testing.T) {
	pod := testPod()
	pod.Spec.InitContainers = []corev1.Container{
		{Name: "migrate", Image: "registry.example/migrate:1", Args: []string{"up"}},
		{Name: "proxy", Image: "registry.example/proxy:1", RestartPolicy: new(corev1.ContainerRestartPolicyAlways)},
	}
	w, err := Workload(pod, newSource(), "10.0.0.7")
	if err != nil {
		t.Fatalf("Workload: %v", err)
	}
	want := []*hubv1.Container{
		{Name: "migrate", Image: "registry.example/migrate:1", Args: []string{"up"}, ImagePullPolicy: "IfNotPresent"},
		{Name: "proxy", Image: "registry.example/proxy:1", ImagePullPolicy: "IfNotPresent", RestartPolicy: "Always"},
	}
	if diff := cmp.Diff(want, w.GetInitContainers(), protocmp.Transform()); diff != "" {
		t.Errorf("init containers (-want +got):\n%s", diff)
	}

	plain, err := Workload(testPod(), newSource(), "10.0.0.7")
	if err != nil {
		t.Fatalf("Workload: %v", err)
	}
	if w.GetSpecHash() == plain.GetSpecHash() {
		t.Errorf("spec hash: init containers did not change it (%s)", w.GetSpecHash())
	}
}

func TestWorkloadVolumes(t *testing.T) {
	src := newSource()
	src.configMaps["shop/site"] = &corev1.ConfigMap{
		Data:       map[string]string{"index.html": "<h1>hi</h1>", "app.conf": "a=1"},
		BinaryData: map[string][]byte{"logo.bin": {0, 1, 2}},
	}
	tests := []struct {
		name    string
		volume  corev1.VolumeSource
		want    *hubv1.Volume
		wantErr string
	}{
		{
			name:   "emptyDir in memory",
			volume: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}},
			want:   &hubv1.Volume{Name: "v", Kind: "emptyDir", Memory: true},
		},
		{
			name:   "configMap with every key",
			volume: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "site"}}},
			want: &hubv1.Volume{Name: "v", Kind: "configMap", Files: []*hubv1.VolumeFile{
				{Path: "app.conf", Data: []byte("a=1"), Mode: 0o644},
				{Path: "index.html", Data: []byte("<h1>hi</h1>"), Mode: 0o644},
				{Path: "logo.bin", Data: []byte{0, 1, 2}, Mode: 0o644},
			}},
		},
		{
			name: "configMap items, defaultMode and item mode",
			volume: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "site"},
				DefaultMode:          new(int32(0o600)),
				Items:                []corev1.KeyToPath{{Key: "app.conf", Path: "conf/app.conf"}, {Key: "index.html", Path: "www/index.html", Mode: new(int32(0o444))}},
			}},
			want: &hubv1.Volume{Name: "v", Kind: "configMap", Files: []*hubv1.VolumeFile{
				{Path: "conf/app.conf", Data: []byte("a=1"), Mode: 0o600},
				{Path: "www/index.html", Data: []byte("<h1>hi</h1>"), Mode: 0o444},
			}},
		},
		{
			name:   "missing optional configMap is empty",
			volume: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: new(true)}},
			want:   &hubv1.Volume{Name: "v", Kind: "configMap"},
		},
		{
			name:    "missing configMap",
			volume:  corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}},
			wantErr: `volume "v": configmap shop/nope: configmaps "nope" not found`,
		},
		{
			name: "item path leaving the volume",
			volume: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "site"},
				Items:                []corev1.KeyToPath{{Key: "app.conf", Path: "../etc/passwd"}},
			}},
			wantErr: "not a relative path inside the volume",
		},
		{
			name:   "secret is sensitive",
			volume: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", Items: []corev1.KeyToPath{{Key: "user", Path: "user"}}}},
			want: &hubv1.Volume{Name: "v", Kind: "secret", Sensitive: true, Files: []*hubv1.VolumeFile{
				{Path: "user", Data: []byte("admin"), Mode: 0o644},
			}},
		},
		{
			name: "downwardAPI",
			volume: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			}}},
			want: &hubv1.Volume{Name: "v", Kind: "downwardAPI", Files: []*hubv1.VolumeFile{
				{Path: "labels", Data: []byte("app=\"web\"\ntier=\"front\""), Mode: 0o644},
				{Path: "name", Data: []byte("web"), Mode: 0o644},
			}},
		},
		{
			name: "projected configMap, secret and downwardAPI",
			volume: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "mode", Path: "mode"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Items: []corev1.KeyToPath{{Key: "user", Path: "user"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			}}},
			want: &hubv1.Volume{Name: "v", Kind: "projected", Sensitive: true, Files: []*hubv1.VolumeFile{
				{Path: "mode", Data: []byte("fast"), Mode: 0o644},
				{Path: "ns", Data: []byte("shop"), Mode: 0o644},
				{Path: "user", Data: []byte("admin"), Mode: 0o644},
			}},
		},
		{
			name:   "kube-api-access skips what does not resolve",
			volume: kubeAPIAccess.VolumeSource,
			want:   &hubv1.Volume{Name: "v", Kind: "projected"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: tt.volume}, {Name: "unmounted", VolumeSource: tt.volume}}
			pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/data/", ReadOnly: true}}
			w, err := Workload(pod, src, "10.0.0.7")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Workload: got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Workload: %v", err)
			}
			if diff := cmp.Diff([]*hubv1.Volume{tt.want}, w.GetVolumes(), protocmp.Transform()); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
			wantMounts := []*hubv1.VolumeMount{{Name: "v", MountPath: "/data", ReadOnly: true}}
			if diff := cmp.Diff(wantMounts, w.GetContainers()[0].GetVolumeMounts(), protocmp.Transform()); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWorkloadVolumeUpdate: a change of a mounted config map's data changes
// the volumes hash but not the spec hash, so the device swaps files without
// restarting the container.
func TestWorkloadVolumeUpdate(t *testing.T) {
	src := newSource()
	pod := testPod()
	pod.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}}
	before, err := Workload(pod, src, "10.0.0.7")
	if err != nil {
		t.Fatalf("Workload: %v", err)
	}
	src.configMaps["shop/cfg"] = &corev1.ConfigMap{Data: map[string]string{"mode": "slow"}}
	after, err := Workload(pod, src, "10.0.0.7")
	if err != nil {
		t.Fatalf("Workload: %v", err)
	}
	if before.GetSpecHash() != after.GetSpecHash() {
		t.Errorf("spec hash: got %s then %s, want it unchanged", before.GetSpecHash(), after.GetSpecHash())
	}
	if before.GetVolumesHash() == after.GetVolumesHash() || after.GetVolumesHash() == "" {
		t.Errorf("volumes hash: got %q then %q, want a change", before.GetVolumesHash(), after.GetVolumesHash())
	}
}

func TestWorkloadVolumeMountErrors(t *testing.T) {
	tests := []struct {
		name    string
		mount   corev1.VolumeMount
		wantErr string
	}{
		{name: "unknown volume", mount: corev1.VolumeMount{Name: "nope", MountPath: "/x"}, wantErr: `mounts volume "nope", which the pod does not define`},
		{name: "relative mount path", mount: corev1.VolumeMount{Name: "v", MountPath: "x"}, wantErr: "not an absolute path"},
		{name: "subPath leaving the volume", mount: corev1.VolumeMount{Name: "v", MountPath: "/x", SubPath: "../.."}, wantErr: "leaves the volume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{tt.mount}
			_, err := Workload(pod, newSource(), "10.0.0.7")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Workload: got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWorkloadRuntime(t *testing.T) {
	tests := []struct {
		name        string
		class       *string
		wantRuntime string
		wantAuto    bool
	}{
		{name: "unset: wasm, the image may choose", wantRuntime: RuntimeWASM, wantAuto: true},
		{name: "wasm class", class: new(RuntimeClassWASM), wantRuntime: RuntimeWASM},
		{name: "process class", class: new(RuntimeClassProcess), wantRuntime: RuntimeProcess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.RuntimeClassName = tt.class
			w, err := Workload(pod, newSource(), "10.0.0.7")
			if err != nil {
				t.Fatalf("Workload: %v", err)
			}
			if w.GetRuntime() != tt.wantRuntime || w.GetRuntimeAuto() != tt.wantAuto {
				t.Errorf("runtime: got (%q, auto %v), want (%q, auto %v)", w.GetRuntime(), w.GetRuntimeAuto(), tt.wantRuntime, tt.wantAuto)
			}
		})
	}
}

func TestPodStatusInitContainers(t *testing.T) {
	initPod := func(policy corev1.RestartPolicy) *corev1.Pod {
		p := testPod()
		p.Spec.RestartPolicy = policy
		p.Spec.InitContainers = []corev1.Container{
			{Name: "migrate", Image: "registry.example/migrate:1"},
			{Name: "proxy", Image: "registry.example/proxy:1", RestartPolicy: new(corev1.ContainerRestartPolicyAlways)},
		}
		return p
	}
	running := &hubv1.ContainerStatus{Name: "proxy", State: runningState(started), Started: true, Ready: true}
	tests := []struct {
		name            string
		pod             *corev1.Pod
		inits, apps     []*hubv1.ContainerStatus
		wantPhase       corev1.PodPhase
		wantInitialized corev1.ConditionStatus
		wantInitMsg     string
		wantAppWaiting  string // reason of the app container's waiting state; "" if not waiting
	}{
		{
			name:            "first init container running",
			pod:             initPod(corev1.RestartPolicyAlways),
			inits:           []*hubv1.ContainerStatus{{Name: "migrate", State: runningState(started)}},
			wantPhase:       corev1.PodPending,
			wantInitialized: corev1.ConditionFalse,
			wantInitMsg:     "containers with incomplete status: [migrate proxy]",
			wantAppWaiting:  reasons.PodInitializing,
		},
		{
			name: "init container crash looping",
			pod:  initPod(corev1.RestartPolicyAlways),
			inits: []*hubv1.ContainerStatus{{
				Name: "migrate", State: waitingState(reasons.CrashLoopBackOff, "back-off"), LastState: terminatedState(1, reasons.Error), RestartCount: 2,
			}},
			wantPhase:       corev1.PodPending,
			wantInitialized: corev1.ConditionFalse,
			wantInitMsg:     "containers with incomplete status: [migrate proxy]",
			wantAppWaiting:  reasons.PodInitializing,
		},
		{
			name:            "init container failed under Never",
			pod:             initPod(corev1.RestartPolicyNever),
			inits:           []*hubv1.ContainerStatus{{Name: "migrate", State: terminatedState(3, reasons.Error)}},
			wantPhase:       corev1.PodFailed,
			wantInitialized: corev1.ConditionFalse,
			wantInitMsg:     "containers with incomplete status: [migrate proxy]",
			wantAppWaiting:  reasons.PodInitializing,
		},
		{
			name:            "init done, sidecar started, app running",
			pod:             initPod(corev1.RestartPolicyAlways),
			inits:           []*hubv1.ContainerStatus{{Name: "migrate", State: terminatedState(0, reasons.Completed)}, running},
			apps:            []*hubv1.ContainerStatus{{Name: "app", State: runningState(started), Ready: true, Started: true}},
			wantPhase:       corev1.PodRunning,
			wantInitialized: corev1.ConditionTrue,
		},
		{
			name:            "sidecar not started yet",
			pod:             initPod(corev1.RestartPolicyAlways),
			inits:           []*hubv1.ContainerStatus{{Name: "migrate", State: terminatedState(0, reasons.Completed)}, {Name: "proxy", State: waitingState(reasons.ContainerCreating, "")}},
			wantPhase:       corev1.PodPending,
			wantInitialized: corev1.ConditionFalse,
			wantInitMsg:     "containers with incomplete status: [proxy]",
			wantAppWaiting:  reasons.PodInitializing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := &hubv1.WorkloadStatus{Uid: "uid-1", InitContainers: tt.inits, Containers: tt.apps}
			got := PodStatus(tt.pod, ws, "10.0.0.7", now)
			if got.Phase != tt.wantPhase {
				t.Errorf("phase: got %s, want %s", got.Phase, tt.wantPhase)
			}
			if len(got.InitContainerStatuses) != 2 {
				t.Fatalf("initContainerStatuses: got %d, want 2", len(got.InitContainerStatuses))
			}
			for _, c := range got.Conditions {
				if c.Type == corev1.PodInitialized && (c.Status != tt.wantInitialized || c.Message != tt.wantInitMsg) {
					t.Errorf("Initialized: got (%s, %q), want (%s, %q)", c.Status, c.Message, tt.wantInitialized, tt.wantInitMsg)
				}
			}
			app := got.ContainerStatuses[0]
			gotWaiting := ""
			if app.State.Waiting != nil {
				gotWaiting = app.State.Waiting.Reason
			}
			if gotWaiting != tt.wantAppWaiting {
				t.Errorf("app container waiting reason: got %q, want %q", gotWaiting, tt.wantAppWaiting)
			}
		})
	}
}

func TestPodStatusStartupProbe(t *testing.T) {
	pod := testPod()
	pod.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
	tests := []struct {
		name               string
		started, ready     bool
		wantStarted, wantR bool
	}{
		{name: "startup probe not passed", started: false, ready: true, wantStarted: false, wantR: false},
		{name: "startup probe passed", started: true, ready: true, wantStarted: true, wantR: true},
		{name: "started, not ready", started: true, ready: false, wantStarted: true, wantR: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := &hubv1.WorkloadStatus{Containers: []*hubv1.ContainerStatus{{Name: "app", State: runningState(started), Started: tt.started, Ready: tt.ready}}}
			got := PodStatus(pod, ws, "10.0.0.7", now).ContainerStatuses[0]
			if *got.Started != tt.wantStarted || got.Ready != tt.wantR {
				t.Errorf("got started %v ready %v, want started %v ready %v", *got.Started, got.Ready, tt.wantStarted, tt.wantR)
			}
		})
	}
}

func TestWorkloadUser(t *testing.T) {
	tests := []struct {
		name          string
		ctr           *corev1.SecurityContext
		podSC         *corev1.PodSecurityContext
		wantUID       *int64
		wantGID       *int64
		wantNonRoot   bool
		wantSameAsNil bool // the spec hash is that of a pod without any
	}{
		{name: "unset", wantSameAsNil: true},
		{name: "pod level", podSC: &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(2000)), RunAsNonRoot: new(true)}, wantUID: new(int64(1000)), wantGID: new(int64(2000)), wantNonRoot: true},
		{name: "container over pod", podSC: &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsNonRoot: new(true)}, ctr: &corev1.SecurityContext{RunAsUser: new(int64(0)), RunAsNonRoot: new(false)}, wantUID: new(int64(0))},
	}
	base, err := Workload(testPod(), newSource(), "10.0.0.7")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.SecurityContext = tt.podSC
			pod.Spec.Containers[0].SecurityContext = tt.ctr
			w, err := Workload(pod, newSource(), "10.0.0.7")
			if err != nil {
				t.Fatalf("Workload: %v", err)
			}
			c := w.GetContainers()[0]
			if diff := cmp.Diff([]any{tt.wantUID, tt.wantGID, tt.wantNonRoot}, []any{c.RunAsUser, c.RunAsGroup, c.GetRunAsNonRoot()}); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
			if same := w.GetSpecHash() == base.GetSpecHash(); same != tt.wantSameAsNil {
				t.Errorf("spec hash same as without a securityContext: got %v, want %v", same, tt.wantSameAsNil)
			}
		})
	}
}

// TestWorkloadSecurity: the rest of a container's securityContext reaches
// the device, which enforces it, and changes the spec hash; a
// securityContext that asks nothing of it leaves the hash alone.
func TestWorkloadSecurity(t *testing.T) {
	tests := []struct {
		name          string
		ctr           *corev1.SecurityContext
		want          []any // add, drop, readOnlyRoot, privileged, allowPrivilegeEscalation
		wantSameAsNil bool
	}{
		{name: "empty", ctr: &corev1.SecurityContext{}, want: []any{[]string(nil), []string(nil), false, false, (*bool)(nil)}, wantSameAsNil: true},
		{
			name: "capabilities and read-only root",
			ctr: &corev1.SecurityContext{
				// Adds are refused by Validate today (see validate.go).
				Capabilities:           &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				ReadOnlyRootFilesystem: new(true), AllowPrivilegeEscalation: new(false),
			},
			want: []any{[]string(nil), []string{"ALL"}, true, false, new(false)},
		},
	}
	base, err := Workload(testPod(), newSource(), "10.0.0.7")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Containers[0].SecurityContext = tt.ctr
			w, err := Workload(pod, newSource(), "10.0.0.7")
			if err != nil {
				t.Fatalf("Workload: %v", err)
			}
			c := w.GetContainers()[0]
			got := []any{c.GetCapabilitiesAdd(), c.GetCapabilitiesDrop(), c.GetReadOnlyRootFilesystem(), c.GetPrivileged(), c.AllowPrivilegeEscalation}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("security (-want +got):\n%s", diff)
			}
			if same := w.GetSpecHash() == base.GetSpecHash(); same != tt.wantSameAsNil {
				t.Errorf("spec hash same as without a securityContext: got %v, want %v", same, tt.wantSameAsNil)
			}
		})
	}
}

package translate

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// FuzzTranslate builds a pod from arbitrary JSON, as anyone who may create
// pods can write it, with a config map and a secret it may refer to, and
// runs it through Validate, Workload and PodStatus: none may panic.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"p","namespace":"default","uid":"u"},"spec":{"containers":[{"name":"app","image":"example/app:1"}]}}`))
	f.Add([]byte(`{"metadata":{"name":"p","namespace":"default"},"spec":{"runtimeClassName":"wasm","initContainers":[{"name":"i","image":"x","restartPolicy":"Always"}],` +
		`"containers":[{"name":"app","image":"x","command":["$(A)"],"args":["$(B"],"env":[{"name":"A","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}},` +
		`{"name":"B","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},{"name":"C","valueFrom":{"resourceFieldRef":{"resource":"limits.memory","divisor":"0"}}}],` +
		`"envFrom":[{"configMapRef":{"name":"c"},"prefix":"P_"}],"resources":{"limits":{"memory":"9Ei","cpu":"-1"}},"ports":[{"containerPort":99999}],` +
		`"volumeMounts":[{"name":"v","mountPath":"/v","subPath":"../x"}]}],"volumes":[{"name":"v","secret":{"secretName":"s","items":[{"key":"k","path":"../../etc"}]}},` +
		`{"name":"d","downwardAPI":{"items":[{"path":"l","fieldRef":{"fieldPath":"metadata.labels"}}]}},{"name":"e","emptyDir":{"sizeLimit":"-5"}}]}}`))
	f.Add([]byte(`{"spec":{"containers":[{}],"volumes":[{"name":"p","projected":{"sources":[{"secret":{"name":"s"}},{"configMap":{"name":"c"}},{"serviceAccountToken":{"path":"t"}}]}}]}}`))
	f.Add([]byte(`{}`))
	src := &fakeSource{
		configMaps: map[string]*corev1.ConfigMap{"default/c": {Data: map[string]string{"a": "1", "../b": "2"}, BinaryData: map[string][]byte{"bin": {0, 1}}}},
		secrets:    map[string]*corev1.Secret{"default/s": {Data: map[string][]byte{"k": []byte("v"), "": nil}}},
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var pod corev1.Pod
		if json.Unmarshal(data, &pod) != nil {
			return
		}
		_ = Validate(&pod)
		w, err := Workload(&pod, src, "10.0.0.2")
		if err == nil && w == nil {
			t.Fatal("Workload returned neither a workload nor an error")
		}
		st := &hubv1.WorkloadStatus{Uid: string(pod.UID), Phase: "Running", Containers: []*hubv1.ContainerStatus{{Name: "app", Ready: true}}}
		_ = PodStatus(&pod, st, "10.0.0.2", now)
		_ = PodStatus(&pod, nil, "", now)
		_ = PendingStatus(&pod, "Reason", "message", now)
		_ = FailedStatus(&pod, "Reason", "message", now)
	})
}

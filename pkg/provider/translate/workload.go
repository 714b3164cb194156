package translate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// defaultTerminationGracePeriodSeconds is the grace period of a pod that does
// not set terminationGracePeriodSeconds, as in Kubernetes.
const defaultTerminationGracePeriodSeconds = 30

// EnvSource looks up the objects that environment variables refer to. The
// provider backs it with listers.
//
// Implementations return an error for which apierrors.IsNotFound is true when
// the object does not exist; optional references to missing objects are then
// skipped. Returned objects may be shared with a cache: Workload only reads them.
type EnvSource interface {
	ConfigMap(namespace, name string) (*corev1.ConfigMap, error)
	Secret(namespace, name string) (*corev1.Secret, error)
}

// Workload translates pod into the workload sent to the device whose address
// is deviceIP (the pod's host and pod IP). It validates pod first and returns
// Validate's *UnsupportedError if the pod cannot run.
//
// Environment variables resolve as the kubelet resolves them: envFrom first
// (keys of each source in sorted order, prefix applied), then env in order,
// a later definition of a name replacing the value of an earlier one in its
// place. Literal values, command and args expand $(VAR) references. References
// to missing config maps, secrets or keys are skipped when optional and are
// errors otherwise; source errors are wrapped, so apierrors.IsNotFound works
// on the result. Service links are not injected: devices have no cluster
// services.
//
// A resourceFieldRef to a limit the container does not set resolves to 0,
// where the kubelet would use the node's allocatable capacity.
func Workload(pod *corev1.Pod, env EnvSource, deviceIP string) (*hubv1.Workload, error) {
	if err := Validate(pod); err != nil {
		return nil, err
	}
	runtime, err := Runtime(pod)
	if err != nil {
		return nil, err
	}

	r := &resolver{
		pod:        pod,
		source:     env,
		deviceIP:   deviceIP,
		configMaps: make(map[string]lookup[*corev1.ConfigMap]),
		secrets:    make(map[string]lookup[*corev1.Secret]),
	}
	podVolumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		podVolumes[v.Name] = true
	}
	containers := make([]*hubv1.Container, 0, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		c, err := r.container(&pod.Spec.Containers[i], podVolumes)
		if err != nil {
			return nil, err
		}
		containers = append(containers, c)
	}
	var inits []*hubv1.Container
	for i := range pod.Spec.InitContainers {
		c, err := r.container(&pod.Spec.InitContainers[i], podVolumes)
		if err != nil {
			return nil, err
		}
		if p := pod.Spec.InitContainers[i].RestartPolicy; p != nil {
			c.RestartPolicy = string(*p)
		}
		inits = append(inits, c)
	}
	volumes, err := r.volumes()
	if err != nil {
		return nil, err
	}

	restartPolicy := pod.Spec.RestartPolicy
	if restartPolicy == "" {
		restartPolicy = corev1.RestartPolicyAlways
	}
	grace := int64(defaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}

	w := &hubv1.Workload{
		Uid:                     string(pod.UID),
		Namespace:               pod.Namespace,
		Name:                    pod.Name,
		Runtime:                 runtime,
		RestartPolicy:           string(restartPolicy),
		Containers:              containers,
		TerminationGraceSeconds: grace,
		InitContainers:          inits,
		Volumes:                 volumes,
		RuntimeAuto:             RuntimeAuto(pod),
	}
	// Validated above. The effective device-loss grace that goes with it
	// is the caller's to fill in (it may be the provider's default).
	w.FenceOnPartition, _ = FenceOnPartition(pod)
	w.SpecHash = specHash(w)
	w.VolumesHash = volumesHash(volumes)
	if n := proto.Size(w); n > hubv1.MaxDesiredPartBytes {
		return nil, fmt.Errorf("the pod is %d MiB with its configMap and secret volumes, more than the %d MiB a device is sent one workload in",
			n>>20, hubv1.MaxDesiredPartBytes>>20)
	}
	return w, nil
}

// imagePullPolicy returns policy, or if it is empty the policy Kubernetes
// defaults to for image: Always for the tag latest or no tag and no digest,
// IfNotPresent otherwise.
func imagePullPolicy(image string, policy corev1.PullPolicy) corev1.PullPolicy {
	if policy != "" {
		return policy
	}
	name, _, hasDigest := strings.Cut(image, "@")
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i+1:], "/") {
		tag = name[i+1:]
	}
	if tag == "latest" || (tag == "" && !hasDigest) {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// specHash returns the hash of what decides how w runs: its runtime, restart
// policy and containers with their resolved environment. It is the first 16
// hex digits of a SHA-256 over a fixed encoding of those fields, so it stays
// the same across releases unless that encoding is deliberately changed.
// Identity (uid, namespace, name), the grace period and the hash itself are
// not part of it.
func specHash(w *hubv1.Workload) string {
	h := hashWriter{sha256.New()}
	h.string("edgefabric.io/workload-spec/v1")
	h.string(w.GetRuntime())
	h.string(w.GetRestartPolicy())
	h.int(int64(len(w.GetContainers())))
	for _, c := range w.GetContainers() {
		h.container(c)
	}
	h.podFields(w)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (h hashWriter) container(c *hubv1.Container) {
	h.string(c.GetName())
	h.string(c.GetImage())
	h.strings(c.GetCommand())
	h.strings(c.GetArgs())
	h.int(int64(len(c.GetEnv())))
	for _, e := range c.GetEnv() {
		h.string(e.GetName())
		h.string(e.GetValue())
	}
	h.string(c.GetWorkingDir())
	h.int(c.GetMemoryLimitBytes())
	h.int(c.GetCpuLimitMillis())
	h.int(c.GetMemoryRequestBytes())
	h.int(c.GetCpuRequestMillis())
	h.string(c.GetImagePullPolicy())
	// Tunnel fields, hashed only when set so that the hash of a container
	// without them is what it was before they existed.
	if len(c.GetPorts()) > 0 || c.GetStdin() || c.GetStdinOnce() || c.GetTty() {
		h.string("tunnel")
		h.int(int64(len(c.GetPorts())))
		for _, p := range c.GetPorts() {
			h.string(p.GetName())
			h.int(int64(p.GetContainerPort()))
			h.string(p.GetProtocol())
		}
		h.bool(c.GetStdin())
		h.bool(c.GetStdinOnce())
		h.bool(c.GetTty())
	}
}

// hashWriter writes length-prefixed fields, so that no two different
// sequences of fields encode the same.
type hashWriter struct{ hash.Hash }

func (h hashWriter) int(v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}

func (h hashWriter) string(s string) {
	h.int(int64(len(s)))
	h.Write([]byte(s))
}

func (h hashWriter) strings(ss []string) {
	h.int(int64(len(ss)))
	for _, s := range ss {
		h.string(s)
	}
}

// lookup is the remembered result of one EnvSource call, so that every
// container of a pod sees the same object.
type lookup[T any] struct {
	obj T
	err error
}

// resolver resolves the environment of the containers of one pod.
type resolver struct {
	pod        *corev1.Pod
	source     EnvSource
	deviceIP   string
	configMaps map[string]lookup[*corev1.ConfigMap]
	secrets    map[string]lookup[*corev1.Secret]
}

func (r *resolver) configMap(name string) (*corev1.ConfigMap, error) {
	l, ok := r.configMaps[name]
	if !ok {
		if r.source == nil {
			l.err = fmt.Errorf("get configmap %s/%s: no EnvSource", r.pod.Namespace, name)
		} else {
			l.obj, l.err = r.source.ConfigMap(r.pod.Namespace, name)
		}
		r.configMaps[name] = l
	}
	return l.obj, l.err
}

func (r *resolver) secret(name string) (*corev1.Secret, error) {
	l, ok := r.secrets[name]
	if !ok {
		if r.source == nil {
			l.err = fmt.Errorf("get secret %s/%s: no EnvSource", r.pod.Namespace, name)
		} else {
			l.obj, l.err = r.source.Secret(r.pod.Namespace, name)
		}
		r.secrets[name] = l
	}
	return l.obj, l.err
}

func (r *resolver) container(c *corev1.Container, podVolumes map[string]bool) (*hubv1.Container, error) {
	env, err := r.env(c)
	if err != nil {
		return nil, err
	}
	mapping := mappingFor(env.values)
	expandAll := func(in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = expand(s, mapping)
		}
		return out
	}
	out := &hubv1.Container{
		Name:               c.Name,
		Image:              c.Image,
		Command:            expandAll(c.Command),
		Args:               expandAll(c.Args),
		Env:                env.list(),
		WorkingDir:         c.WorkingDir,
		MemoryLimitBytes:   c.Resources.Limits.Memory().Value(),
		CpuLimitMillis:     c.Resources.Limits.Cpu().MilliValue(),
		MemoryRequestBytes: c.Resources.Requests.Memory().Value(),
		CpuRequestMillis:   c.Resources.Requests.Cpu().MilliValue(),
		ImagePullPolicy:    string(imagePullPolicy(c.Image, c.ImagePullPolicy)),
		Ports:              ports(c.Ports),
		Stdin:              c.Stdin,
		StdinOnce:          c.StdinOnce,
		Tty:                c.TTY,
	}
	if out.LivenessProbe, err = probe(c, "liveness", c.LivenessProbe); err != nil {
		return nil, err
	}
	if out.ReadinessProbe, err = probe(c, "readiness", c.ReadinessProbe); err != nil {
		return nil, err
	}
	if out.StartupProbe, err = probe(c, "startup", c.StartupProbe); err != nil {
		return nil, err
	}
	if out.VolumeMounts, err = volumeMounts(c, podVolumes); err != nil {
		return nil, err
	}
	out.RunAsUser, out.RunAsGroup, out.RunAsNonRoot = r.user(c)
	security(out, c.SecurityContext)
	return out, nil
}

// security copies the rest of the container's securityContext, which the
// device enforces or refuses with a reason.
func security(out *hubv1.Container, sc *corev1.SecurityContext) {
	if sc == nil {
		return
	}
	if caps := sc.Capabilities; caps != nil {
		for _, c := range caps.Add {
			out.CapabilitiesAdd = append(out.CapabilitiesAdd, string(c))
		}
		for _, c := range caps.Drop {
			out.CapabilitiesDrop = append(out.CapabilitiesDrop, string(c))
		}
	}
	out.ReadOnlyRootFilesystem = optional(sc.ReadOnlyRootFilesystem)
	out.Privileged = optional(sc.Privileged)
	out.AllowPrivilegeEscalation = sc.AllowPrivilegeEscalation
}

// user is the container's runAsUser, runAsGroup and runAsNonRoot: its own
// securityContext's, else the pod's.
func (r *resolver) user(c *corev1.Container) (uid, gid *int64, nonRoot bool) {
	if psc := r.pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
		nonRoot = optional(psc.RunAsNonRoot)
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
	}
	return uid, gid, nonRoot
}

// ports are the container's TCP ports (the ones the device serves).
func ports(ps []corev1.ContainerPort) []*hubv1.ContainerPort {
	var out []*hubv1.ContainerPort
	for _, p := range ps {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		if proto != string(corev1.ProtocolTCP) {
			continue
		}
		out = append(out, &hubv1.ContainerPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: proto})
	}
	return out
}

// envVars is an environment in definition order; redefining a name changes
// its value in place.
type envVars struct {
	names  []string
	values map[string]string
}

func (e *envVars) set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *envVars) list() []*hubv1.EnvVar {
	if len(e.names) == 0 {
		return nil
	}
	out := make([]*hubv1.EnvVar, len(e.names))
	for i, n := range e.names {
		out[i] = &hubv1.EnvVar{Name: n, Value: e.values[n]}
	}
	return out
}

func optional(b *bool) bool { return b != nil && *b }

func (r *resolver) env(c *corev1.Container) (*envVars, error) {
	ns := r.pod.Namespace
	env := &envVars{values: make(map[string]string)}

	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			ref := from.ConfigMapRef
			cm, err := r.configMap(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %q envFrom configmap %s/%s: %w", c.Name, ns, ref.Name, err)
			}
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				env.set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			ref := from.SecretRef
			s, err := r.secret(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %q envFrom secret %s/%s: %w", c.Name, ns, ref.Name, err)
			}
			for _, k := range slices.Sorted(maps.Keys(s.Data)) {
				env.set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}

	mapping := mappingFor(env.values)
	for _, e := range c.Env {
		var value string
		switch {
		case e.Value != "":
			value = expand(e.Value, mapping)
		case e.ValueFrom == nil:
			// An empty literal value.
		case e.ValueFrom.FieldRef != nil:
			v, err := r.fieldRef(e.ValueFrom.FieldRef)
			if err != nil {
				return nil, fmt.Errorf("container %q env %s: %w", c.Name, e.Name, err)
			}
			value = v
		case e.ValueFrom.ResourceFieldRef != nil:
			v, err := r.resourceFieldRef(c, e.ValueFrom.ResourceFieldRef)
			if err != nil {
				return nil, fmt.Errorf("container %q env %s: %w", c.Name, e.Name, err)
			}
			value = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := r.configMap(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %q env %s: configmap %s/%s key %q: %w", c.Name, e.Name, ns, ref.Name, ref.Key, err)
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %q env %s: configmap %s/%s has no key %q", c.Name, e.Name, ns, ref.Name, ref.Key)
			}
			value = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := r.secret(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %q env %s: secret %s/%s key %q: %w", c.Name, e.Name, ns, ref.Name, ref.Key, err)
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %q env %s: secret %s/%s has no key %q", c.Name, e.Name, ns, ref.Name, ref.Key)
			}
			value = string(v)
		default:
			return nil, fmt.Errorf("container %q env %s: unsupported valueFrom", c.Name, e.Name)
		}
		env.set(e.Name, value)
	}
	return env, nil
}

// fieldRef resolves a downward API field of the pod, like the kubelet.
func (r *resolver) fieldRef(f *corev1.ObjectFieldSelector) (string, error) {
	if f.APIVersion != "" && f.APIVersion != "v1" {
		return "", fmt.Errorf("fieldRef %s: unsupported apiVersion %q", f.FieldPath, f.APIVersion)
	}
	pod := r.pod
	if path, key, ok := splitSubscript(f.FieldPath); ok {
		switch path {
		case "metadata.labels":
			return pod.Labels[key], nil
		case "metadata.annotations":
			return pod.Annotations[key], nil
		}
		return "", fmt.Errorf("fieldRef %s: field does not support a subscript", f.FieldPath)
	}
	switch f.FieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
		return r.deviceIP, nil
	}
	return "", fmt.Errorf("fieldRef %s: unsupported fieldPath", f.FieldPath)
}

// splitSubscript splits "metadata.labels['key']" into "metadata.labels" and "key".
func splitSubscript(fieldPath string) (path, key string, ok bool) {
	s, found := strings.CutSuffix(fieldPath, "']")
	if !found {
		return "", "", false
	}
	path, key, found = strings.Cut(s, "['")
	if !found || path == "" {
		return "", "", false
	}
	return path, key, true
}

// formatMap formats labels or annotations as the downward API does: sorted
// key="quoted value" lines.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	return b.String()
}

// resourceFieldRef resolves a container resource, rounded up to a whole
// number of divisors, like the kubelet.
func (r *resolver) resourceFieldRef(self *corev1.Container, f *corev1.ResourceFieldSelector) (string, error) {
	c := self
	if f.ContainerName != "" && f.ContainerName != self.Name {
		c = nil
		for i := range r.pod.Spec.Containers {
			if r.pod.Spec.Containers[i].Name == f.ContainerName {
				c = &r.pod.Spec.Containers[i]
				break
			}
		}
		if c == nil {
			return "", fmt.Errorf("resourceFieldRef %s: no container %q", f.Resource, f.ContainerName)
		}
	}
	divisor := f.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q *resource.Quantity
	cpu := false
	switch f.Resource {
	case "limits.cpu":
		q, cpu = c.Resources.Limits.Cpu(), true
	case "requests.cpu":
		q, cpu = c.Resources.Requests.Cpu(), true
	case "limits.memory":
		q = c.Resources.Limits.Memory()
	case "requests.memory":
		q = c.Resources.Requests.Memory()
	case "limits.ephemeral-storage":
		q = c.Resources.Limits.StorageEphemeral()
	case "requests.ephemeral-storage":
		q = c.Resources.Requests.StorageEphemeral()
	default:
		return "", fmt.Errorf("resourceFieldRef %s: unsupported resource", f.Resource)
	}
	var v float64
	if cpu {
		v = float64(q.MilliValue()) / float64(divisor.MilliValue())
	} else {
		v = float64(q.Value()) / float64(divisor.Value())
	}
	return strconv.FormatInt(int64(math.Ceil(v)), 10), nil
}

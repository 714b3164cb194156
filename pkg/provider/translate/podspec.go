package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// defaultVolumeMode is the file mode of configMap, secret, projected and
// downwardAPI files when the pod gives none (0644), as in Kubernetes.
const defaultVolumeMode = 0o644

// probe translates a Kubernetes probe, resolving named ports against the
// container's ports and filling in Kubernetes' defaults for unset timings.
func probe(c *corev1.Container, kind string, p *corev1.Probe) (*hubv1.Probe, error) {
	if p == nil {
		return nil, nil
	}
	out := &hubv1.Probe{
		InitialDelaySeconds: p.InitialDelaySeconds,
		TimeoutSeconds:      orDefault(p.TimeoutSeconds, 1),
		PeriodSeconds:       orDefault(p.PeriodSeconds, 10),
		SuccessThreshold:    orDefault(p.SuccessThreshold, 1),
		FailureThreshold:    orDefault(p.FailureThreshold, 3),
	}
	if p.TerminationGracePeriodSeconds != nil {
		out.TerminationGraceSeconds = *p.TerminationGracePeriodSeconds
	}
	port := func(v intstr.IntOrString) (int32, error) {
		if v.Type == intstr.Int {
			if v.IntVal <= 0 || v.IntVal > 65535 {
				return 0, fmt.Errorf("container %q %s probe: port %d out of range", c.Name, kind, v.IntVal)
			}
			return v.IntVal, nil
		}
		for _, cp := range c.Ports {
			if cp.Name == v.StrVal {
				return cp.ContainerPort, nil
			}
		}
		return 0, fmt.Errorf("container %q %s probe: no container port named %q", c.Name, kind, v.StrVal)
	}
	switch {
	case p.Exec != nil:
		out.Handler = &hubv1.Probe_Exec_{Exec: &hubv1.Probe_Exec{Command: slices.Clone(p.Exec.Command)}}
	case p.HTTPGet != nil:
		n, err := port(p.HTTPGet.Port)
		if err != nil {
			return nil, err
		}
		h := &hubv1.Probe_HTTPGet{Path: p.HTTPGet.Path, Port: n, Host: p.HTTPGet.Host, Scheme: string(p.HTTPGet.Scheme)}
		if h.Scheme == "" {
			h.Scheme = string(corev1.URISchemeHTTP)
		}
		for _, hd := range p.HTTPGet.HTTPHeaders {
			h.Headers = append(h.Headers, &hubv1.EnvVar{Name: hd.Name, Value: hd.Value})
		}
		out.Handler = &hubv1.Probe_HttpGet{HttpGet: h}
	case p.TCPSocket != nil:
		n, err := port(p.TCPSocket.Port)
		if err != nil {
			return nil, err
		}
		out.Handler = &hubv1.Probe_TcpSocket{TcpSocket: &hubv1.Probe_TCPSocket{Port: n, Host: p.TCPSocket.Host}}
	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		out.Handler = &hubv1.Probe_Grpc{Grpc: &hubv1.Probe_GRPC{Port: p.GRPC.Port, Service: service}}
	default:
		return nil, fmt.Errorf("container %q %s probe: no handler (exec, httpGet, tcpSocket or grpc)", c.Name, kind)
	}
	return out, nil
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// volumeMounts translates a container's mounts; every mount must name a pod
// volume and have an absolute path.
func volumeMounts(c *corev1.Container, volumes map[string]bool) ([]*hubv1.VolumeMount, error) {
	var out []*hubv1.VolumeMount
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			return nil, fmt.Errorf("container %q mounts volume %q, which the pod does not define", c.Name, m.Name)
		}
		if !path.IsAbs(m.MountPath) {
			return nil, fmt.Errorf("container %q mounts volume %q at %q, which is not an absolute path", c.Name, m.Name, m.MountPath)
		}
		if m.SubPath != "" && !localPath(m.SubPath) {
			return nil, fmt.Errorf("container %q mounts volume %q with subPath %q, which leaves the volume", c.Name, m.Name, m.SubPath)
		}
		out = append(out, &hubv1.VolumeMount{Name: m.Name, MountPath: path.Clean(m.MountPath), ReadOnly: m.ReadOnly, SubPath: m.SubPath})
	}
	return out, nil
}

// localPath reports whether p is a relative path that stays inside its root.
func localPath(p string) bool {
	if p == "" || path.IsAbs(p) {
		return false
	}
	c := path.Clean(p)
	return c != ".." && !strings.HasPrefix(c, "../")
}

// volumes translates the pod volumes some container mounts, with the
// contents of configMap, secret, projected and downwardAPI volumes resolved
// through the source. Volumes nothing mounts are not sent.
func (r *resolver) volumes() ([]*hubv1.Volume, error) {
	mounted := map[string]bool{}
	for _, c := range slices.Concat(r.pod.Spec.InitContainers, r.pod.Spec.Containers) {
		for _, m := range c.VolumeMounts {
			mounted[m.Name] = true
		}
	}
	var out []*hubv1.Volume
	for i := range r.pod.Spec.Volumes {
		v := &r.pod.Spec.Volumes[i]
		if !mounted[v.Name] {
			continue
		}
		hv, err := r.volume(v)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		out = append(out, hv)
	}
	return out, nil
}

func (r *resolver) volume(v *corev1.Volume) (*hubv1.Volume, error) {
	out := &hubv1.Volume{Name: v.Name}
	files := fileSet{}
	var err error
	switch src := &v.VolumeSource; {
	case src.ConfigMap != nil:
		out.Kind = "configMap"
		err = r.configMapFiles(files, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, modeOr(src.ConfigMap.DefaultMode, defaultVolumeMode))
	case src.Secret != nil:
		out.Kind, out.Sensitive = "secret", true
		err = r.secretFiles(files, src.Secret.SecretName, src.Secret.Items, src.Secret.Optional, modeOr(src.Secret.DefaultMode, defaultVolumeMode))
	case src.DownwardAPI != nil:
		out.Kind = "downwardAPI"
		err = r.downwardFiles(files, src.DownwardAPI.Items, modeOr(src.DownwardAPI.DefaultMode, defaultVolumeMode))
	case src.Projected != nil:
		out.Kind = "projected"
		err = r.projectedFiles(out, files, src.Projected)
	case src.EmptyDir != nil:
		out.Kind = "emptyDir"
		out.Memory = src.EmptyDir.Medium == corev1.StorageMediumMemory
		if src.EmptyDir.SizeLimit != nil {
			out.SizeLimitBytes = src.EmptyDir.SizeLimit.Value()
		}
	default:
		out.Kind = "emptyDir" // a volume with no source is an emptyDir
	}
	if err != nil {
		return nil, err
	}
	out.Files = files.list()
	return out, nil
}

func modeOr(m *int32, def int32) int32 {
	if m == nil {
		return def
	}
	return *m & 0o777
}

// fileSet holds a volume's files by path; a later file replaces an earlier.
type fileSet map[string]*hubv1.VolumeFile

func (f fileSet) add(p string, data []byte, mode int32) error {
	if !localPath(p) {
		return fmt.Errorf("file path %q is not a relative path inside the volume", p)
	}
	p = path.Clean(p)
	f[p] = &hubv1.VolumeFile{Path: p, Data: data, Mode: mode}
	return nil
}

func (f fileSet) list() []*hubv1.VolumeFile {
	out := make([]*hubv1.VolumeFile, 0, len(f))
	for _, k := range slices.Sorted(maps.Keys(f)) {
		out = append(out, f[k])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// keyFiles adds data's keys as files: all of them by key name, or only the
// items, each at its path with its mode.
func keyFiles(files fileSet, what string, data map[string][]byte, items []corev1.KeyToPath, optional bool, mode int32) error {
	if len(items) == 0 {
		for _, k := range slices.Sorted(maps.Keys(data)) {
			if err := files.add(k, data[k], mode); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		if err := files.add(it.Path, b, modeOr(it.Mode, mode)); err != nil {
			return err
		}
	}
	return nil
}

func (r *resolver) configMapFiles(files fileSet, name string, items []corev1.KeyToPath, opt *bool, mode int32) error {
	what := fmt.Sprintf("configmap %s/%s", r.pod.Namespace, name)
	cm, err := r.configMap(name)
	if err != nil {
		if apierrors.IsNotFound(err) && optional(opt) {
			return nil
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(files, what, data, items, optional(opt), mode)
}

func (r *resolver) secretFiles(files fileSet, name string, items []corev1.KeyToPath, opt *bool, mode int32) error {
	what := fmt.Sprintf("secret %s/%s", r.pod.Namespace, name)
	s, err := r.secret(name)
	if err != nil {
		if apierrors.IsNotFound(err) && optional(opt) {
			return nil
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	data := maps.Clone(s.Data)
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	return keyFiles(files, what, data, items, optional(opt), mode)
}

func (r *resolver) downwardFiles(files fileSet, items []corev1.DownwardAPIVolumeFile, mode int32) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = r.fieldRef(it.FieldRef)
		case it.ResourceFieldRef != nil:
			if it.ResourceFieldRef.ContainerName == "" {
				return fmt.Errorf("file %q: resourceFieldRef needs a containerName in a volume", it.Path)
			}
			v, err = r.resourceFieldRef(&corev1.Container{}, it.ResourceFieldRef)
		default:
			return fmt.Errorf("file %q: no fieldRef or resourceFieldRef", it.Path)
		}
		if err != nil {
			return fmt.Errorf("file %q: %w", it.Path, err)
		}
		if err := files.add(it.Path, []byte(v), modeOr(it.Mode, mode)); err != nil {
			return err
		}
	}
	return nil
}

// projectedFiles merges the sources of a projected volume. Service account
// tokens are not projected (devices do not talk to the API server); a
// projected volume that asks for one is the API server's kube-api-access
// volume, whose other sources are rendered when they resolve and skipped
// when they do not.
func (r *resolver) projectedFiles(v *hubv1.Volume, files fileSet, p *corev1.ProjectedVolumeSource) error {
	mode := modeOr(p.DefaultMode, defaultVolumeMode)
	lenient := slices.ContainsFunc(p.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil })
	for _, s := range p.Sources {
		var err error
		switch {
		case s.ConfigMap != nil:
			err = r.configMapFiles(files, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, mode)
		case s.Secret != nil:
			v.Sensitive = true
			err = r.secretFiles(files, s.Secret.Name, s.Secret.Items, s.Secret.Optional, mode)
		case s.DownwardAPI != nil:
			err = r.downwardFiles(files, s.DownwardAPI.Items, mode)
		}
		if err != nil && !lenient {
			return err
		}
	}
	return nil
}

// volumesHash is a hash of the volumes' contents; the device swaps files in
// place when only it changes.
func volumesHash(vs []*hubv1.Volume) string {
	if len(vs) == 0 {
		return ""
	}
	h := hashWriter{sha256.New()}
	for _, v := range vs {
		h.string(v.GetName())
		h.int(int64(len(v.GetFiles())))
		for _, f := range v.GetFiles() {
			h.string(f.GetPath())
			h.string(string(f.GetData()))
			h.int(int64(f.GetMode()))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// hashPodFields extends the spec hash with what this file translates: init
// containers, probes, mounts and volume definitions (not their contents).
// Nothing is written for a pod that has none of them, so the hash of such
// pods is what it was before these fields existed.
func (h hashWriter) podFields(w *hubv1.Workload) {
	extra := len(w.GetInitContainers()) > 0 || len(w.GetVolumes()) > 0
	for _, c := range w.GetContainers() {
		extra = extra || c.GetLivenessProbe() != nil || c.GetReadinessProbe() != nil || c.GetStartupProbe() != nil || len(c.GetVolumeMounts()) > 0 ||
			c.RunAsUser != nil || c.RunAsGroup != nil || c.GetRunAsNonRoot() ||
			len(c.GetCapabilitiesAdd())+len(c.GetCapabilitiesDrop()) > 0 || c.GetReadOnlyRootFilesystem() || c.GetPrivileged() || c.AllowPrivilegeEscalation != nil
	}
	if !extra {
		return
	}
	h.string("v2")
	h.int(int64(len(w.GetInitContainers())))
	for _, c := range w.GetInitContainers() {
		h.container(c)
		h.string(c.GetRestartPolicy())
	}
	for _, c := range slices.Concat(w.GetInitContainers(), w.GetContainers()) {
		for _, p := range []*hubv1.Probe{c.GetLivenessProbe(), c.GetReadinessProbe(), c.GetStartupProbe()} {
			h.probe(p)
		}
		h.int(int64(len(c.GetVolumeMounts())))
		for _, m := range c.GetVolumeMounts() {
			h.string(m.GetName())
			h.string(m.GetMountPath())
			h.string(m.GetSubPath())
			h.bool(m.GetReadOnly())
		}
		for _, id := range []*int64{c.RunAsUser, c.RunAsGroup} {
			h.bool(id != nil)
			if id != nil {
				h.int(*id)
			}
		}
		h.bool(c.GetRunAsNonRoot())
	}
	// The securityContext beyond the user, only where a container has one,
	// so that the hash of other pods stays what it was.
	for _, c := range slices.Concat(w.GetInitContainers(), w.GetContainers()) {
		if len(c.GetCapabilitiesAdd())+len(c.GetCapabilitiesDrop()) == 0 && !c.GetReadOnlyRootFilesystem() && !c.GetPrivileged() && c.AllowPrivilegeEscalation == nil {
			continue
		}
		h.string("security " + c.GetName())
		h.string(strings.Join(c.GetCapabilitiesAdd(), ","))
		h.string(strings.Join(c.GetCapabilitiesDrop(), ","))
		h.bool(c.GetReadOnlyRootFilesystem())
		h.bool(c.GetPrivileged())
		h.bool(c.AllowPrivilegeEscalation != nil)
		h.bool(c.GetAllowPrivilegeEscalation())
	}
	h.int(int64(len(w.GetVolumes())))
	for _, v := range w.GetVolumes() {
		h.string(v.GetName())
		h.string(v.GetKind())
		h.bool(v.GetMemory())
		h.bool(v.GetSensitive())
		h.int(v.GetSizeLimitBytes())
	}
}

func (h hashWriter) bool(b bool) {
	if b {
		h.int(1)
	} else {
		h.int(0)
	}
}

func (h hashWriter) probe(p *hubv1.Probe) {
	if p == nil {
		h.string("")
		return
	}
	// The probe's deterministic wire encoding is as good as any.
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	h.string(string(b))
}

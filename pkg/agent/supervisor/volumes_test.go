package supervisor

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestMountsStayBeneathTheVolume: whatever a workload left in its volume
// (symbolic links climbing out with a relative target, or to an absolute
// one), a subPath mount resolves beneath the volume, or the container does
// not start; the path the runtime is given leads to the directory inside
// the volume, never to one outside it.
func TestMountsStayBeneathTheVolume(t *testing.T) {
	outside := t.TempDir() // stands for the device's /
	if err := os.WriteFile(filepath.Join(outside, "marker"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		kind    string                       // the volume's kind
		prepare func(t *testing.T, v string) // what the workload left in volume v
		subPath string
		want    string // the mount's directory or file, relative to the volume; "" to be refused
		wantErr string
	}{
		{name: "no subPath", kind: "emptyDir", want: "."},
		{name: "new directory", kind: "emptyDir", subPath: "a/b", want: "a/b"},
		{
			name: "relative link climbing out", kind: "emptyDir", subPath: "l",
			prepare: func(t *testing.T, v string) { symlink(t, "../../../../../../../../../../..", filepath.Join(v, "l")) },
			wantErr: "leads out of volume",
		},
		{
			name: "relative link climbing out, deeper", kind: "emptyDir", subPath: "l/tmp/new",
			prepare: func(t *testing.T, v string) { symlink(t, "../../../../../../../../../../..", filepath.Join(v, "l")) },
			wantErr: "leads out of volume",
		},
		{
			name: "link in a middle directory", kind: "emptyDir", subPath: "d/l/x",
			prepare: func(t *testing.T, v string) {
				mkdir(t, filepath.Join(v, "d"))
				symlink(t, "../..", filepath.Join(v, "d", "l"))
			},
			wantErr: "leads out of volume",
		},
		{
			name: "absolute link", kind: "emptyDir", subPath: "abs",
			prepare: func(t *testing.T, v string) { symlink(t, outside, filepath.Join(v, "abs")) },
			wantErr: "leads out of volume",
		},
		{
			name: "link inside the volume", kind: "emptyDir", subPath: "in/x",
			prepare: func(t *testing.T, v string) {
				mkdir(t, filepath.Join(v, "real"))
				symlink(t, "real", filepath.Join(v, "in"))
			},
			want: "real/x",
		},
		{
			name: "link inside then up", kind: "emptyDir", subPath: "in/../real",
			prepare: func(t *testing.T, v string) {
				mkdir(t, filepath.Join(v, "real", "deep"))
				symlink(t, "real/deep", filepath.Join(v, "in"))
			},
			want: "real", // subPath is cleaned as a path, before any link
		},
		{name: "dot dot", kind: "emptyDir", subPath: "../x", wantErr: "leads out of volume"},
		{name: "absolute subPath", kind: "emptyDir", subPath: "/etc", wantErr: "leads out of volume"},
		{
			name: "configMap file", kind: "configMap", subPath: "key",
			want: "..data/key",
		},
		{name: "configMap missing", kind: "configMap", subPath: "nope", wantErr: "nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{VolumeDir: t.TempDir(), LogDir: t.TempDir()}, nil, nil, nil, slog.New(slog.DiscardHandler))
			vol := &hubv1.Volume{Name: "v", Kind: tt.kind}
			if tt.kind == "configMap" {
				vol.Files = []*hubv1.VolumeFile{{Path: "key", Data: []byte("value")}}
			}
			spec := &hubv1.Workload{Uid: "u", Namespace: "ns", Name: "p", Volumes: []*hubv1.Volume{vol}}
			w := newWorkload(s, spec, false)
			vs, err := w.setupVolumes(spec)
			if err != nil {
				t.Fatal(err)
			}
			v := vs.paths["v"]
			if tt.prepare != nil {
				tt.prepare(t, v)
			}
			c := &hubv1.Container{Name: "app", VolumeMounts: []*hubv1.VolumeMount{{Name: "v", MountPath: "/data", SubPath: tt.subPath}}}
			ms, release, err := w.mounts(c, vs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v (mounts %+v), want an error with %q", err, ms, tt.wantErr)
				}
				if _, err := os.Lstat(filepath.Join(outside, "tmp")); err == nil {
					t.Error("a directory was created outside the volume")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			want, err := os.Stat(filepath.Join(v, tt.want))
			if err != nil {
				t.Fatal(err)
			}
			// What the runtime opens (the pinned path where there is one)
			// and the real path both lead to the directory in the volume.
			for _, p := range []string{ms[0].HostPath, ms[0].path()} {
				got, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if !os.SameFile(got, want) {
					t.Errorf("%s: not %s in the volume", p, tt.want)
				}
			}
			if !strings.HasPrefix(ms[0].HostPath, v+string(filepath.Separator)) && ms[0].HostPath != v {
				t.Errorf("host path %s is not beneath the volume %s", ms[0].HostPath, v)
			}
		})
	}
}

// TestMountPinnedAgainstSwaps: once resolved, a mount's directory is the
// one the runtime gets even when a container of the pod that sees the whole
// volume swaps it for a link out before the runtime opens it.
func TestMountPinnedAgainstSwaps(t *testing.T) {
	s := New(Config{VolumeDir: t.TempDir(), LogDir: t.TempDir()}, nil, nil, nil, slog.New(slog.DiscardHandler))
	spec := &hubv1.Workload{Uid: "u", Namespace: "ns", Name: "p", Volumes: []*hubv1.Volume{emptyDir("v")}}
	w := newWorkload(s, spec, false)
	vs, err := w.setupVolumes(spec)
	if err != nil {
		t.Fatal(err)
	}
	v := vs.paths["v"]
	c := &hubv1.Container{Name: "app", VolumeMounts: []*hubv1.VolumeMount{{Name: "v", MountPath: "/data", SubPath: "sub"}}}
	ms, release, err := w.mounts(c, vs)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if ms[0].Pinned == "" {
		t.Skip("no pinned directories on this OS")
	}
	if err := os.Rename(filepath.Join(v, "sub"), filepath.Join(v, "moved")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "../../../../../../../../..", filepath.Join(v, "sub"))
	got, err := os.Stat(ms[0].path())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(filepath.Join(v, "moved"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(got, want) {
		t.Errorf("%s follows the swapped link, want the directory resolved at start", ms[0].path())
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestEscapeModuleRestartRefused runs examples/escape, a real module that
// replaces its subPath with a link climbing out of the volume and crashes:
// the restart is refused, and the module never reads or writes the device's
// file (the e2e TestVolumeEscape does the same through kubectl).
func TestEscapeModuleRestartRefused(t *testing.T) {
	mod := filepath.Join(t.TempDir(), "escape.wasm")
	if err := os.WriteFile(mod, ocitest.BuildGo(t, "examples/escape"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startPods(t, mod)
	marker := filepath.Join(t.TempDir(), "marker")
	if err := os.WriteFile(marker, []byte("the device's own file"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &hubv1.Container{Name: "app", Image: "reg/escape:1", Env: []*hubv1.EnvVar{{Name: "TARGET", Value: marker}}}
	c.VolumeMounts = []*hubv1.VolumeMount{{Name: "scratch", MountPath: "/vol"}, {Name: "scratch", MountPath: "/data", SubPath: "l"}}
	w := pod("esc", "Always", nil, c)
	w.Runtime, w.RuntimeAuto = RuntimeWASM, false
	w.Volumes = []*hubv1.Volume{emptyDir("scratch")}
	if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "esc", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetLastState().GetTerminated().GetReason() == reasons.StartError
	})
	if msg := container(st).GetLastState().GetTerminated().GetMessage(); !strings.Contains(msg, "leads out of volume") {
		t.Errorf("restart: got %q, want a StartError saying the subPath leads out of its volume", msg)
	}
	if _, err := os.Lstat(marker + ".escaped"); err == nil {
		t.Error("the module wrote beside the device's file")
	}
	lf := f.sup.LogFiles("esc", "app")
	logs, _ := os.ReadFile(lf.Current(0))
	if !strings.Contains(string(logs), "linked") {
		t.Errorf("first run's log: got %q, want it to have made the link", logs)
	}
	if strings.Contains(string(logs), "the device's own file") {
		t.Errorf("the module read the device's file:\n%s", logs)
	}
}

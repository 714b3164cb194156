// Package wazerofork_test checks that third_party/wazero is what
// hack/wazero/fork.sh makes of the wazero version go.mod requires: its
// source from the module proxy with the patches in hack/wazero applied, and
// nothing else changed by hand.
package wazerofork_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

func TestCommittedCopyIsSourcePlusPatches(t *testing.T) {
	for _, tool := range []string{"bash", "patch"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root := ocitest.RepoRoot(t)
	fresh := filepath.Join(t.TempDir(), "wazero")
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root, "hack", "wazero", "fork.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "WAZERO_FORK_DIR="+fresh)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fork.sh: %v\n%s", err, out)
	}
	committed := filepath.Join(root, "third_party", "wazero")
	want, got := files(t, fresh), files(t, committed)
	for name, data := range want {
		switch c, ok := got[name]; {
		case !ok:
			t.Errorf("%s: missing from third_party/wazero", name)
		case !bytes.Equal(c, data):
			t.Errorf("%s: differs from the source with the patches applied", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: in third_party/wazero, not made by fork.sh", name)
		}
	}
}

// files reads every regular file under dir, by slash path relative to it.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

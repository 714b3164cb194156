// Package chart tests the helm chart in deploy/helm/edgefabric with the helm CLI
// that hack/build-helm.sh builds: lint, golden renderings, schema errors, and (in
// install_test.go) install, upgrade and uninstall into a real API server, and the
// provider run with nothing but the chart's ServiceAccount identity.
//
// helm comes from EDGEFABRIC_HELM (make test sets it) or, when that is unset, from
// hack/build-helm.sh. Golden files are rewritten with
//
//	go test ./test/chart -run TestTemplate -update
package chart

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	release   = "edgefabric"
	namespace = "edgefabric-system"
)

var helmPath = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("EDGEFABRIC_HELM"); p != "" {
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "build-helm.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
})

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// chartDir is the chart under test.
func chartDir(t testing.TB) string {
	return filepath.Join(ocitest.RepoRoot(t), "deploy", "helm", "edgefabric")
}

// helm runs the helm CLI with args and returns its stdout; stderr is in the error.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin, err := helmPath()
	if err != nil {
		t.Fatalf("no helm (set EDGEFABRIC_HELM or let hack/build-helm.sh build it): %v", err)
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &helmError{args: args, err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type helmError struct {
	args   []string
	err    error
	stderr string
}

func (e *helmError) Error() string {
	return "helm " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default values", nil},
		{"full values", []string{"-f", filepath.Join("testdata", "full-values.yaml")}},
		{"cluster objects only", []string{"--set", "replicas=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", chartDir(t)}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") || strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Errorf("helm lint is not clean:\n%s", out)
			}
		})
	}
}

// generatedToken is the bootstrap token the chart makes up when none is given:
// random, so the golden files hold a placeholder.
var generatedToken = regexp.MustCompile(`(?m)^(  token: )[A-Za-z0-9+/=]{44}$`)

func TestTemplate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		randomToken bool // no token in the values: the chart generates one
	}{
		{"default", nil, true},
		{"full", []string{"-f", filepath.Join("testdata", "full-values.yaml")}, false},
		{"objects-only", []string{"--set", "replicas=0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", release, chartDir(t), "--namespace", namespace}, tc.args...)
			got, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.randomToken {
				if n := len(generatedToken.FindAllString(got, -1)); n != 1 {
					t.Fatalf("found %d generated bootstrap tokens, want 1:\n%s", n, got)
				}
				got = generatedToken.ReplaceAllString(got, "${1}GENERATED")
			}
			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("helm template %s differs from %s (-want +got; -update rewrites it):\n%s", tc.name, golden, diff)
			}
		})
	}
}

// TestTemplateKubeletAuth checks the kubelet API's flags, volume and RBAC
// for each way of giving its client CA, and with auth off.
func TestTemplateKubeletAuth(t *testing.T) {
	for _, tc := range []struct {
		name          string
		set           []string
		want, wantNot []string
	}{
		{"service account CA", nil,
			[]string{"resources: [tokenreviews]", "resources: [subjectaccessreviews]"},
			[]string{"--kubelet-client-ca", "--kubelet-auth=false", "kubelet-client-ca"}},
		{"secret", []string{"kubelet.auth.clientCA.secretName=front-ca"},
			[]string{"--kubelet-client-ca=/etc/edgefabric/kubelet-client-ca/ca.crt", "secretName: front-ca", "mountPath: /etc/edgefabric/kubelet-client-ca", "resources: [tokenreviews]"},
			[]string{"configMap:"}},
		{"config map", []string{"kubelet.auth.clientCA.configMapName=kube-root-ca.crt", "kubelet.auth.clientCA.key=ca.crt"},
			[]string{"--kubelet-client-ca=/etc/edgefabric/kubelet-client-ca/ca.crt", "configMap:\n            name: kube-root-ca.crt"},
			[]string{"secretName: kube-root-ca.crt"}},
		{"off", []string{"kubelet.auth.enabled=false", "kubelet.auth.clientCA.secretName=front-ca"},
			[]string{"--kubelet-auth=false"},
			[]string{"--kubelet-client-ca", "tokenreviews", "subjectaccessreviews", "front-ca"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", release, chartDir(t), "--namespace", namespace}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("helm template with %v: no %q in the output", tc.set, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("helm template with %v: %q in the output, want none", tc.set, w)
				}
			}
		})
	}
}

// TestTemplateRejects checks that bad values fail with a message that names
// the field, not with broken manifests.
func TestTemplateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"hub service type", []string{"hub.service.type=Ingress"}, "/hub/service/type"},
		{"account name", []string{"bootstrapToken.account=Not_A_Label"}, "/bootstrapToken/account"},
		{"token expiration", []string{"bootstrapToken.expiration=tomorrow"}, "/bootstrapToken/expiration"},
		{"negative replicas", []string{"replicas=-1"}, "/replicas"},
		{"misspelt field", []string{"replica=2"}, "additional properties 'replica' not allowed"},
		{"duration", []string{"leaderElection.leaseDuration=15"}, "/leaderElection/leaseDuration"},
		{"CA cert without key", []string{"ca.cert=PEM"}, "ca.cert and ca.key must be given together"},
		{"kubelet client CA twice", []string{"kubelet.auth.clientCA.secretName=a", "kubelet.auth.clientCA.configMapName=b"}, "give secretName or configMapName, not both"},
		{"kubelet client CA key", []string{"kubelet.auth.clientCA.key="}, "/kubelet/auth/clientCA/key"},
		{"kubelet auth", []string{"kubelet.auth.enabled=maybe"}, "/kubelet/auth/enabled"},
		{"bootstrap burst", []string{"provider.bootstrapLimits.perSourceBurst=0"}, "/provider/bootstrapLimits/perSourceBurst"},
		{"bootstrap rate", []string{"provider.bootstrapLimits.total=-1"}, "/provider/bootstrapLimits/total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", release, chartDir(t), "--namespace", namespace}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err == nil {
				t.Fatalf("helm template with %v succeeded, want an error naming %q; output:\n%s", tc.set, tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template with %v: got %v, want it to name %q", tc.set, err, tc.want)
			}
		})
	}
}

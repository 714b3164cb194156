// Package kubetest starts a real Kubernetes control plane for tests: etcd and
// kube-apiserver through controller-runtime's envtest and, when asked, kube-scheduler
// and kube-controller-manager as child processes, so that Deployments, ReplicaSets
// and scheduling behave as in a cluster.
//
// The binaries come from the directory named by KUBEBUILDER_ASSETS or, when that is
// unset, from hack/build-controlplane.sh, which builds them once into a cache and
// prints the directory on every later call at once. A test that cannot get them
// fails; it is never skipped.
//
// Start registers everything it starts with t.Cleanup, so a test only writes:
//
//	env := kubetest.Start(t, kubetest.Options{Scheduler: true, ControllerManager: true})
//	_, err := env.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options says which parts of the control plane Start runs besides etcd and
// kube-apiserver. The zero value runs only those two.
type Options struct {
	// Scheduler starts kube-scheduler. Zero: pods stay unbound unless the test binds
	// them.
	Scheduler bool
	// ControllerManager starts kube-controller-manager with the controllers that
	// work without a cloud (Deployments, ReplicaSets, Jobs, garbage collection,
	// namespaces, service accounts, node lifecycle, ...). Zero: no controllers run.
	ControllerManager bool
	// CRDDirectoryPaths are directories or files of CustomResourceDefinition
	// manifests installed before Start returns. A path that does not exist fails
	// the test. Zero: no CRDs.
	CRDDirectoryPaths []string
}

// Env is a running control plane. Its fields are set by Start and must not be
// changed; they may be read from any goroutine.
type Env struct {
	// Config connects as a member of system:masters, with QPS 1000 and Burst 2000.
	// Copy it (rest.CopyConfig) before changing it.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig file for a system:masters user, for
	// child processes (the provider, kubectl).
	Kubeconfig string
	// KubectlPath is the kubectl built with the control plane, of the same version.
	KubectlPath string
	// AssetsDir is the directory that holds the control-plane binaries.
	AssetsDir string
	// KubeletClientCA is the path of the PEM CA that signs the API server's
	// kubelet client certificate (user KubeletClientUser, group
	// KubeletClientGroup): a kubelet API under test passes it as its
	// client CA (the provider's --kubelet-client-ca).
	KubeletClientCA string
	// KubeletClientCert and KubeletClientKey are the API server's kubelet
	// client certificate and key (PEM files), for a test that calls a
	// kubelet API as the API server does.
	KubeletClientCert, KubeletClientKey string
	// LogDir holds one log file per component (etcd.log, kube-apiserver.log,
	// kube-scheduler.log, kube-controller-manager.log).
	LogDir string
}

// startTimeout bounds how long each component may take to become healthy. Generous
// because CI runs several packages' control planes at once on two cores.
const startTimeout = 2 * time.Minute

// Start starts a control plane as opts says, waits until every part of it is
// healthy, and stops it on t.Cleanup. It fails the test (t.Fatal) if any part does
// not start.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	assets := AssetsDir(t)
	logDir := t.TempDir()

	etcdLog := createLog(t, logDir, "etcd.log")
	apiLog := createLog(t, logDir, "kube-apiserver.log")
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
		ControlPlane: envtest.ControlPlane{
			Etcd:      &envtest.Etcd{Out: etcdLog, Err: etcdLog},
			APIServer: &envtest.APIServer{Out: apiLog, Err: apiLog},
		},
	}
	// Virtual nodes publish an InternalIP but a Hostname that does not resolve, so
	// the API server must reach their kubelet API (logs, exec) by address.
	te.ControlPlane.APIServer.Configure().Set("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname")
	// It proxies to kubelet APIs (logs, exec, stats) with a client certificate,
	// as in a cluster, so that they can authenticate it.
	kcCA, kcCert, kcKey, err := writeKubeletClient(logDir)
	if err != nil {
		t.Fatalf("kubelet client certificate: %v", err)
	}
	te.ControlPlane.APIServer.Configure().
		Set("kubelet-client-certificate", kcCert).
		Set("kubelet-client-key", kcKey)

	env := &Env{AssetsDir: assets, LogDir: logDir, KubeletClientCA: kcCA, KubeletClientCert: kcCert, KubeletClientKey: kcKey}
	var components []*component
	// Runs after the components' cleanups: LIFO.
	t.Cleanup(func() {
		for _, c := range components {
			c.stop(t)
		}
		if err := te.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
		if t.Failed() {
			for _, name := range []string{"etcd.log", "kube-apiserver.log", "kube-scheduler.log", "kube-controller-manager.log"} {
				if tail := logTail(filepath.Join(logDir, name), 30); tail != "" {
					t.Logf("last lines of %s:\n%s", name, tail)
				}
			}
		}
	})

	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("start etcd and kube-apiserver from %s: %v (logs in %s)", assets, err, logDir)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	env.Config = cfg
	env.KubectlPath = te.ControlPlane.KubectlPath
	if env.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatalf("clientset: %v", err)
	}

	user, err := te.AddUser(envtest.User{Name: "kubetest-admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		t.Fatalf("add kubeconfig user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	env.Kubeconfig = filepath.Join(logDir, "kubeconfig")
	if err := os.WriteFile(env.Kubeconfig, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	// Start both before waiting for either, so their start-up overlaps.
	if opts.Scheduler {
		c, err := startScheduler(assets, env.Kubeconfig, logDir)
		if err != nil {
			t.Fatal(err)
		}
		components = append(components, c)
	}
	if opts.ControllerManager {
		apiServer := te.ControlPlane.GetAPIServer()
		c, err := startControllerManager(assets, env.Kubeconfig, logDir, apiServer.CertDir, apiServer.CA)
		if err != nil {
			t.Fatal(err)
		}
		components = append(components, c)
	}
	for _, c := range components {
		c.watch(t)
	}
	for _, c := range components {
		if err := c.waitHealthy(t.Context(), startTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// Kubectl runs kubectl against the control plane with the given arguments and
// returns its standard output. The error, if any, includes kubectl's standard error.
func (e *Env) Kubectl(t testing.TB, args ...string) (stdout string, err error) {
	t.Helper()
	return e.KubectlStdin(t, "", args...)
}

// KubectlStdin is Kubectl with stdin as kubectl's standard input, for
// `kubectl apply -f -`.
func (e *Env) KubectlStdin(t testing.TB, stdin string, args ...string) (stdout string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), e.KubectlPath, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %s: %w", strings.Join(args, " "), strings.TrimSpace(errOut.String()), err)
	}
	return out.String(), nil
}

var assets struct {
	once sync.Once
	dir  string
	err  error
}

// AssetsDir returns the directory of the control-plane binaries (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kubectl):
// KUBEBUILDER_ASSETS if set, else what hack/build-controlplane.sh prints, which
// builds them first if they are not cached. It fails the test if neither works.
func AssetsDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	assets.once.Do(func() { assets.dir, assets.err = buildControlPlane() })
	if assets.err != nil {
		t.Fatalf("KUBEBUILDER_ASSETS is unset and hack/build-controlplane.sh did not give the control plane: %v", assets.err)
	}
	return assets.dir
}

func buildControlPlane() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "build-controlplane.sh")
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	// A cold build takes many minutes; let its progress show.
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("run %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if fi, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil || fi.IsDir() {
		return "", fmt.Errorf("%s printed %q, which holds no kube-apiserver", script, dir)
	}
	return dir, nil
}

// repoRoot finds the repository root from the working directory, which go test
// sets to the package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "build-controlplane.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no hack/build-controlplane.sh in the working directory or above it")
		}
		dir = parent
	}
}

func createLog(t testing.TB, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// logTail returns the last n lines of the file at path, or "" if it cannot be read.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

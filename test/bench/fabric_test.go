package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// The account every benchmark fabric uses, and its virtual node.
const (
	account   = "bench"
	nodeName  = "edge-" + account
	namespace = fabrictest.Namespace
)

func TestMain(m *testing.M) { fabrictest.Main(m) }

// startFabric starts a fabric of n agents of the bench account, with the
// processes' default log levels, so that what is measured is what ships.
// EDGEFABRIC_BENCH_LOGS=dir keeps every process's log in dir.
func startFabric(tb testing.TB, n int, opts ...fabrictest.FabricOption) *fabrictest.Fabric {
	tb.Helper()
	f := fabrictest.StartFabric(tb, n, append([]fabrictest.FabricOption{fabrictest.WithAccount(account), fabrictest.WithShippedDefaults()}, opts...)...)
	if dir := os.Getenv("EDGEFABRIC_BENCH_LOGS"); dir != "" {
		tb.Cleanup(func() { f.KeepLogs(dir) })
	}
	return f
}

// pushHello builds examples/hello for wasip1 and pushes it as an OCI image.
func pushHello(f *fabrictest.Fabric) string {
	f.T().Helper()
	ref, _ := f.PushExample("hello", "v1", ocitest.Image)
	return ref
}

// pushPause pushes examples/pause, built with wat2wasm (the benchmark is
// skipped without it), to the fabric's registry and returns its reference.
func pushPause(f *fabrictest.Fabric) string {
	f.T().Helper()
	ref := f.Registry + "/pause:v1"
	ocitest.Push(f.T(), ref, ocitest.Wat2Wasm(f.T(), filepath.Join(ocitest.RepoRoot(f.T()), "examples/pause/pause.wat")), ocitest.Image)
	return ref
}

// waitNodeNamed watches the named node until cond holds.
func waitNodeNamed(tb testing.TB, client kubernetes.Interface, name string, cond func(*corev1.Node) bool) *corev1.Node {
	tb.Helper()
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", name))
	return kubetest.Until(tb, 2*time.Minute, lw, &corev1.Node{}, cond)
}

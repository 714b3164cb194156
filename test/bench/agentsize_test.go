package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// BenchmarkAgentBinarySize builds ./cmd/edgeagent as `make build` and
// `make cross` do (CGO_ENABLED=0, -trimpath, -ldflags "-s -w") for
// linux/amd64 and linux/arm64 and reports the size of each in MB (10^6
// bytes). The target is under 30 MB.
func BenchmarkAgentBinarySize(b *testing.B) {
	root := ocitest.RepoRoot(b)
	for _, arch := range []string{"amd64", "arm64"} {
		b.Run("linux-"+arch, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "edgeagent")
			var size int64
			for range b.N {
				cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/edgeagent")
				cmd.Dir = root
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
				if o, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("go build: %v\n%s", err, o)
				}
				fi, err := os.Stat(out)
				if err != nil {
					b.Fatal(err)
				}
				size = fi.Size()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(size)/1e6, "MB")
			report(b, "edgeagent linux/%s: %d bytes = %.2f MB = %.2f MiB (target < 30 MB)", arch, size, float64(size)/1e6, float64(size)/(1<<20))
		})
	}
}

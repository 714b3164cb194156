package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentLinksNoKubernetes keeps the device binary small and free of the
// control plane's libraries: DESIGN.md's rule, enforced rather than hoped for.
func TestAgentLinksNoKubernetes(t *testing.T) {
	for _, target := range []string{"linux/amd64", "linux/arm", "windows/amd64", "darwin/arm64", "android/arm64"} {
		t.Run(target, func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			cmd := exec.Command("go", "list", "-deps", ".")
			cmd.Env = append(cmd.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 50 {
				t.Fatalf("go list -deps listed only %d packages; is the test looking at the agent?", len(deps))
			}
			for _, p := range deps {
				if strings.HasPrefix(p, "k8s.io/") || strings.Contains(p, ".k8s.io/") ||
					strings.Contains(p, "controller-runtime") || strings.Contains(p, "virtual-kubelet") {
					t.Errorf("edgeagent links %s", p)
				}
			}
		})
	}
}

package scopes_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps pkg/scopes linkable by the agent (no Kubernetes) and
// keeps mDNS out of the pure packages the provider links.
func TestDependencies(t *testing.T) {
	const root = "github.com/edgefabric/edgefabric/pkg/scopes"
	tests := []struct {
		pkg       string
		forbidden []string
	}{
		{pkg: "./...", forbidden: []string{"k8s.io/", "sigs.k8s.io/", "virtual-kubelet", "controller-runtime"}},
		{pkg: ".", forbidden: []string{"github.com/grandcat/zeroconf", "github.com/miekg/dns"}},
		{pkg: "./network", forbidden: []string{"github.com/grandcat/zeroconf", "github.com/miekg/dns"}},
		{pkg: "./membership", forbidden: []string{"github.com/grandcat/zeroconf", "github.com/miekg/dns", root + "/"}},
		{pkg: "./proximity", forbidden: []string{"github.com/grandcat/zeroconf", "github.com/miekg/dns", root + "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tt.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			self := root + strings.TrimPrefix(tt.pkg, ".")
			for _, p := range strings.Fields(string(out)) {
				if p == self {
					continue
				}
				for _, f := range tt.forbidden {
					if strings.HasPrefix(p, f) || strings.Contains(p, "/"+f) {
						t.Errorf("%s depends on %s", tt.pkg, p)
					}
				}
			}
		})
	}
}

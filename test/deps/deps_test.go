// Package deps_test keeps track of what each binary we ship links, the way
// tailscale's depaware does, and holds in one place the rules on what a
// binary or package must not link, each with its reason.
//
// TestLinkedPackages compares `go list -deps` of each binary, for each
// platform it is built for and with the Go the Makefile builds with
// (GO_TOOLCHAIN), with the list checked in beside its main package
// (cmd/edgeagent/deps.txt, cmd/provider/deps.txt): a new dependency shows up
// in review as a change of that file. After changing dependencies, run
// `make deps` (go test ./test/deps -run TestLinkedPackages -update) and read
// the diff.
//
// TestForbidden fails when a binary or package links a package a rule
// forbids, naming the package, the import path that brings it in, and why it
// is forbidden.
package deps_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the package lists (cmd/*/deps.txt) from go list")

const module = "github.com/edgefabric/edgefabric"

// platform is a GOOS/GOARCH pair.
type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

// rule forbids a binary or a package to link some packages.
type rule struct {
	// forbid is an import path; one ending in "/" stands for every path
	// beneath it.
	forbid string
	// via lists the only packages that may import a forbidden package (the
	// way it is allowed in); empty means none may.
	via []string
	// why is said when the rule is broken.
	why string
}

func (r rule) matches(pkg string) bool {
	if strings.HasSuffix(r.forbid, "/") {
		return strings.HasPrefix(pkg, r.forbid)
	}
	return pkg == r.forbid || strings.HasPrefix(pkg, r.forbid+"/")
}

// Reasons shared by several rules.
const (
	whyNoKubernetes = "the agent runs on small devices and must stay small enough to flash " +
		"(docs/dependencies.md); the Kubernetes libraries are tens of megabytes and would tie every " +
		"device to the control plane's versions. The agent speaks to the provider only through the " +
		"hub protocol (pkg/apis/hub/v1)"
	whyPprof = "importing net/http/pprof registers unauthenticated profiling handlers on " +
		"http.DefaultServeMux as a side effect, so any server on the default mux would serve them; " +
		"pkg/debugserver mounts them on its own mux, served only with -debug-listen"
	whyMDNS = "only pkg/scopes/network/mdns speaks mDNS; the pure scope packages, which the " +
		"provider links too, stay free of it"
)

// agentRules are what cmd/edgeagent must not link.
var agentRules = []rule{
	{forbid: "k8s.io/", why: whyNoKubernetes},
	{forbid: "sigs.k8s.io/", why: whyNoKubernetes},
	{forbid: "github.com/virtual-kubelet/", why: whyNoKubernetes},
	{forbid: module + "/pkg/provider/", why: "pkg/provider is the cloud side; the agent reaches it only over the hub protocol (pkg/apis/hub/v1), so the two can be upgraded apart"},
	{forbid: module + "/pkg/apis/edgefabric/", why: "the CRD types are the control plane's (and import apimachinery); the agent's vocabulary is pkg/apis/hub/v1"},
	{forbid: "net/http/pprof", via: []string{module + "/pkg/debugserver"}, why: whyPprof},
	{
		forbid: "github.com/docker/",
		via:    []string{"github.com/google/go-containerregistry/pkg/authn"},
		why: "the agent pulls images anonymously and must never take credentials from a device's " +
			"~/.docker/config.json or run docker-credential-* helpers; docker/cli's config packages are " +
			"linked only because go-containerregistry's authn imports them for DefaultKeychain, which the " +
			"agent does not use (docs/dependencies.md)",
	},
	{
		forbid: "github.com/sirupsen/logrus",
		via:    []string{"github.com/docker/cli/cli/config/configfile"},
		why:    "the agent logs through one log/slog logger; logrus comes in only with docker/cli's config file package (see the github.com/docker/ rule)",
	},
}

// providerRules are what cmd/provider must not link.
var providerRules = []rule{
	{forbid: module + "/pkg/agent/", why: "pkg/agent is the device side; the provider reaches agents only over the hub protocol (pkg/apis/hub/v1), so the two can be upgraded apart"},
	{forbid: "github.com/tetratelabs/wazero", why: "WASM modules run on devices; the control plane has no use for the runtime (our patched fork, third_party/wazero)"},
	{forbid: "github.com/grandcat/zeroconf", why: "mDNS discovery happens on the devices' LANs (pkg/scopes/network/mdns); the provider runs in a cluster and learns LAN membership from what agents report"},
	{forbid: "github.com/miekg/dns", why: "mDNS discovery happens on the devices' LANs (pkg/scopes/network/mdns); the provider runs in a cluster and learns LAN membership from what agents report"},
	{
		forbid: "net/http/pprof",
		via:    []string{module + "/pkg/debugserver", "k8s.io/apiserver/pkg/server/routes"},
		why: whyPprof + "; k8s.io/apiserver/pkg/server/routes imports it too, linked with apiserver's server " +
			"options (the kubelet API's delegated authentication), and the provider serves nothing on the default mux",
	},
}

// target is a binary or a set of packages under rules.
type target struct {
	// pattern is what go list is given.
	pattern string
	// list is the checked-in package list, relative to the repository
	// root; "" for none.
	list      string
	platforms []platform
	rules     []rule
}

func targets(t *testing.T, root string) []target {
	linux := []platform{{"linux", "amd64"}}
	scopesNoK8s := []rule{
		{forbid: "k8s.io/", why: "pkg/scopes is linked by the agent as well as the provider (" + whyNoKubernetes + ")"},
		{forbid: "sigs.k8s.io/", why: "pkg/scopes is linked by the agent as well as the provider (" + whyNoKubernetes + ")"},
		{forbid: "github.com/virtual-kubelet/", why: "pkg/scopes is linked by the agent as well as the provider (" + whyNoKubernetes + ")"},
	}
	noMDNS := []rule{
		{forbid: "github.com/grandcat/zeroconf", why: whyMDNS},
		{forbid: "github.com/miekg/dns", why: whyMDNS},
	}
	pure := append(slices.Clone(noMDNS), rule{
		forbid: module + "/pkg/scopes/",
		why:    "membership and proximity are pure cores, tested and used alone; they import no other scope package",
	})
	return []target{
		{pattern: "./cmd/edgeagent", list: "cmd/edgeagent/deps.txt", platforms: crossPlatforms(t, root), rules: agentRules},
		// The platforms of the provider's image (hack/image).
		{pattern: "./cmd/provider", list: "cmd/provider/deps.txt", platforms: []platform{{"linux", "amd64"}, {"linux", "arm64"}}, rules: providerRules},
		{pattern: "./pkg/scopes/...", platforms: linux, rules: scopesNoK8s},
		{pattern: "./pkg/scopes", platforms: linux, rules: noMDNS},
		{pattern: "./pkg/scopes/network", platforms: linux, rules: noMDNS},
		{pattern: "./pkg/scopes/membership", platforms: linux, rules: pure},
		{pattern: "./pkg/scopes/proximity", platforms: linux, rules: pure},
	}
}

// crossPlatforms reads the platforms `make cross` builds the agent for from
// the Makefile's CROSS_TARGETS (os/arch[/arm version]; ARM versions link the
// same packages).
func crossPlatforms(t *testing.T, root string) []platform {
	t.Helper()
	var out []platform
	for _, f := range strings.Fields(makeVar(t, root, "CROSS_TARGETS")) {
		parts := strings.Split(f, "/")
		if len(parts) < 2 {
			t.Fatalf("CROSS_TARGETS entry %q is not os/arch", f)
		}
		if p := (platform{parts[0], parts[1]}); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("CROSS_TARGETS is empty")
	}
	return out
}

// toolchain returns the Go the Makefile builds and ships with (GO_TOOLCHAIN):
// the standard library's part of the lists is that Go's, whichever Go runs
// the test.
func toolchain(t *testing.T, root string) string {
	t.Helper()
	v := strings.TrimSpace(makeVar(t, root, "GO_TOOLCHAIN"))
	if !strings.HasPrefix(v, "go1.") {
		t.Fatalf("the Makefile's GO_TOOLCHAIN is %q, want a Go version such as go1.27.3", v)
	}
	return v
}

// makeVar returns the value the Makefile assigns to name, continuation lines
// joined.
func makeVar(t *testing.T, root, name string) string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `\s*[:?]?=((?:.*\\\n)*.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatalf("no %s in the Makefile", name)
	}
	return strings.ReplaceAll(string(m[1]), "\\\n", " ")
}

// graph is what go list says of a pattern on one platform.
type graph struct {
	roots   []string            // the packages the pattern names
	imports map[string][]string // every package linked, with its imports
}

var (
	graphsMu sync.Mutex
	graphs   = map[string]*graph{}
)

// load runs go list -deps for pattern on p, once per test binary.
func load(t *testing.T, root, pattern string, p platform) *graph {
	t.Helper()
	key := pattern + " " + p.String()
	graphsMu.Lock()
	defer graphsMu.Unlock()
	if g, ok := graphs[key]; ok {
		return g
	}
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{.DepOnly}} {{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pattern)
	cmd.Dir = root
	// The default build, as the Makefile makes it: its Go, no cgo, no tags.
	cmd.Env = append(cmd.Environ(), "GOTOOLCHAIN="+toolchain(t, root), "CGO_ENABLED=0", "GOFLAGS=", "GOOS="+p.os, "GOARCH="+p.arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s (%s): %v\n%s", pattern, p, err, stderr.Bytes())
	}
	g := &graph{imports: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		g.imports[f[1]] = f[2:]
		if f[0] == "false" {
			g.roots = append(g.roots, f[1])
		}
	}
	if len(g.roots) == 0 {
		t.Fatalf("go list -deps %s (%s) named no package", pattern, p)
	}
	graphs[key] = g
	return g
}

// path returns the shortest import path from one of g's roots to pkg.
func (g *graph) path(pkg string) []string {
	prev := map[string]string{}
	queue := slices.Clone(g.roots)
	for _, r := range g.roots {
		prev[r] = ""
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == pkg {
			var out []string
			for ; p != ""; p = prev[p] {
				out = append(out, p)
			}
			slices.Reverse(out)
			return out
		}
		for _, q := range g.imports[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// violations returns, for each way a forbidden package comes into g, what
// is wrong and why.
func violations(g *graph, rules []rule) []string {
	var out []string
	for _, r := range rules {
		// Forbidden packages other than those the pattern names.
		forbidden := func(p string) bool { return r.matches(p) && !slices.Contains(g.roots, p) }
		for _, importer := range slices.Sorted(maps.Keys(g.imports)) {
			if forbidden(importer) || slices.Contains(r.via, importer) {
				continue // inside the forbidden set, or its allowed way in
			}
			for _, pkg := range g.imports[importer] {
				if !forbidden(pkg) {
					continue
				}
				out = append(out, fmt.Sprintf("links %s, imported by %s:\n\t%s\n\tforbidden (%s): %s",
					pkg, importer, strings.Join(append(g.path(importer), pkg), "\n\t  → "), r.forbid, r.why))
			}
		}
	}
	return out
}

func TestForbidden(t *testing.T) {
	root := repoRoot(t)
	for _, tg := range targets(t, root) {
		for _, p := range tg.platforms {
			t.Run(tg.pattern+"/"+p.String(), func(t *testing.T) {
				g := load(t, root, tg.pattern, p)
				for _, v := range violations(g, tg.rules) {
					t.Errorf("%s on %s %s", tg.pattern, p, v)
				}
			})
		}
	}
}

// TestRulesCatch checks that the rules see what they are meant to: a
// forbidden package is reported with the path that brings it in, and an
// allowed way in is not reported.
func TestRulesCatch(t *testing.T) {
	g := &graph{
		roots: []string{"cmd/a"},
		imports: map[string][]string{
			"cmd/a":              {"pkg/debug", "pkg/b"},
			"pkg/b":              {"k8s.io/api/core/v1"},
			"pkg/debug":          {"net/http/pprof"},
			"k8s.io/api/core/v1": {"k8s.io/apimachinery/pkg/types"},
			"net/http/pprof":     nil,
		},
	}
	tests := []struct {
		name  string
		rules []rule
		want  []string
	}{
		{
			name:  "forbidden prefix",
			rules: []rule{{forbid: "k8s.io/", why: "too big"}},
			want: []string{"links k8s.io/api/core/v1, imported by pkg/b:\n\tcmd/a\n\t  → pkg/b\n\t  → k8s.io/api/core/v1\n" +
				"\tforbidden (k8s.io/): too big"},
		},
		{
			name:  "allowed way in",
			rules: []rule{{forbid: "net/http/pprof", via: []string{"pkg/debug"}, why: "side effects"}},
		},
		{
			name:  "other way in",
			rules: []rule{{forbid: "net/http/pprof", via: []string{"pkg/other"}, why: "side effects"}},
			want: []string{"links net/http/pprof, imported by pkg/debug:\n\tcmd/a\n\t  → pkg/debug\n\t  → net/http/pprof\n" +
				"\tforbidden (net/http/pprof): side effects"},
		},
		{
			name:  "a path is not a prefix of its sibling",
			rules: []rule{{forbid: "net/http/pp", why: "x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violations(g, tt.rules)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLinkedPackages(t *testing.T) {
	root := repoRoot(t)
	for _, tg := range targets(t, root) {
		if tg.list == "" {
			continue
		}
		t.Run(tg.pattern, func(t *testing.T) {
			got := listFile(t, root, tg)
			file := filepath.Join(root, tg.list)
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v; create it with `make deps`", err)
			}
			if string(want) == got {
				return
			}
			t.Errorf("the packages %s links changed (- no longer, + now):\n%s\n"+
				"If the change is meant, run `make deps` (go test ./test/deps -run TestLinkedPackages -update) "+
				"and commit %s; a new module deserves a word in the commit message "+
				"(a move of the Makefile's GO_TOOLCHAIN changes the standard library's lines only)",
				tg.pattern, strings.TrimSuffix(lineDiff(string(want), got), "\n"), tg.list)
		})
	}
}

// listFile returns the checked-in list of the packages tg links: every
// package of every platform, sorted, each followed by the platforms that
// link it unless all do.
func listFile(t *testing.T, root string, tg target) string {
	t.Helper()
	on := map[string][]string{}
	for _, p := range tg.platforms {
		for pkg := range load(t, root, tg.pattern, p).imports {
			on[pkg] = append(on[pkg], p.String())
		}
	}
	names := make([]string, 0, len(tg.platforms))
	for _, p := range tg.platforms {
		names = append(names, p.String())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# The packages %s links: go list -deps with %s (the Makefile's GO_TOOLCHAIN), CGO_ENABLED=0, on %s.\n",
		tg.pattern, toolchain(t, root), strings.Join(names, " "))
	b.WriteString("# A package that not every platform links is followed by those that do.\n")
	b.WriteString("# Checked by test/deps (TestLinkedPackages); regenerate with `make deps` and read the diff.\n")
	for _, pkg := range slices.Sorted(maps.Keys(on)) {
		b.WriteString(pkg)
		if ps := on[pkg]; len(ps) < len(tg.platforms) {
			slices.Sort(ps)
			b.WriteString(" " + strings.Join(ps, " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// lineDiff lists the lines only in want (-) and only in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]bool{}, map[string]bool{}
	for _, l := range w {
		inW[l] = true
	}
	for _, l := range g {
		inG[l] = true
	}
	var b strings.Builder
	for _, l := range w {
		if !inG[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !inW[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod two levels above test/deps: %v", err)
	}
	return root
}

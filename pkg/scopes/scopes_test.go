package scopes

import (
	"strings"
	"testing"
)

func TestNodeName(t *testing.T) {
	long := strings.Repeat("a", 63) // the longest valid account (identity.ValidName)
	tests := []struct {
		name      string
		account   string
		scope     Scope
		clusterID string
		want      string // "" to check only validity and the pattern
		prefix    string
		contains  string
	}{
		{name: "account", account: "acme", scope: Account, want: "edge-acme"},
		{name: "account ignores cluster ID", account: "acme", scope: Account, clusterID: "x", want: "edge-acme"},
		{name: "network", account: "acme", scope: Network, clusterID: "3fa9c2e1d0", want: "edge-acme-net-3fa9c2e1d0"},
		{name: "proximity", account: "acme", scope: Proximity, clusterID: "9b1c0d2e", want: "edge-acme-prox-9b1c0d2e"},
		{name: "override name", account: "acme", scope: Network, clusterID: "office", want: "edge-acme-net-office"},
		{name: "dotted account kept", account: "acme.eu", scope: Network, clusterID: "office", want: "edge-acme.eu-net-office"},
		{name: "exactly 63", account: strings.Repeat("a", 45), scope: Network, clusterID: "3fa9c2e1", want: "edge-" + strings.Repeat("a", 45) + "-net-3fa9c2e1"},
		{name: "64 shortened", account: strings.Repeat("a", 46), scope: Network, clusterID: "3fa9c2e1", prefix: "edge-aaaa", contains: "-net-3fa9c2e1-"},
		{name: "long account", account: long, scope: Account, prefix: "edge-aaaa", contains: ""},
		{name: "long account, network", account: long, scope: Network, clusterID: "3fa9c2e1d0", prefix: "edge-aaaa", contains: "-net-3fa9c2e1d0-"},
		{name: "long account, proximity", account: long, scope: Proximity, clusterID: "9b1c0d2e", prefix: "edge-aaaa", contains: "-prox-9b1c0d2e-"},
		{name: "upper case and odd characters", account: "Acme_Corp", scope: Network, clusterID: "Office 1", prefix: "edge-acme-corp-net-office-1-"},
		{name: "long cluster ID", account: "acme", scope: Network, clusterID: strings.Repeat("x", 80), prefix: "edge-acme-net-xxxxxxxxxxxxxxxxxxxx-"},
		{name: "nothing valid", account: "__", scope: Proximity, clusterID: "..", prefix: "edge-prox-"},
		{name: "other scope is always hashed", account: "acme", scope: "site", clusterID: "x1", prefix: "edge-acme-site-x1--"},
		{name: "account holding a marker is hashed", account: "a-net-x", scope: Account, prefix: "edge-a-net-x--"},
		{name: "empty scope is the account", account: "acme", scope: "", clusterID: "x1", want: "edge-acme"},
		{name: "long odd scope", account: long, scope: Scope(strings.Repeat("Z", 100)), clusterID: strings.Repeat("y", 100), prefix: "edge-aaaa", contains: "-zzzzzzzzzz-yyyy"},
		{name: "scope of nothing valid", account: "acme", scope: "__", clusterID: "x1", prefix: "edge-acme-scope-x1-"},
		{name: "dots at a cut", account: strings.Repeat("ab.", 20), scope: Network, clusterID: "3fa9c2e1d0", prefix: "edge-ab.ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NodeName(tt.account, tt.scope, tt.clusterID)
			if !ValidNodeName(got) {
				t.Fatalf("NodeName(%q, %q, %q) = %q (%d chars): not a valid node name", tt.account, tt.scope, tt.clusterID, got, len(got))
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("NodeName(%q, %q, %q) = %q, want %q", tt.account, tt.scope, tt.clusterID, got, tt.want)
			}
			if !strings.HasPrefix(got, tt.prefix) || !strings.Contains(got, tt.contains) {
				t.Errorf("NodeName(%q, %q, %q) = %q, want prefix %q containing %q", tt.account, tt.scope, tt.clusterID, got, tt.prefix, tt.contains)
			}
			if again := NodeName(tt.account, tt.scope, tt.clusterID); again != got {
				t.Errorf("NodeName not stable: %q then %q", got, again)
			}
		})
	}
}

// TestNodeNameDistinct checks that shortening keeps different inputs apart.
func TestNodeNameDistinct(t *testing.T) {
	base := strings.Repeat("a", 60)
	seen := map[string]string{}
	for _, in := range [][3]string{
		{base + "1", "network", "c1"}, {base + "2", "network", "c1"},
		{base + "1", "network", "c2"}, {base + "1", "proximity", "c1"},
		{base + "1", "account", ""}, {base + "2", "account", ""},
		{"Acme", "account", ""}, {"acme", "account", ""},
	} {
		got := NodeName(in[0], Scope(in[1]), in[2])
		if prev, dup := seen[got]; dup {
			t.Errorf("NodeName%v = NodeName%v = %q", in, prev, got)
		}
		seen[got] = strings.Join(in[:], ",")
	}
}

func TestFingerprint(t *testing.T) {
	tests := []struct{ account, want string }{
		{"acme", "8a2f4e2240238abd"}, // sha256("edgefabric-account:acme")[:8]
		{"", "58c6c2819c60fb6e"},
	}
	for _, tt := range tests {
		if got := Fingerprint(tt.account); got != tt.want {
			t.Errorf("Fingerprint(%q) = %q, want %q", tt.account, got, tt.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	for _, s := range Scopes {
		if got, err := ParseScope(string(s)); err != nil || got != s {
			t.Errorf("ParseScope(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseScope("planet"); err == nil {
		t.Error("ParseScope(planet): no error")
	}
}

// FuzzNodeName: whatever the inputs, the name is valid. `go test -fuzz
// FuzzNodeName` explores further; plain `go test` runs the seeds.
func FuzzNodeName(f *testing.F) {
	for _, s := range [][3]string{
		{"acme", "network", "3fa9c2e1d0"}, {"", "", ""}, {"-.-", "proximity", "..."},
		{strings.Repeat("x.", 40), "site", strings.Repeat("é", 30)}, {"ACME", "\x00", "id"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, account, scope, id string) {
		if got := NodeName(account, Scope(scope), id); !ValidNodeName(got) {
			t.Errorf("NodeName(%q, %q, %q) = %q: invalid", account, scope, id, got)
		}
	})
}

// normalKey is what NodeName distinguishes: the account scope ignores the
// cluster ID, and "" is the account scope.
func normalKey(account string, scope Scope, id string) [3]string {
	if scope == "" || scope == Account {
		return [3]string{account, string(Account), ""}
	}
	return [3]string{account, string(scope), id}
}

// TestNodeNameInjective: names that account, network and proximity names
// could make collide stay apart, and ordinary names are kept.
func TestNodeNameInjective(t *testing.T) {
	tests := []struct {
		name string
		a, b [3]string
	}{
		{"account holding a network marker", [3]string{"a-net-x", "account", ""}, [3]string{"a", "network", "x"}},
		{"account holding a proximity marker", [3]string{"a-prox-x", "account", ""}, [3]string{"a", "proximity", "x"}},
		{"network ID holding a marker", [3]string{"a-net-b", "network", "c"}, [3]string{"a", "network", "b-net-c"}},
		{"marker overlapping the account", [3]string{"a-net", "network", "x"}, [3]string{"a", "network", "net-x"}},
		{"network against proximity", [3]string{"a-net-x", "proximity", "y"}, [3]string{"a", "network", "x-prox-y"}},
		{"account starting with a marker", [3]string{"net-x", "account", ""}, [3]string{"", "network", "x"}},
		{"other scope against the account", [3]string{"acme-site-x1", "account", ""}, [3]string{"acme", "site", "x1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NodeName(tt.a[0], Scope(tt.a[1]), tt.a[2])
			b := NodeName(tt.b[0], Scope(tt.b[1]), tt.b[2])
			if a == b {
				t.Errorf("NodeName%q = NodeName%q = %q", tt.a, tt.b, a)
			}
		})
	}
}

// FuzzNodeNameInjective: distinct (account, scope, cluster ID) never share a
// name, and a name made plain (no hash) decodes back to its inputs.
func FuzzNodeNameInjective(f *testing.F) {
	for _, s := range [][6]string{
		{"a-net-x", "account", "", "a", "network", "x"},
		{"a-net", "network", "x", "a", "network", "net-x"},
		{"a-net-x", "proximity", "y", "a", "network", "x-prox-y"},
		{"acme", "network", "office", "acme", "proximity", "office"},
		{strings.Repeat("a", 60) + "1", "network", "c", strings.Repeat("a", 60) + "2", "network", "c"},
		{"Acme", "account", "", "acme", "account", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, a1, s1, i1, a2, s2, i2 string) {
		k1, k2 := normalKey(a1, Scope(s1), i1), normalKey(a2, Scope(s2), i2)
		n1, n2 := NodeName(a1, Scope(s1), i1), NodeName(a2, Scope(s2), i2)
		if k1 != k2 && n1 == n2 {
			t.Errorf("NodeName%q = NodeName%q = %q", k1, k2, n1)
		}
		if k1 == k2 && n1 != n2 {
			t.Errorf("NodeName%q = %q and %q", k1, n1, n2)
		}
		if got, ok := decodePlain(n1); ok && got != k1 {
			t.Errorf("NodeName%q = %q, which reads as %q", k1, n1, got)
		}
	})
}

// decodePlain reads the inputs back from a name NodeName returned without a
// hash; ok is false for a hashed name.
func decodePlain(name string) (key [3]string, ok bool) {
	if strings.Contains(name, "--") {
		return key, false
	}
	rest, _ := strings.CutPrefix(name, "edge-")
	for i := range rest {
		for _, m := range []struct {
			marker string
			scope  Scope
		}{{"-net-", Network}, {"-prox-", Proximity}} {
			if strings.HasPrefix(rest[i:], m.marker) {
				return [3]string{rest[:i], string(m.scope), rest[i+len(m.marker):]}, true
			}
		}
	}
	return [3]string{rest, string(Account), ""}, true
}

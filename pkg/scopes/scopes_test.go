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
		{name: "other scope", account: "acme", scope: "site", clusterID: "x1", want: "edge-acme-site-x1"},
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

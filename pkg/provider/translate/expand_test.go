package translate

import "testing"

// The cases follow Kubernetes' own tests of the expansion it does for
// command, args and env values.
func TestExpand(t *testing.T) {
	vars := map[string]string{
		"VAR_A":     "A",
		"VAR_B":     "B",
		"VAR_C":     "C",
		"VAR_REF":   "$(VAR_A)",
		"VAR_EMPTY": "",
	}
	tests := []struct {
		name, input, want string
	}{
		{"whole string", "$(VAR_A)", "A"},
		{"repeat", "$(VAR_A)-$(VAR_A)", "A-A"},
		{"compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"},
		{"escape and expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"},
		{"compound escape", "$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"},
		{"escaped bare operator", "f000-$$VAR_A", "f000-$VAR_A"},
		{"backslash is no escape", `foo\$(VAR_C)bar`, `foo\Cbar`},
		{"nested references", "$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"},
		{"value is a reference, not expanded again", "$(VAR_REF)", "$(VAR_A)"},
		{"empty var", "foo$(VAR_EMPTY)bar", "foobar"},
		{"unterminated expression", "foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"},
		{"shell special vars pass through", "$?_boo_$!", "$?_boo_$!"},
		{"bare operator", "$VAR_A", "$VAR_A"},
		{"undefined var left as is", "$(VAR_DNE)", "$(VAR_DNE)"},
		{"even operators, undefined var", "$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"},
		{"even operators, defined var", "$$$$$$(VAR_A)", "$$$(VAR_A)"},
		{"odd operators, undefined var", "$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"},
		{"odd operators, defined var", "$$$$$$$(VAR_A)", "$$$A"},
		{"shell syntax ignored", "${VAR_A}", "${VAR_A}"},
		{"trailing incomplete expression", "$(VAR_B)_______$(A", "B_______$(A"},
		{"trailing empty incomplete expression", "$(VAR_C)_______$(", "C_______$("},
		{"operator at end", "$(VAR_A)foobarzab$", "Afoobarzab$"},
		{"lots of $(", "--$($($($($--", "--$($($($($--"},
		{"escaped operators inside a name", "$(foo$$var)", "$(foo$$var)"},
		{"empty name", "$()", "$()"},
		{"multi-byte rune after operator", "prefix-$€-suffix", "prefix-$€-suffix"},
		{"empty input", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expand(tt.input, mappingFor(vars)); got != tt.want {
				t.Errorf("expand(%q): got %q, want %q", tt.input, got, tt.want)
			}
		})
	}
}

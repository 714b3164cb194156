package mesh

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodeLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		ok   bool
	}{
		{`{"type":"ping","seq":3}` + "\n", true},
		{`{"type":"ping","seq":3,"coordinate":{"vec":[0.1,0],"error":1,"adjustment":0,"height":0.00001}}` + "\n", true},
		{`{"type":"pong","seq":3}` + "\n", false},
		{`{"type":"ping","seq":3,"coordinate":{"vec":[1e400]}}` + "\n", false},
		{`not json` + "\n", false},
		{"", false},
	} {
		_, err := decodeLine([]byte(tt.line), "ping")
		if (err == nil) != tt.ok {
			t.Errorf("decodeLine(%q): got %v, want ok %v", tt.line, err, tt.ok)
		}
	}
}

// FuzzReadLine reads arbitrary bytes as the mesh reads a peer's lines: no
// line longer than MaxLineBytes comes out, and decoding never panics.
func FuzzReadLine(f *testing.F) {
	f.Add([]byte(`{"type":"ping","seq":1}` + "\n"))
	f.Add([]byte(`{"type":"pong","seq":18446744073709551615,"coordinate":{"vec":[0,0,0,0,0,0,0,0],"error":1.5,"height":1e-5}}` + "\n"))
	f.Add([]byte(`{"type":"pong","coordinate":{"vec":null}}` + "\n" + `{"type":"ping"}`))
	f.Add([]byte(strings.Repeat("x", MaxLineBytes+1) + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newLineReader(bytes.NewReader(data))
		for {
			line, err := readLine(r)
			if err != nil {
				return
			}
			if len(line) > MaxLineBytes {
				t.Fatalf("line of %d bytes, more than %d", len(line), MaxLineBytes)
			}
			for _, want := range []string{"ping", "pong"} {
				if m, err := decodeLine(line, want); err == nil && (m.Type != want || (m.Coordinate != nil && !m.Coordinate.Valid())) {
					t.Fatalf("decodeLine(%q) = %+v: accepted what it should refuse", line, m)
				}
			}
		}
	})
}

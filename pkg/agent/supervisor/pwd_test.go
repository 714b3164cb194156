package supervisor

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWithPWD(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		dir  string
		want []string
	}{
		{"no working directory", []string{"A=1"}, "", []string{"A=1"}},
		{"added", []string{"A=1"}, "/data", []string{"A=1", "PWD=/data"}},
		{"empty env", nil, "/work", []string{"PWD=/work"}},
		{"the pod's own PWD wins", []string{"PWD=/mine", "A=1"}, "/data", []string{"PWD=/mine", "A=1"}},
		{"PWDX is another variable", []string{"PWDX=1"}, "/d", []string{"PWDX=1", "PWD=/d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append(make([]string, 0, 8), tc.env...) // spare capacity: the caller's array must not be written
			got := withPWD(env, tc.dir)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("withPWD mismatch (-want +got):\n%s", diff)
			}
			if len(env) < cap(env) && env[:cap(env)][len(env)] != "" {
				t.Errorf("withPWD wrote into the caller's array")
			}
		})
	}
}

package supervisor

import (
	"strings"
	"testing"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
)

// TestProcessPolicy: what the device's owner and the sandbox refuse, with
// the reason the pod's status shows.
func TestProcessPolicy(t *testing.T) {
	yes := true
	root, app := process.User{}, process.User{UID: 1000, GID: 1000}
	tests := []struct {
		name     string
		policy   ProcessPolicy
		spec     ContainerSpec
		user     process.User
		isolated bool
		wantErr  string // "" starts it
	}{
		{name: "default, isolated, root image", user: root, isolated: true},
		{name: "default, not isolated", user: app, wantErr: "--native-workloads=unisolated"},
		{name: "unisolated allowed", policy: ProcessPolicy{Unisolated: true}, user: app},
		{name: "off", policy: ProcessPolicy{Off: true}, user: app, isolated: true, wantErr: "--native-workloads=off"},
		{name: "root refused", policy: ProcessPolicy{NoRoot: true}, user: root, isolated: true, wantErr: "--allow-root-images=false"},
		{name: "root refused, runAsUser given", policy: ProcessPolicy{NoRoot: true}, user: app, isolated: true},
		{name: "runAsNonRoot with a root image", spec: ContainerSpec{RunAsNonRoot: true}, user: root, isolated: true, wantErr: "runAsNonRoot and image will run as root"},
		{name: "privileged", spec: ContainerSpec{Privileged: true}, user: app, isolated: true, wantErr: "never run privileged"},
		{name: "privilege escalation", spec: ContainerSpec{AllowPrivilegeEscalation: &yes}, user: app, isolated: true, wantErr: "no_new_privs"},
		{name: "capability beyond Docker's", spec: ContainerSpec{Security: process.Security{CapAdd: []string{"NET_ADMIN"}}}, user: root, isolated: true, wantErr: "CAP_NET_ADMIN is beyond Docker's default set"},
		{name: "capability within Docker's", spec: ContainerSpec{Security: process.Security{CapAdd: []string{"NET_RAW"}, CapDrop: []string{"ALL"}}}, user: root, isolated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.check(tt.spec, tt.user, tt.isolated)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("check: got %v, want it allowed", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("check: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestProcessPolicyOffers(t *testing.T) {
	tests := []struct {
		policy   ProcessPolicy
		isolated bool
		want     bool
	}{
		{ProcessPolicy{}, true, true},
		{ProcessPolicy{}, false, false},
		{ProcessPolicy{Unisolated: true}, false, true},
		{ProcessPolicy{Off: true}, true, false},
	}
	for _, tt := range tests {
		if got := tt.policy.Offers(tt.isolated); got != tt.want {
			t.Errorf("%+v.Offers(%v): got %v, want %v", tt.policy, tt.isolated, got, tt.want)
		}
	}
}

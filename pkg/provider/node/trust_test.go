package node

import "testing"

func TestReportedPodIP(t *testing.T) {
	own := []string{"10.1.2.3", "fd00::3"}
	tests := []struct {
		name         string
		reported     string
		addresses    []string
		want, reject string
	}{
		{name: "none reported", want: "10.1.2.3", addresses: own},
		{name: "its first address", reported: "10.1.2.3", addresses: own, want: "10.1.2.3"},
		{name: "its other address", reported: "fd00::3", addresses: own, want: "fd00::3"},
		{name: "its address, mapped", reported: "::ffff:10.1.2.3", addresses: own, want: "10.1.2.3"},
		{name: "another machine's address", reported: "10.96.0.1", addresses: own, want: "10.1.2.3", reject: "10.96.0.1"},
		{name: "loopback", reported: "127.0.0.1", addresses: own, want: "10.1.2.3", reject: "127.0.0.1"},
		{name: "not an IP", reported: "kubernetes.default", addresses: own, want: "10.1.2.3", reject: "kubernetes.default"},
		{name: "a device with no address", reported: "10.1.2.3", want: "", reject: "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, rejected := reportedPodIP(tt.reported, tt.addresses)
			if ip != tt.want || rejected != tt.reject {
				t.Errorf("reportedPodIP(%q, %v) = %q, %q; want %q, %q", tt.reported, tt.addresses, ip, rejected, tt.want, tt.reject)
			}
		})
	}
}

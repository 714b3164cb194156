package fabric

import (
	"errors"
	"fmt"
	"math"
	"net/netip"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// Bounds of what a device may report. A device holds at most one status per
// workload, and no device runs thousands of pods; the rest bounds strings
// and lists the hub keeps for as long as the device is known.
const (
	// MaxStatuses bounds the workload statuses of one hello or report.
	MaxStatuses = 4096
	// MaxEvents bounds the events of one report.
	MaxEvents = 4096
	// MaxLabels bounds a device's labels.
	MaxLabels = 256
	// MaxAddresses bounds a device's addresses.
	MaxAddresses = 32
	// MaxRuntimes bounds the runtimes a device names.
	MaxRuntimes = 16
	// MaxPeers bounds the LAN peers of one scope report.
	MaxPeers = 1024
	// MaxDimensions bounds a Vivaldi coordinate's dimensions.
	MaxDimensions = 16
	// maxString bounds a name, label or address; maxText a message.
	maxString = 1024
	maxText   = 64 << 10
)

// CheckHello reports what makes a device's hello unusable: lists and
// strings beyond the bounds above, negative capacity, addresses that are
// not IP addresses, and whatever CheckScopes and CheckStatusReport find in
// the scopes and statuses it carries. The hub refuses such a hello.
func CheckHello(h *hubv1.Hello) error {
	var errs []error
	for what, s := range map[string]string{"device id": h.GetDeviceId(), "agent version": h.GetAgentVersion(), "os": h.GetOs(), "arch": h.GetArch(), "hostname": h.GetHostname()} {
		if len(s) > maxString {
			errs = append(errs, fmt.Errorf("%s is %d bytes long, more than %d", what, len(s), maxString))
		}
	}
	if c := h.GetCapacity(); c.GetCpuMillis() < 0 || c.GetMemoryBytes() < 0 || c.GetPods() < 0 {
		errs = append(errs, fmt.Errorf("negative capacity %v", c))
	}
	if n := len(h.GetLabels()); n > MaxLabels {
		errs = append(errs, fmt.Errorf("%d labels, more than %d", n, MaxLabels))
	}
	for k, v := range h.GetLabels() {
		if len(k) > maxString || len(v) > maxString {
			errs = append(errs, fmt.Errorf("label %.64q is longer than %d bytes", k, maxString))
			break
		}
	}
	if n := len(h.GetAddresses()); n > MaxAddresses {
		errs = append(errs, fmt.Errorf("%d addresses, more than %d", n, MaxAddresses))
	} else {
		for _, a := range h.GetAddresses() {
			if _, err := netip.ParseAddr(a); err != nil {
				errs = append(errs, fmt.Errorf("address %.64q is not an IP address", a))
			}
		}
	}
	if n := len(h.GetRuntimes()); n > MaxRuntimes {
		errs = append(errs, fmt.Errorf("%d runtimes, more than %d", n, MaxRuntimes))
	}
	for _, r := range h.GetRuntimes() {
		if len(r) > maxString {
			errs = append(errs, fmt.Errorf("runtime %.64q is longer than %d bytes", r, maxString))
		}
	}
	if sc := h.GetScopes(); sc != nil {
		if err := CheckScopes(sc); err != nil {
			errs = append(errs, fmt.Errorf("scopes: %w", err))
		}
	}
	if err := CheckStatusReport(&hubv1.StatusReport{Statuses: h.GetStatuses()}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CheckScopes reports what makes a scope report unusable: too many peers,
// a coordinate of too many dimensions or with a number that is not finite
// (it would poison every distance computed from it), a latitude or
// longitude out of range, a port that is no port, strings beyond bounds.
// The hub drops such a report.
func CheckScopes(sc *hubv1.Scopes) error {
	var errs []error
	for what, s := range map[string]string{"network id": sc.GetNetworkId(), "subnet": sc.GetSubnet(), "gateway": sc.GetGateway(), "region": sc.GetRegion()} {
		if len(s) > maxString {
			errs = append(errs, fmt.Errorf("%s is %d bytes long, more than %d", what, len(s), maxString))
		}
	}
	if n := len(sc.GetPeers()); n > MaxPeers {
		errs = append(errs, fmt.Errorf("%d peers, more than %d", n, MaxPeers))
	} else {
		for _, p := range sc.GetPeers() {
			if len(p.GetDeviceId()) > maxString || len(p.GetAddress()) > maxString {
				errs = append(errs, fmt.Errorf("peer %.64q: a name or address longer than %d bytes", p.GetDeviceId(), maxString))
				break
			}
			if !finite(p.GetRttMs()) || p.GetRttMs() < 0 {
				errs = append(errs, fmt.Errorf("peer %.64q: round trip %v ms", p.GetDeviceId(), p.GetRttMs()))
				break
			}
		}
	}
	if c := sc.GetCoordinate(); c != nil {
		if len(c.GetVec()) > MaxDimensions {
			errs = append(errs, fmt.Errorf("coordinate of %d dimensions, more than %d", len(c.GetVec()), MaxDimensions))
		} else if !allFinite(c.GetVec()...) || !allFinite(c.GetError(), c.GetAdjustment(), c.GetHeight()) {
			errs = append(errs, errors.New("coordinate holds a number that is not finite"))
		}
	}
	if sc.GetHasPoint() && (!allFinite(sc.GetLatitude(), sc.GetLongitude()) || math.Abs(sc.GetLatitude()) > 90 || math.Abs(sc.GetLongitude()) > 180) {
		errs = append(errs, fmt.Errorf("location %v,%v is not a latitude and longitude", sc.GetLatitude(), sc.GetLongitude()))
	}
	if p := sc.GetMeshPort(); p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("mesh port %d out of range", p))
	}
	if !finite(sc.GetHubRttMs()) || sc.GetHubRttMs() < 0 {
		errs = append(errs, fmt.Errorf("hub round trip %v ms", sc.GetHubRttMs()))
	}
	return errors.Join(errs...)
}

// CheckStatusReport reports what makes a status report unusable: more
// statuses or events than any device has, or messages beyond bounds. The
// hub drops such a report.
func CheckStatusReport(r *hubv1.StatusReport) error {
	var errs []error
	if n := len(r.GetStatuses()); n > MaxStatuses {
		errs = append(errs, fmt.Errorf("%d workload statuses, more than %d", n, MaxStatuses))
	}
	if n := len(r.GetEvents()); n > MaxEvents {
		errs = append(errs, fmt.Errorf("%d events, more than %d", n, MaxEvents))
	}
	for _, st := range r.GetStatuses() {
		if len(st.GetUid()) > maxString || len(st.GetMessage()) > maxText || len(st.GetReason()) > maxString {
			errs = append(errs, fmt.Errorf("status of %.64q: a field beyond its bound", st.GetUid()))
			break
		}
	}
	for _, ev := range r.GetEvents() {
		if len(ev.GetWorkloadUid()) > maxString || len(ev.GetMessage()) > maxText || len(ev.GetReason()) > maxString {
			errs = append(errs, fmt.Errorf("event of %.64q: a field beyond its bound", ev.GetWorkloadUid()))
			break
		}
	}
	return errors.Join(errs...)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func allFinite(fs ...float64) bool {
	for _, f := range fs {
		if !finite(f) {
			return false
		}
	}
	return true
}

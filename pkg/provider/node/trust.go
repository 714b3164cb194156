package node

import (
	"net/netip"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// ReasonPodIPRejected is the reason of the warning event of a pod whose
// device reported a pod IP that is not one of the device's own addresses.
const ReasonPodIPRejected = "PodIPRejected"

// reportedPodIP is the pod IP to publish for a device's report: the IP the
// device reported if it is one of the device's own addresses (as its hello
// gave them), else the device's address. A device is trusted to say which
// of its addresses a pod is served on, never to point a Service's endpoints
// at an address of another machine. rejected is the reported IP when it was
// not taken.
func reportedPodIP(reported string, addresses []string) (ip, rejected string) {
	first := ""
	if len(addresses) > 0 {
		first = addresses[0]
	}
	if reported == "" {
		return first, ""
	}
	if r, err := netip.ParseAddr(reported); err == nil {
		for _, a := range addresses {
			if ad, err := netip.ParseAddr(a); err == nil && ad.Unmap() == r.Unmap() {
				return a, ""
			}
		}
	}
	return first, reported
}

// checkPodIP returns the device's report with a pod IP the device may claim
// (reportedPodIP), and the device's address, the pod's host IP. A rejected
// IP is logged and told in an event.
func (n *accountNode) checkPodIP(pod *corev1.Pod, dev string, ws *hubv1.WorkloadStatus) (*hubv1.WorkloadStatus, string) {
	d, ok := n.m.fab.Device(n.account, dev)
	if !ok {
		// Not connected: its report is not taken as to where the pod is.
		ws = proto.CloneOf(ws)
		ws.PodIp = ""
		return ws, pod.Status.HostIP
	}
	ip, rejected := reportedPodIP(ws.GetPodIp(), d.Addresses)
	if rejected != "" {
		n.m.log.Warn("device reported a pod IP not its own; using the device's address", "pod", pod.Namespace+"/"+pod.Name, "device", dev, "reported", rejected, "addresses", d.Addresses)
		n.recorder.Eventf(pod, corev1.EventTypeWarning, ReasonPodIPRejected, "Device %s reported pod IP %q, which is not one of its addresses (%v); the pod IP is the device's address %s", dev, rejected, d.Addresses, ip)
	}
	if ip != ws.GetPodIp() {
		ws = proto.CloneOf(ws)
		ws.PodIp = ip
	}
	return ws, d.IP()
}

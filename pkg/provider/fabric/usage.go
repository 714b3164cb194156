package fabric

import (
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
)

// ReportUsage records the resource usage a device sent with its heartbeat;
// it replaces what the device sent before. Usage of workloads the device does
// not own is dropped.
func (f *Fabric) ReportUsage(id identity.Device, us []*hubv1.WorkloadUsage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := key(id)
	d := f.devices[k]
	if d == nil {
		return
	}
	d.prevUsage = d.usage
	d.usage = make(map[string]*hubv1.WorkloadUsage, len(us))
	for _, u := range us {
		if f.owner[u.GetUid()] == k {
			d.usage[u.GetUid()] = u
		}
	}
}

// Usage returns the newest usage reported for workload uid by the device it
// is placed on and the one before it, either nil if there is none.
func (f *Fabric) Usage(uid string) (cur, prev *hubv1.WorkloadUsage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devices[f.owner[uid]]
	if d == nil || d.sess == nil {
		return nil, nil
	}
	return d.usage[uid], d.prevUsage[uid]
}

package v1alpha1

import (
	"maps"

	"k8s.io/apimachinery/pkg/runtime"
)

// Hand-written deep copies: every reference field is copied.

// DeepCopyInto copies in into out.
func (in *EdgeDevice) DeepCopyInto(out *EdgeDevice) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a deep copy.
func (in *EdgeDevice) DeepCopy() *EdgeDevice {
	if in == nil {
		return nil
	}
	out := new(EdgeDevice)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *EdgeDevice) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopyInto copies in into out.
func (in *EdgeDeviceStatus) DeepCopyInto(out *EdgeDeviceStatus) {
	*out = *in
	if in.Capacity != nil {
		out.Capacity = in.Capacity.DeepCopy()
	}
	if in.Allocated != nil {
		out.Allocated = in.Allocated.DeepCopy()
	}
	if in.Labels != nil {
		out.Labels = maps.Clone(in.Labels)
	}
	if in.Clusters != nil {
		out.Clusters = append([]ClusterRef(nil), in.Clusters...)
	}
	in.LastSeen.DeepCopyInto(&out.LastSeen)
}

// DeepCopy returns a deep copy.
func (in *EdgeDeviceStatus) DeepCopy() *EdgeDeviceStatus {
	if in == nil {
		return nil
	}
	out := new(EdgeDeviceStatus)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *EdgeDeviceList) DeepCopyInto(out *EdgeDeviceList) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]EdgeDevice, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a deep copy.
func (in *EdgeDeviceList) DeepCopy() *EdgeDeviceList {
	if in == nil {
		return nil
	}
	out := new(EdgeDeviceList)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *EdgeDeviceList) DeepCopyObject() runtime.Object { return in.DeepCopy() }

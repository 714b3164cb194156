// Package v1alpha1 holds the Go types of edgefabric's custom resources, group
// edgefabric.io, version v1alpha1: EdgeDevice, one cluster-scoped object per
// device, the fleet view (`kubectl get edgedevices`). The provider writes them
// and deletes those of devices offline past its GC period; deleting one
// yourself decommissions its device (see docs/operations.md, "Removing
// devices"). Nothing else is read back to decide anything. The CRD manifest is
// deploy/helm/edgefabric/crds/edgefabric.io_edgedevices.yaml.
//
// It also declares, in names.go, every label, annotation, taint, condition
// type, secret type and reason edgefabric writes to Kubernetes objects, but
// for the reasons devices report, which are in pkg/apis/hub/v1/reasons.
//
// The agent must not import this package: it links the Kubernetes API types.
package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the types here.
var GroupVersion = schema.GroupVersion{Group: "edgefabric.io", Version: "v1alpha1"}

// AddToScheme adds the types to a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &EdgeDevice{}, &EdgeDeviceList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// DevicePhase says whether a device is connected to the provider.
type DevicePhase string

// Device phases.
const (
	DeviceOnline  DevicePhase = "Online"
	DeviceOffline DevicePhase = "Offline"
)

// EdgeDevice is one device of the fleet. Its name is <account>.<device ID>.
type EdgeDevice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status EdgeDeviceStatus `json:"status,omitempty"`
}

// EdgeDeviceStatus is what the provider knows of a device.
type EdgeDeviceStatus struct {
	// Account is the device's account.
	Account string `json:"account"`
	// DeviceID is the device's ID within its account.
	DeviceID string `json:"deviceID"`
	// Phase is Online while the device is connected.
	Phase DevicePhase `json:"phase"`
	// OS and Arch are the device's GOOS and GOARCH.
	OS   string `json:"os,omitempty"`
	Arch string `json:"arch,omitempty"`
	// Hostname is the device's host name.
	Hostname string `json:"hostname,omitempty"`
	// AgentVersion is the version of the device's agent.
	AgentVersion string `json:"agentVersion,omitempty"`
	// Capacity is what the device offers; Allocated what its pods request.
	Capacity  corev1.ResourceList `json:"capacity,omitempty"`
	Allocated corev1.ResourceList `json:"allocated,omitempty"`
	// Labels are the device's labels, as placement's device selectors see them.
	Labels map[string]string `json:"labels,omitempty"`
	// Clusters are the clusters the device belongs to, one per scope.
	Clusters []ClusterRef `json:"clusters,omitempty"`
	// Nodes names the virtual nodes of those clusters, comma-separated.
	Nodes string `json:"nodes,omitempty"`
	// LastSeen is when the device was last heard from: coarse, written on
	// change of anything else and at most every few minutes otherwise.
	LastSeen metav1.Time `json:"lastSeen,omitempty"`
}

// ClusterRef names one cluster a device belongs to.
type ClusterRef struct {
	// Scope is account, network or proximity.
	Scope string `json:"scope"`
	// ID is the cluster's ID within the scope; empty for the account scope.
	ID string `json:"id,omitempty"`
	// Node is the virtual node that stands for the cluster, if one is published.
	Node string `json:"node,omitempty"`
}

// EdgeDeviceList is a list of EdgeDevices.
type EdgeDeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeDevice `json:"items"`
}

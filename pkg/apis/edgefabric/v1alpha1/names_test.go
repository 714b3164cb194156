package v1alpha1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wireNames is the value of every name declared in names.go and in
// pkg/apis/hub/v1/reasons (as "reasons.Name"): the one place their values are
// written out again. They are written to Kubernetes objects and read by
// people, selectors and restarted providers, so a change here is a change of
// edgefabric's interface, to be made on purpose.
var wireNames = map[string]string{
	"LabelAccount":                            "edgefabric.io/account",
	"LabelScope":                              "edgefabric.io/scope",
	"LabelCluster":                            "edgefabric.io/cluster",
	"AnnotationDevice":                        "edgefabric.io/device",
	"AnnotationFencingEpoch":                  "edgefabric.io/fencing-epoch",
	"AnnotationDeviceLossGrace":               "edgefabric.io/device-loss-grace",
	"AnnotationFenceOnPartition":              "edgefabric.io/fence-on-partition",
	"AnnotationDeviceSelector":                "edgefabric.io/device-selector",
	"AnnotationDefaultContainer":              "kubectl.kubernetes.io/default-container",
	"AnnotationClusterMembers":                "edgefabric.io/cluster-members",
	"AnnotationClusterClaim":                  "edgefabric.io/cluster-claim",
	"TaintKey":                                "virtual-kubelet.io/provider",
	"TaintValue":                              "edgefabric",
	"ConditionPlaced":                         "edgefabric.io/placed",
	"SecretTypeBootstrapToken":                "edgefabric.io/bootstrap-token",
	"ReasonScheduled":                         "Scheduled",
	"ReasonFailedScheduling":                  "FailedScheduling",
	"ReasonDeviceLost":                        "DeviceLost",
	"ReasonDeviceRemoved":                     "DeviceRemoved",
	"ReasonDeviceLeftCluster":                 "DeviceLeftCluster",
	"ReasonClusterDissolved":                  "ClusterDissolved",
	"ReasonImagePlatform":                     "ImagePlatform",
	"ReasonPodIPRejected":                     "PodIPRejected",
	"ReasonAccountMismatch":                   "AccountMismatch",
	"ReasonUnschedulable":                     "Unschedulable",
	"ReasonOutOfCPU":                          "OutOfcpu",
	"ReasonOutOfMemory":                       "OutOfmemory",
	"ReasonOutOfPods":                         "OutOfpods",
	"ReasonPlaced":                            "Placed",
	"ReasonNoDeviceConnected":                 "NoDeviceConnected",
	"ReasonDevicesReady":                      "DevicesReady",
	"ReasonNoPressure":                        "NoPressure",
	"ReasonRouteCreated":                      "RouteCreated",
	"ReasonContainersNotReady":                "ContainersNotReady",
	"ReasonReadinessGatesNotReady":            "ReadinessGatesNotReady",
	"ReasonPodCompleted":                      "PodCompleted",
	"ReasonPodFailed":                         "PodFailed",
	"ReasonContainersNotInitialized":          "ContainersNotInitialized",
	"ReasonUnsupported":                       "Unsupported",
	"ReasonInvalidAnnotation":                 "InvalidAnnotation",
	"ReasonHostNetworkUnsupported":            "HostNetworkUnsupported",
	"ReasonHostPIDUnsupported":                "HostPIDUnsupported",
	"ReasonHostIPCUnsupported":                "HostIPCUnsupported",
	"ReasonPrivilegedUnsupported":             "PrivilegedUnsupported",
	"ReasonCapabilitiesUnsupported":           "CapabilitiesUnsupported",
	"ReasonHostPathUnsupported":               "HostPathUnsupported",
	"ReasonHostPortUnsupported":               "HostPortUnsupported",
	"ReasonUnknownRuntimeClass":               "UnknownRuntimeClass",
	"ReasonRuntimeClassUnsupported":           "RuntimeClassUnsupported",
	"ReasonEphemeralContainersUnsupported":    "EphemeralContainersUnsupported",
	"ReasonVolumeTypeUnsupported":             "VolumeTypeUnsupported",
	"ReasonFileKeyRefUnsupported":             "FileKeyRefUnsupported",
	"ReasonReadOnlyRootFilesystemUnsupported": "ReadOnlyRootFilesystemUnsupported",
	"ReasonSeccompProfileUnsupported":         "SeccompProfileUnsupported",
	"ReasonFSGroupUnsupported":                "FSGroupUnsupported",
	"ReasonSupplementalGroupsUnsupported":     "SupplementalGroupsUnsupported",
	"ReasonSysctlsUnsupported":                "SysctlsUnsupported",
	"ReasonSELinuxUnsupported":                "SELinuxUnsupported",
	"ReasonAppArmorProfileUnsupported":        "AppArmorProfileUnsupported",
	"ReasonProcMountUnsupported":              "ProcMountUnsupported",
	"ReasonHostUsersUnsupported":              "HostUsersUnsupported",
	"ReasonHostProcessUnsupported":            "HostProcessUnsupported",
	"reasons.ContainerCreating":               "ContainerCreating",
	"reasons.PodInitializing":                 "PodInitializing",
	"reasons.CreateContainerConfigError":      "CreateContainerConfigError",
	"reasons.CrashLoopBackOff":                "CrashLoopBackOff",
	"reasons.ErrImagePull":                    "ErrImagePull",
	"reasons.ImagePullBackOff":                "ImagePullBackOff",
	"reasons.ErrImageNeverPull":               "ErrImageNeverPull",
	"reasons.Completed":                       "Completed",
	"reasons.Error":                           "Error",
	"reasons.OOMKilled":                       "OOMKilled",
	"reasons.Killed":                          "Killed",
	"reasons.StartError":                      "StartError",
	"reasons.Fenced":                          "Fenced",
	"reasons.Pulling":                         "Pulling",
	"reasons.Pulled":                          "Pulled",
	"reasons.Failed":                          "Failed",
	"reasons.BackOff":                         "BackOff",
	"reasons.Started":                         "Started",
	"reasons.Killing":                         "Killing",
	"reasons.Unhealthy":                       "Unhealthy",
	"reasons.FailedMount":                     "FailedMount",
	"reasons.NoUserNamespace":                 "NoUserNamespace",
}

// declaredNames parses the string constants of a Go file, each under prefix
// and its name.
func declaredNames(t *testing.T, path, prefix string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	names := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: %s is not a string literal", path, n.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %s: %v", path, n.Name, err)
				}
				names[prefix+n.Name] = v
			}
		}
	}
	return names
}

// TestNames checks that the names keep their values and that no two names,
// in either package, have the same value: a value written to Kubernetes is
// declared once.
func TestNames(t *testing.T) {
	got := declaredNames(t, "names.go", "")
	for k, v := range declaredNames(t, filepath.Join("..", "..", "hub", "v1", "reasons", "reasons.go"), "reasons.") {
		got[k] = v
	}
	if diff := cmp.Diff(wireNames, got); diff != "" {
		t.Errorf("declared names (-want +got):\n%s", diff)
	}
	byValue := map[string]string{}
	for name, v := range got {
		if other, ok := byValue[v]; ok {
			t.Errorf("%s and %s are both %q", other, name, v)
		}
		byValue[v] = name
	}
}

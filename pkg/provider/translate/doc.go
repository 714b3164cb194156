// Package translate is the pure core that turns Kubernetes pods into the
// workloads edgefabric sends to device agents, and the agents' reports back
// into pod status.
//
// Everything here is a function of its arguments: no clients, no I/O, no
// goroutines, and the clock is passed in. The provider drives it:
//
//   - [Validate] decides whether a pod can run on edgefabric at all; its
//     [*UnsupportedError] carries a reason for events and status, and
//     [FailedStatus] turns it into the status of a pod that will never run.
//   - [Workload] translates a pod into a [hubv1.Workload], resolving
//     environment variables through an [EnvSource] (listers in the provider)
//     the way the kubelet does, and stamps it with a spec hash so an agent
//     can leave an unchanged workload running.
//   - [PodStatus] builds the pod's status from a [hubv1.WorkloadStatus] like a
//     kubelet would; [PendingStatus] is the status of a pod that is not (yet)
//     running on any device.
//
// Times written into statuses are truncated to whole seconds, the precision
// the API server stores, so a status built here compares equal to the same
// status read back from the API server.
package translate

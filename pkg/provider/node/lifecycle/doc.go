// Package lifecycle is the pure core of a virtual node's pod lifecycle: what
// the provider decides for one pod as it is created, updated, deleted,
// reported on by its device, and as devices and clusters change.
//
// Step(cfg, pod, event, now) returns the pod's next state and the actions
// the caller must carry out, in order: give a workload to a device, take it
// off, place the pod (a call into placement, whose result the caller feeds
// back as a Placed, Unplaceable or Rejected event), write the pod's status,
// record an event, delete the pod object. Step does no I/O, takes no lock
// and reads no clock: the node package (the shell) holds the states, steps
// them under its lock, and performs the actions after it.
//
// A pod is in one Phase at a time:
//
//	Unplaced  known, no device yet, a placement asked for (or tenancy not yet told)
//	Waiting   no device fits, or its config does not resolve; placed again on Retry
//	Failed    can never run here (unsupported, wrong account, rejected for room)
//	Creating  given to Device; a "creating" report is held until CreatingDue
//	Running   given to Device; every report is written
//	Misplaced Device cannot run its image; moved to another device on Retry
//	Deleting  deleted in Kubernetes; ends when its device confirms (or is away)
//	Gone      forgotten
//
// Evicted (the pod was deleted because its cluster dissolved) is a mark on
// any phase but Deleting: the pod goes on as it was until its deletion
// arrives. Seq, Epoch and Sent are data every phase carries.
//
// The node kept these as flags on each pod before; the combinations they
// could take map to phases as follows:
//
//	device="" waiting="" !failed !deleting           Unplaced
//	device=d (adopted after a restart), not yet sent  Unplaced, Device d
//	waiting=r device=""                               Waiting
//	waiting=r device=d (an update's config failed)    Waiting, Device d (still holds room)
//	failed                                            Failed
//	device=d creatingDue held=nil                     Creating
//	device=d creatingDue held=s                       Creating, Held s
//	device=d !creatingDue                             Running
//	misplaced=d device=d                              Misplaced
//	deleting                                          Deleting
//	evicted                                           Evicted on the phase it had
//	(removed from the node's maps)                    Gone
//
// Scenario tests are in testdata/*.txt (see lifecycle_test.go for the format);
// they reach every phase and every transition above.
package lifecycle

package hubv1

import "fmt"

// DecommissionedMarker is in the message of the PermissionDenied status the
// hub refuses a decommissioned device's certificate with: the agent tells
// that refusal (stop the workloads, wait for a new join) from the others.
const DecommissionedMarker = " was decommissioned; "

// DecommissionedMessage is that status's message for device id.
func DecommissionedMessage(id string) string {
	return fmt.Sprintf("device %s%sjoin it again with a bootstrap token", id, DecommissionedMarker)
}

package hubv1

// MaxMessageBytes bounds one message of the hub protocol, either way: both
// the hub and the agent set gRPC's send and receive limits to it (gRPC's
// default of 4 MiB a received message would refuse a desired state holding
// a few large secrets, and the device would reconnect for ever, sent each
// time the same state it cannot receive). A full desired state larger than
// this is sent in parts (SplitDesired), so it bounds one workload: its spec
// and its configMap and secret volumes together (Kubernetes keeps each
// secret and configMap under 1 MiB). It is also the most memory one message
// from a device can make the hub allocate.
const MaxMessageBytes = 64 << 20

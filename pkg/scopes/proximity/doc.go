// Package proximity estimates how close devices are and groups an account's
// devices into proximity clusters.
//
// Closeness comes from two sources. Network coordinates (Vivaldi, as in
// github.com/hashicorp/serf/coordinate): each agent keeps a Client, feeds it
// the round-trip times it measures to peers and to the hub together with their
// coordinates, and reports its own Coordinate; any two coordinates estimate
// the RTT between their devices with DistanceTo, with no measurement between
// them. Locations: an operator may give a device a point (latitude,
// longitude) or a region label (--location), see ParseLocation.
//
// Group is the pure function the provider runs over one account's devices: it
// forms clusters around seed devices by a radius in estimated RTT or in
// kilometres, deterministically, and keeps clusters and their IDs stable while
// devices join and leave when given its previous result.
//
// Everything here is pure apart from Client's lock; the caller measures RTTs
// and carries coordinates over the wire.
//
// Vivaldi is implemented here rather than imported from serf's coordinate
// package: serf v0.11.0 would add 300 KiB (1.45 %) to the agent, link
// hashicorp/go-metrics with its process-wide registry, raise miekg/dns (the
// agent's mDNS library) from v1.1.27 to v1.1.73, and take away Config.Seed
// (serf's random source is not settable). The numbers are in
// docs/dependencies.md.
package proximity

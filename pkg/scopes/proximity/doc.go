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
package proximity

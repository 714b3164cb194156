// Package version holds the version of the edgefabric binaries. The build sets it
// with -ldflags "-X github.com/edgefabric/edgefabric/pkg/version.Version=..." (see
// the Makefile); a plain `go build` leaves "dev".
package version

// Version is the release or `git describe` of the build; "dev" when not set by the
// linker.
var Version = "dev"

//go:build !unix

package supervisor

// openNoBlock: no FIFOs to wait on.
const openNoBlock = 0

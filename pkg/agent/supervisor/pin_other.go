//go:build !linux

package supervisor

import "os"

// pinnedPath is empty: elsewhere a runtime opens the mount by its real path,
// resolved beneath the volume at start (see pin_linux.go).
func pinnedPath(*os.File) string { return "" }

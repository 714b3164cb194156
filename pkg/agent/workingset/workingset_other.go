//go:build !linux

package workingset

import (
	"errors"
	"time"
)

// Trim does nothing outside Linux.
func Trim() (Stats, error) { return Stats{}, errors.ErrUnsupported }

// Wake does nothing outside Linux.
func Wake() error { return errors.ErrUnsupported }

// cpuTime is not measured outside Linux: every interval counts as idle, and
// Trim does nothing.
func cpuTime() time.Duration { return 0 }

func residentFile() int64 { return 0 }

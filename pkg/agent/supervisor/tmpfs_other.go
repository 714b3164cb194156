//go:build !linux

package supervisor

import (
	"errors"
	"os"
)

func mountTmpfs(string, int64, os.FileMode) (bool, error) {
	return false, errors.New("tmpfs is a Linux feature")
}

func unmountTmpfs(string) error { return nil }

func unmountUnder(string) error { return nil }

//go:build !linux

package supervisor

import "errors"

func mountTmpfs(string, int64) (bool, error) {
	return false, errors.New("tmpfs is a Linux feature")
}

func unmountTmpfs(string) error { return nil }

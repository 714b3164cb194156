//go:build !linux

package platform

import (
	"errors"
	"os"
)

func mapCodeFile(*os.File, int64, int) ([]byte, error) {
	return nil, errors.New("mapping code files is only supported on linux")
}

//go:build !linux

package pty

import "os"

func open() (*os.File, *os.File, error) { return nil, nil, ErrUnsupported }
func setSize(*os.File, Size) error      { return ErrUnsupported }
func getSize(*os.File) (Size, error)    { return Size{}, ErrUnsupported }
func isTerminal(*os.File) bool          { return false }

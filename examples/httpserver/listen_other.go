//go:build !wasip1

package main

import "net"

// preopenedListener: built natively, the server listens on $PORT itself.
func preopenedListener() (net.Listener, bool, error) { return nil, false, nil }

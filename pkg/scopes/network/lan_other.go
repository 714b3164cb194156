//go:build !linux

package network

func discoverLAN() (LAN, error) { return lanFromSourceAddress() }

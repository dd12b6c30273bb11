//go:build !unix

package netboot

import "syscall"

// setBroadcast is a no-op where rackflow does not run DHCP in production.
func setBroadcast(network, address string, c syscall.RawConn) error { return nil }

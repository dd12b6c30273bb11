//go:build unix

package netboot

import "syscall"

// setBroadcast enables SO_BROADCAST so DHCP replies can go to
// 255.255.255.255.
func setBroadcast(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}); err != nil {
		return err
	}
	return serr
}

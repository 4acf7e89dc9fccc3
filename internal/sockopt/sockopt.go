// Package sockopt holds the socket options that several of the agent's
// listeners share (the DNS server, the peer endpoint): binding the tunnel
// address before the interface has it. It imports only the standard
// library and x/sys; any package of data-mesher may use it.
package sockopt

import (
	"context"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// FreeBind is a net.ListenConfig Control that lets a listener bind the
// tunnel address before the interface has it (IP_FREEBIND, IPV6_FREEBIND),
// with SO_REUSEADDR for quick restarts.
func FreeBind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if network == "tcp6" || network == "udp6" {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// ListenTCP listens on a with FreeBind.
func ListenTCP(ctx context.Context, a netip.AddrPort) (net.Listener, error) {
	lc := net.ListenConfig{Control: FreeBind}
	return lc.Listen(ctx, "tcp", a.String())
}

// ListenUDP listens on a with FreeBind.
func ListenUDP(ctx context.Context, a netip.AddrPort) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: FreeBind}
	return lc.ListenPacket(ctx, "udp", a.String())
}

package wg

import (
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Interface is a snapshot of the mesh interface.
type Interface struct {
	Name string
	// Kind is "wireguard" (kernel) or "tuntap" (wireguard-go); either is
	// accepted once wgctrl confirms a WireGuard device behind it.
	Kind string
	// DeviceType is what wgctrl reports: "Linux kernel" or "userspace".
	DeviceType string
	Up         bool
	Addrs      []netip.Prefix // sorted; link-local addresses left out
	PublicKey  [32]byte
	ListenPort int
	Peers      []Peer // sorted by public key
}

// Peer is one WireGuard peer.
type Peer struct {
	PublicKey     [32]byte
	Endpoint      netip.AddrPort // zero if unknown
	AllowedIPs    []netip.Prefix
	LastHandshake time.Time // zero if never
}

// HandshakeAge is how long ago the last handshake was (or -1 if never).
func (p Peer) HandshakeAge(now time.Time) time.Duration {
	if p.LastHandshake.IsZero() {
		return -1
	}
	return now.Sub(p.LastHandshake)
}

// TunnelAddrs are the peer's own tunnel addresses: its allowed IPs that
// name a single host (/128 or /32). A peer routing a whole subnet has no
// single address here.
func (p Peer) TunnelAddrs() []netip.Addr {
	var out []netip.Addr
	for _, pr := range p.AllowedIPs {
		if pr.IsSingleIP() {
			out = append(out, pr.Addr())
		}
	}
	return out
}

// Seeds turns peers into gossip seeds: their tunnel addresses at port,
// sorted and without duplicates.
func Seeds(peers []Peer, port int) []string {
	var out []string
	for _, p := range peers {
		for _, a := range p.TunnelAddrs() {
			out = append(out, netip.AddrPortFrom(a, uint16(port)).String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Routed reports whether addr lies inside the allowed IPs of a peer: the
// only way WireGuard delivers to it, so the only way a challenge sent to it
// can be answered by someone holding that peer's key.
func Routed(addr netip.Addr, peers []Peer) bool {
	addr = addr.Unmap()
	for _, p := range peers {
		for _, pr := range p.AllowedIPs {
			if pr.Contains(addr) {
				return true
			}
		}
	}
	return false
}

// Local reports whether addr is one of the interface's own addresses.
func (i *Interface) Local(addr netip.Addr) bool {
	for _, p := range i.Addrs {
		if p.Addr() == addr.Unmap() {
			return true
		}
	}
	return false
}

func (i *Interface) String() string {
	state := "down"
	if i.Up {
		state = "up"
	}
	return i.Name + " (" + i.Kind + ", " + state + ", " + strconv.Itoa(len(i.Addrs)) + " addresses, " + strconv.Itoa(len(i.Peers)) + " peers)"
}

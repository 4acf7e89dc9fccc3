package agent

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/wg"
)

// tunnel is the mesh interface as the agent last saw it: its addresses
// (published in the host record, the reverse zones), its WireGuard peers
// (gossip seeds, the routes the reachability challenge requires), and the
// tunnel address the agent's listeners are bound to. The loop updates it;
// other goroutines (the prober, the challenge responder, the control API)
// read it.
type tunnel struct {
	name string

	mu    sync.Mutex
	iface *wg.Interface
	bind  netip.Addr
}

// pickBind chooses the address to listen on: the configured one, else the
// interface's first address, IPv6 first.
func pickBind(configured string, ifc *wg.Interface) (netip.Addr, bool) {
	if configured != "" {
		b, err := netip.ParseAddr(configured)
		return b, err == nil // IP_FREEBIND: listening works before the address is up
	}
	if ifc == nil || len(ifc.Addrs) == 0 {
		return netip.Addr{}, false
	}
	addrs := slices.Clone(ifc.Addrs)
	slices.SortStableFunc(addrs, func(x, y netip.Prefix) int {
		switch {
		case x.Addr().Is6() == y.Addr().Is6():
			return 0
		case x.Addr().Is6():
			return -1
		}
		return 1
	})
	return addrs[0].Addr(), true
}

// update takes a new snapshot of the interface and says what changed for
// the agent: its addresses; the peers' gossip addresses that are new; and
// the prefixes whose route changed (a peer removed or added, its allowed
// IPs edited), where verdicts of the reachability challenge no longer
// hold.
func (t *tunnel) update(ifc *wg.Interface, gossipPort int) (addrsChanged bool, newSeeds []string, rerouted []netip.Prefix) {
	t.mu.Lock()
	old := t.iface
	t.iface = ifc
	t.mu.Unlock()
	if ifc == nil {
		return false, nil, nil
	}
	addrsChanged = old == nil || !slices.Equal(old.Addrs, ifc.Addrs)
	newSeeds = wg.Seeds(ifc.Peers, gossipPort)
	if old != nil {
		oldSeeds := wg.Seeds(old.Peers, gossipPort)
		newSeeds = slices.DeleteFunc(newSeeds, func(s string) bool { return slices.Contains(oldSeeds, s) })
		rerouted = changedRoutes(old.Peers, ifc.Peers)
	}
	return addrsChanged, newSeeds, rerouted
}

// changedRoutes are the allowed IPs routed to another peer, or to none,
// or newly, between two peer lists.
func changedRoutes(before, after []wg.Peer) []netip.Prefix {
	type route struct {
		peer   [32]byte
		prefix netip.Prefix
	}
	routes := func(peers []wg.Peer) map[route]bool {
		m := map[route]bool{}
		for _, p := range peers {
			for _, pr := range p.AllowedIPs {
				m[route{p.PublicKey, pr.Masked()}] = true
			}
		}
		return m
	}
	b, a := routes(before), routes(after)
	var out []netip.Prefix
	for r := range b {
		if !a[r] && !slices.Contains(out, r.prefix) {
			out = append(out, r.prefix)
		}
	}
	for r := range a {
		if !b[r] && !slices.Contains(out, r.prefix) {
			out = append(out, r.prefix)
		}
	}
	return out
}

// setBind records the address the listeners use.
func (t *tunnel) setBind(b netip.Addr) {
	t.mu.Lock()
	t.bind = b
	t.mu.Unlock()
}

// Bind is the tunnel address the listeners use (invalid before one was
// chosen).
func (t *tunnel) Bind() netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bind
}

// peers are the WireGuard peers of the last snapshot.
func (t *tunnel) peers() []wg.Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.iface == nil {
		return nil
	}
	return t.iface.Peers
}

// routed reports whether WireGuard delivers to addr: the routes the prober
// and the gossip members need. A node bound to a loopback address (one
// machine: development, tests) counts loopback as routed too; a node on
// its tunnel address never does, so a member advertising a loopback
// address cannot make it talk to this machine's own services.
func (t *tunnel) routed(addr netip.Addr) bool {
	if addr.Unmap().IsLoopback() && t.Bind().IsLoopback() {
		return true
	}
	return wg.Routed(addr, t.peers())
}

// ownAddrs are the tunnel addresses this node publishes, sorted.
func (t *tunnel) ownAddrs() []netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []netip.Addr
	if t.iface != nil {
		for _, p := range t.iface.Addrs {
			out = append(out, p.Addr())
		}
	}
	if t.bind.IsValid() && !slices.Contains(out, t.bind) {
		out = append(out, t.bind)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// reversePrefixes are the mesh prefixes of the interface addresses.
func (t *tunnel) reversePrefixes() []netip.Prefix {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []netip.Prefix
	if t.iface != nil {
		for _, p := range t.iface.Addrs {
			out = append(out, p.Masked())
		}
	}
	return out
}

// serves builds the challenge responder's check: this node signs only for
// one of its own tunnel addresses, at its peer endpoint port, in a network
// it joined.
func (t *tunnel) serves(httpPort int, joined func(crdt.PublicKey) bool) func(crdt.PublicKey, netip.AddrPort) bool {
	return func(network crdt.PublicKey, at netip.AddrPort) bool {
		return at.Port() == uint16(httpPort) && slices.Contains(t.ownAddrs(), at.Addr()) && joined(network)
	}
}

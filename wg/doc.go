// Package wg is the mesh's view of its WireGuard interface, and nothing
// else: the interface's addresses and link state (netlink), its peers with
// their endpoints, allowed IPs and handshakes (wgctrl, for kernel and
// userspace devices alike), and the changes to both as events.
//
// It imports nothing from data-mesher (and no HTTP: the reachability
// challenge that runs over the tunnel is the peer protocol's, in mesh).
// The agent reads it; doctor probes it. Tests that need a real WireGuard
// device run in the namespace test bed (scripts/testbed) behind the e2e
// build tag.
package wg

// Package wg is the mesh's view of its WireGuard interface: the interface's
// addresses and link state (netlink), its peers with their endpoints,
// allowed IPs and handshakes (wgctrl, for kernel and userspace devices
// alike), and the changes to both as events. It also implements the
// reachability challenge: proof, over the tunnel, that whoever answers at
// a host's claimed address holds that host's key.
//
// It imports nothing from data-mesher; the agent passes keys and addresses
// in. Tests that need a real WireGuard device run in the namespace test
// bed (scripts/testbed) behind the e2e build tag.
package wg

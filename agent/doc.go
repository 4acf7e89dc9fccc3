// Package agent is the data-mesher daemon: it reads the configuration and
// the node key, keeps the replicated state on disk, and wires the parts
// together: wg (the interface, its peers, the reachability challenge),
// mesh (gossip, anti-entropy, bootstrap, the peer endpoint, timestamp
// authorities), crdt (the state and the resolved view) and dnsserver. It
// also serves the local control socket the command line talks to, and
// runs `dm-agent doctor`.
//
// cmd/dm-agent is a thin command line over this package; only it exits.
package agent

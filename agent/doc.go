// Package agent is the data-mesher daemon: the configuration (config.go,
// live.go: an immutable snapshot that Reload swaps whole), the node key
// and the state file (files.go, persist.go), and the parts it wires
// together around one loop (loop.go):
//
//   - tunnel.go: the WireGuard interface as last seen (from wg), its
//     addresses, peers and the address the listeners bind;
//   - own.go: this node's own records: host refresh, claims, the claims
//     still to timestamp (for mesh's stamper), witnessing;
//   - view.go: the view → DNS table → dns.json pipeline, which also hands
//     mesh's prober the hosts to challenge;
//   - peer.go: the peer endpoint's listener (mesh serves it);
//   - queries.go, facts.go: the answers of the control API (the agent is a
//     control.Backend), doctor's facts among them;
//   - metrics.go, verdicts.go, memory.go.
//
// The store (mesh.Store) notifies every change, adds and drops alike; that
// one notification drives persistence, the view and the prober's targets.
//
// It imports crdt, mesh, wg, dnsserver and control, and is imported by the
// command line and by doctor (for the configuration and the key and state
// file formats). Only the command line exits.
package agent

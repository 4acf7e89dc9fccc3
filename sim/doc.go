// Package sim is a deterministic simulator of a data-mesher mesh of ten
// thousand nodes and more, for measuring how sync behaves at a scale that
// does not fit in one process as real nodes.
//
// It runs the project's own sync code on a virtual clock and a simulated
// network: each node has a mesh.Store over a crdt.State, records spread
// through memberlist's TransmitLimitedQueue with the mesh's own gossip
// messages (mesh.QueueRecord, mesh.ParseGossip), anti-entropy rounds are
// mesh.Asker and mesh.Answer exchanging their real bodies, announced large
// records are fetched on mesh.FetchRetry's schedule, and every record
// enters through crdt ingestion, signatures checked. What is modelled
// rather than run is memberlist itself (model.go): its gossip and probe
// timers, fanout, retransmit limit, piggybacking, packet framing and
// compression, and its failure detection, with its real parameters
// (memberlist.DefaultLANConfig and the mesh's overrides). Failure
// detection runs at every node, or, for faults at 100,000 nodes, shared
// among Config.Agents agents (failure.go); the mesh's gossip queue is the
// mesh's own (mesh.Queue), memberlist's own broadcasts wait in memberlist's
// TransmitLimitedQueue.
//
// One seed gives one run, bit for bit: a single goroutine takes events in
// (time, sequence) order, every random choice comes from one generator
// seeded by Config.Seed, keys derive from the seed, and the clock is
// virtual. Report.Trace hashes every message sent, so two runs of a seed
// can be compared exactly. Invariants are checked at every step: no honest
// node ever accepts a forged record (hostile nodes inject them by gossip
// and by pushes), and at the end the honest nodes that can reach each
// other hold identical digests.
//
// scripts/sim is the command line; sim_test.go runs 10,000 nodes briefly.
// It imports crdt, mesh and memberlist (whose broadcast queue it runs), and
// nothing that touches a real network.
package sim

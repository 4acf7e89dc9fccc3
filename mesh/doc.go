// Package mesh is the whole peer protocol: gossip membership and broadcast
// over hashicorp/memberlist (the broadcasts waiting in a queue of the
// mesh's own, queue.go: memberlist's loses some), digest-based
// anti-entropy, bootstrap from peers and static data.json URLs, the peer
// HTTP endpoint and its routes (routes.go), the reachability challenge
// with its prober (challenge.go, prober.go), the peer clock (clock.go),
// and the client that asks RFC 3161 timestamp authorities for tokens
// (tsa.go, stamper.go).
//
// It imports crdt and internal/riblt and nothing else of data-mesher: the
// agent gives it a Store to serve and the functions it needs from
// elsewhere (which addresses WireGuard routes, which addresses this node
// answers for).
// Every record that arrives goes through crdt ingestion before it is
// stored or forwarded.
package mesh

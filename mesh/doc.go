// Package mesh moves records between nodes: gossip membership and broadcast
// over hashicorp/memberlist, digest-based anti-entropy, bootstrap from peers
// and static data.json URLs, the peer HTTP endpoint, and the client that
// asks RFC 3161 timestamp authorities for tokens.
//
// It knows the crdt package and nothing else of data-mesher: the agent gives
// it a state to serve and a place to deliver what arrives. Every record that
// arrives goes through crdt ingestion before it is stored or forwarded.
package mesh

// Package crdt is the data model of data-mesher: keys, signed records, their
// canonical encoding, ingestion (verification and policy), merge, pruning and
// the resolved DNS view.
//
// Everything here is pure: no sockets, files, goroutines or clocks. Time is
// always an argument, so that every node, given the same records and the same
// instant, computes the same state and the same view. The mesh package moves
// records between nodes, the agent persists them, and the dnsserver package
// serves the view; all of them call into this package and none of it calls
// out. A test (imports_test.go) keeps it that way.
//
// The state is a join-semilattice: merging is commutative, associative and
// idempotent, which the property tests in laws_test.go check on random states.
// The on-wire and on-disk formats are described in FORMAT.md beside this file.
package crdt

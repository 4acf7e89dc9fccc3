// Package crdt is the data model of data-mesher: keys, signed records, their
// canonical encoding, ingestion (verification and policy), merge, pruning,
// the resolved DNS view, and the namespaces other services write and read
// (declared in the signed settings, written as entry records, merged by the
// namespace's policy and read through State.Items).
//
// Everything here is pure: no sockets, files, goroutines or clocks. Time is
// always an argument, so that every node, given the same records and the same
// instant, computes the same state and the same view. The mesh package moves
// records between nodes, the agent persists them, and the dnsserver package
// serves the view; all of them call into this package and none of it calls
// out. It imports the standard library, x/crypto, digitorus/timestamp and
// internal/riblt (for the network's reconciliation symbols), nothing else
// of data-mesher. A test (imports_test.go) keeps it that way.
//
// The state is a join-semilattice: merging is commutative, associative and
// idempotent, which the property tests in laws_test.go check on random states.
// The settings and the clock (who may write, decay, limits) are applied by
// ingestion, Prune and the readers, never by the merge. The on-wire and
// on-disk formats are described in FORMAT.md beside this file.
//
// Files by concern: record.go, encoding.go and validate.go (the four older
// kinds), namespace.go (declarations), entry.go (the entry kind), space.go
// (entries' join rules per policy), entrypolicy.go (entries under the
// settings and the clock), items.go (reading namespaces), state.go
// (ingestion, merge, prune), attest.go (attestations of claims and
// first-writer-wins entries), view.go (DNS), digest.go, datajson.go.
package crdt

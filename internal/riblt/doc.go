// Package riblt reconciles two sets of 32-byte record hashes at a cost that
// grows with their difference, not with their size: a rateless invertible
// Bloom lookup table after Yang, Gilad and Alizadeh, "Practical Rateless Set
// Reconciliation" (SIGCOMM 2024).
//
// Each node keeps an Encoder over its set. A peer's coded symbols, minus the
// node's own, are the coded symbols of the difference; a Decoder peels items
// out of them until every symbol is zero, and then lists the items only the
// peer has and those only this node has. The symbols form an endless stream:
// a reconciliation asks for more until it decodes, and a difference of d
// items takes about 1.35·d to 2·d symbols (see DESIGN.md for measurements).
//
// The package is pure: no I/O, goroutines, clocks or randomness. The mesh
// package's anti-entropy rounds call it, with one Encoder per network kept
// up to date beside the digest index; DESIGN.md beside this file proposes how.
package riblt

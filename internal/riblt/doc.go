// Package riblt reconciles two sets of 32-byte record hashes at a cost that
// grows with their difference, not with their size: a rateless invertible
// Bloom lookup table after Yang, Gilad and Alizadeh, "Practical Rateless Set
// Reconciliation" (SIGCOMM 2024), written from the paper's description.
//
// The mesh package's anti-entropy rounds are its callers: each node keeps one
// Encoder per network, updated as records are added and dropped, serves runs
// of coded symbols from it, and reconciles with a peer's runs through a
// Decoder. DESIGN.md beside this file proposes the rounds and gives the
// measured figures. The package is pure: no I/O, goroutines, locks, clocks or
// randomness; the caller serializes access to an Encoder and its Decoders.
//
// # How it works
//
// A coded symbol holds the XOR of some items, the XOR of their checksums, and
// their count. Every item is in symbol 0 and in symbol k with probability
// 2/(k+2), so the first m symbols of N items cost about N·(1+2·ln(m/2))
// updates to build, and a symbol stream is endless: there is no table size to
// guess. Symbols are linear in the set, so a peer's symbols minus a node's own
// are the symbols of the difference. A symbol of the difference whose count is
// ±1 and whose checksum matches its sum holds one item, which can be removed
// from the other symbols it is in, exposing more ("peeling"). A difference of d
// items decodes from about 1.35·d to 1.45·d symbols for d ≥ 100, 1.7·d at
// d = 10, and one symbol at d = 1; symbol 0, which holds everything, doubles
// as the sets' fingerprint. A symbol takes about 41 bytes on the wire.
//
// Every machine must map an item to the same symbols: the indices are drawn
// by inverting an exact formula and settled by integer comparisons, never by
// floating point alone (TestMappingGolden pins the mapping).
//
// # Keys
//
// An item's checksum and the seed of its index sequence are SipHash-2-4 of
// the item under a Key, which both sides derive the same way. DeriveKey of a
// network's public key gives a fixed key per network: that lets each node keep
// its encoder built and serve a round by copying symbols, where a key chosen
// per exchange would make both sides re-encode every item each time
// (1+2·ln(m/2) symbol updates per item for m symbols: about 1.3 million at
// 100,000 records and m = 1,024, per side, per round). DeriveKey of the
// network key and a nonce gives such a per-exchange key for a caller that
// wants one (a fresh Encoder over the set), for instance as a second attempt
// before falling back; DESIGN.md recommends the fallback instead.
//
// # Hostile input
//
// The key is not a secret: every member can derive it. It makes the mapping a
// keyed PRF of the item, so that honest sets behave like random ones, and it
// separates networks and versions of the mapping. What it does not do is stop
// someone who can author records from grinding their contents, choosing
// records whose hashes map badly. What such an author can do:
//
//   - Make two records whose index patterns agree over the first m symbols.
//     The pattern carries E(m) bits (about 26 for m = 64, 46 for 256, 72 for
//     1,024), so that takes about 2^(E(m)/2) attempts, each a signature and
//     a hash: 2^13, 2^23 and 2^36, a moment, minutes and weeks of one core.
//     While both records are in a difference it takes more than m symbols to
//     decode, and past the caller's cap on symbols the round falls back to
//     listing hashes. That costs what reconciliation costs today, and only
//     while those records are in flight.
//   - Make two records with the same 64-bit index seed (about 2^32 attempts,
//     a day of one core): while both are in a difference it never decodes,
//     and again the caller falls back.
//
// What it cannot do: make a false "pure" symbol among honest nodes (that
// needs records x, y, z with checksum(x⊕y⊕z) = checksum(x) ⊕ checksum(y) ⊕
// checksum(z), a 64-bit condition with no structure to exploit: some 2^64
// hash evaluations), nor make a node accept any record (records are
// verified by hash and signature by the caller, whatever reconciliation
// claims).
//
// A hostile peer controls the symbols it sends, so it can make a Decoder find
// any set it likes: the decoded hashes are the peer's claims, as its hash
// prefixes are today. The Decoder checks every item it peels against the
// local set and bounds the items it will peel by what honest symbols could
// yield, so hostile symbols end in ErrInconsistent, ErrStale or a decoder
// that never finishes; when it does report Decoded, the answer explains every
// symbol received exactly. DecodeRun refuses input beyond its Limits before
// allocating, and nothing in the package panics on peer input.
package riblt

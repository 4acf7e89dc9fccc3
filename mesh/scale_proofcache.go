package mesh

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"

	"github.com/data-mesher/data-mesher/crdt"
)

// proofCache remembers member proofs whose signature verified, so that
// each distinct proof costs one ed25519 verification per node instead of
// one per alive message. memberlist calls the alive delegate for every
// alive message it receives, repeats included, under its node lock, and
// each node retransmits each alive message RetransmitMult·⌈log10(N+1)⌉
// times: at 1,000 members a node receives some 12 copies of each of the
// 1,000 proofs while the mesh forms, 12,000 verifications (about 0.7 s of
// one core) per node where 1,000 suffice. Only the signature is cached:
// a proof's age, the shared networks, bans and routes are judged on every
// message, as before.
//
// The key is a SHA-256 of everything signed and the signature, so a
// cached entry only ever answers for the exact bytes that verified.
type proofCache struct {
	mu sync.Mutex
	ok map[[32]byte]struct{}
}

// proofCacheSize bounds the cache: enough for every proof of a mesh of
// a few thousand members with one refresh each. When full it is emptied,
// which costs one verification per member again, never a wrong answer.
const proofCacheSize = 16384

// verify reports whether sig is key's signature of msg.
func (c *proofCache) verify(key crdt.PublicKey, msg, sig []byte) bool {
	h := sha256.New()
	h.Write(key[:])
	h.Write(sig)
	h.Write(msg)
	var k [32]byte
	h.Sum(k[:0])
	c.mu.Lock()
	_, hit := c.ok[k]
	c.mu.Unlock()
	if hit {
		return true
	}
	if !ed25519.Verify(key[:], msg, sig) {
		return false
	}
	c.mu.Lock()
	if c.ok == nil || len(c.ok) >= proofCacheSize {
		c.ok = map[[32]byte]struct{}{}
	}
	c.ok[k] = struct{}{}
	c.mu.Unlock()
	return true
}

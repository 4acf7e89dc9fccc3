package mesh

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// eventually polls cond until it holds or timeout passes; the message says
// what was awaited.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// waitFor polls cond until it holds (true) or timeout has passed (false).
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

func testKey(name string) crdt.PrivateKey {
	seed := sha256.Sum256([]byte("data-mesher mesh test key " + name))
	k, err := crdt.NewPrivateKeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("test setup: %v", err))
	}
	return v
}

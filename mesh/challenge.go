package mesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/data-mesher/data-mesher/crdt"
)

// The reachability challenge. Before a host's names enter a node's view,
// the node sends a fresh nonce to each of the host's claimed addresses, at
// its peer endpoint port, over the tunnel. Whoever answers must sign
//
//	"data-mesher/v1 challenge\0" ‖ nonce (32) ‖ network (32) ‖ address (16) ‖ port (2)
//
// with the host's node key. A host claiming another node's address is
// answered there by that other node, whose signature does not verify under
// the claimant's key; and the address must lie inside the allowed IPs of
// one of this node's WireGuard peers (the Prober's Routed), or WireGuard
// would not deliver there at all. A host passes only if all its addresses
// pass.
//
// The request body is version (1) ‖ nonce ‖ network ‖ address ‖ port; the
// answer is the signature (64) ‖ the answerer's public key (32).

const challengeContext = "data-mesher/v1 challenge\x00"

const challengeLen = 1 + 32 + 32 + 16 + 2

func challengeMessage(nonce [32]byte, network crdt.PublicKey, addr netip.Addr, port uint16) []byte {
	m := make([]byte, 0, len(challengeContext)+challengeLen)
	m = append(m, challengeContext...)
	m = append(m, nonce[:]...)
	m = append(m, network[:]...)
	a := addr.As16()
	m = append(m, a[:]...)
	return binary.BigEndian.AppendUint16(m, port)
}

// Responder answers challenges for this node on the peer endpoint
// (POST /v1/challenge).
type Responder struct {
	Key crdt.PrivateKey
	// Serves reports whether this node answers for network at addr:port
	// (one of its tunnel addresses and its HTTP port, in a joined
	// network). It refuses to sign for anything else, so it cannot be used
	// to vouch for an address it does not hold.
	Serves func(network crdt.PublicKey, at netip.AddrPort) bool
}

// ServeHTTP answers one challenge.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, challengeLen+1))
	if err != nil || len(body) != challengeLen || body[0] != 1 {
		http.Error(w, "bad challenge", http.StatusBadRequest)
		return
	}
	var nonce [32]byte
	var network crdt.PublicKey
	copy(nonce[:], body[1:33])
	copy(network[:], body[33:65])
	addr := netip.AddrFrom16([16]byte(body[65:81])).Unmap()
	port := binary.BigEndian.Uint16(body[81:83])
	if r.Serves == nil || !r.Serves(network, netip.AddrPortFrom(addr, port)) {
		http.Error(w, "this node does not answer for that address and network", http.StatusForbidden)
		return
	}
	pub := r.Key.Public()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(append(r.Key.Sign(challengeMessage(nonce, network, addr, port)), pub[:]...))
}

// challenge asks whoever answers at addr:port to prove it holds node's key
// in network. A nil error is a pass.
func challenge(ctx context.Context, client *http.Client, network, node crdt.PublicKey, addr netip.Addr, port uint16) error {
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	body := make([]byte, 0, challengeLen)
	body = append(body, 1)
	body = append(body, nonce[:]...)
	body = append(body, network[:]...)
	a := addr.As16()
	body = append(body, a[:]...)
	body = binary.BigEndian.AppendUint16(body, port)
	url := "http://" + netip.AddrPortFrom(addr, port).String() + PathChallenge
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("no answer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return fmt.Errorf("reading the answer from %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, bytes.TrimSpace(reply))
	}
	if len(reply) != ed25519.SignatureSize+ed25519.PublicKeySize {
		return fmt.Errorf("%s answered %d bytes, not a signature and key", url, len(reply))
	}
	if !ed25519.Verify(node[:], challengeMessage(nonce, network, addr, port), reply[:ed25519.SignatureSize]) {
		return fmt.Errorf("the node answering at %s holds key %s, not the key of the host claiming it", url,
			crdt.PublicKey(reply[ed25519.SignatureSize:]).Short())
	}
	return nil
}

package mesh

import (
	"crypto"
	"math/big"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/digitorus/timestamp"
)

func timestampQuery(h crdt.Hash) ([]byte, error) {
	return (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: h[:], Certificates: true, Nonce: big.NewInt(7)}).Marshal()
}

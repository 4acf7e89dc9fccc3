package crdt

import (
	_ "embed"
	"encoding/pem"
)

// FreeTSA (https://freetsa.org) is a free public RFC 3161 authority. Its root
// ships here as an optional default: `dm-agent network create --freetsa`
// pins it and lists its URL in the new network's settings. Nothing trusts it
// unless the admin's signed settings say so.
//
// Provenance: the root CA published at https://freetsa.org/files/cacert.pem,
// "O=Free TSA, OU=Root CA, CN=www.freetsa.org", valid 2016-03-13 to
// 2041-03-07, SHA-256 fingerprint
// A6:37:9E:7C:EC:C0:5F:AA:3C:BF:07:60:13:D7:45:E3:27:BB:BA:A3:8C:0B:9A:F2:24:69:D4:70:1D:18:AA:BC
// (checked against independently published copies; TestFreeTSARoot keeps it).
//
//go:embed roots/freetsa-root.pem
var freeTSARootPEM []byte

// FreeTSAURL is FreeTSA's time-stamping endpoint.
const FreeTSAURL = "https://freetsa.org/tsr"

// FreeTSARootFingerprint is the SHA-256 of FreeTSA's root certificate (DER).
const FreeTSARootFingerprint = "a6379e7cecc05faa3cbf076013d745e327bbbaa38c0b9af22469d4701d18aabc"

// FreeTSARoot returns FreeTSA's root certificate in DER, ready for
// Settings.TSARoots.
func FreeTSARoot() []byte {
	b, _ := pem.Decode(freeTSARootPEM)
	if b == nil {
		panic("crdt: embedded FreeTSA root is not PEM") // guarded by TestFreeTSARoot
	}
	return b.Bytes
}

package crdt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// PublicKey is an ed25519 public key. A node's public key is its identity; a
// network's admin public key is the network's identity.
type PublicKey [ed25519.PublicKeySize]byte

// ErrBadKey is wrapped by every key parsing error.
var ErrBadKey = errors.New("bad key")

// ParsePublicKey accepts the forms a user is likely to paste: an OpenSSH
// authorized key ("ssh-ed25519 AAAA… comment"), or the standard or URL-safe
// base64 of the 32 raw key bytes (the form `wg` users are used to and the one
// data.json uses).
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	s = strings.TrimSpace(s)
	if s == "" {
		return k, fmt.Errorf("%w: empty; want \"ssh-ed25519 AAAA…\" (the line of a .pub file)", ErrBadKey)
	}
	if strings.HasPrefix(s, "ssh-") || strings.HasPrefix(s, "ecdsa-") || strings.HasPrefix(s, "sk-") {
		fields := strings.Fields(s)
		if fields[0] != ssh.KeyAlgoED25519 {
			return k, fmt.Errorf("%w: %s is not an ed25519 key; data-mesher keys are \"ssh-ed25519 AAAA…\" (dm-agent keygen makes one)", ErrBadKey, fields[0])
		}
		if len(fields) < 2 {
			return k, fmt.Errorf("%w: \"ssh-ed25519\" without the key after it; want the whole line of the .pub file", ErrBadKey)
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
		if err != nil {
			return k, fmt.Errorf("%w: the key after \"ssh-ed25519 \" is damaged or cut short (%q…); want the whole line of the .pub file", ErrBadKey, fields[1][:min(len(fields[1]), 12)])
		}
		cpk, ok := pk.(ssh.CryptoPublicKey)
		if !ok {
			return k, fmt.Errorf("%w: the key after \"ssh-ed25519 \" is an %s key inside", ErrBadKey, pk.Type())
		}
		ek, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
		if !ok {
			return k, fmt.Errorf("%w: the key after \"ssh-ed25519 \" is an %s key inside", ErrBadKey, pk.Type())
		}
		copy(k[:], ek)
		return k, nil
	}
	b, err := decodeBase64(s)
	if err != nil {
		return k, fmt.Errorf("%w: %q is not a key; want \"ssh-ed25519 AAAA…\" (the line of a .pub file)", ErrBadKey, s[:min(len(s), 20)])
	}
	if len(b) != len(k) {
		return k, fmt.Errorf("%w: %q is not a key: as base64 it holds %d bytes, an ed25519 key has %d; want \"ssh-ed25519 AAAA…\" (the line of a .pub file)", ErrBadKey, s[:min(len(s), 20)], len(b), len(k))
	}
	copy(k[:], b)
	return k, nil
}

// decodeBase64 accepts padded or unpadded, standard or URL-safe base64.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return nil, err
}

// String returns the standard base64 of the key, as data.json writes it.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Short returns 8 characters that tell keys apart, for logs and tables:
// those that follow the part every ed25519 key shares in AuthorizedKey's
// "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI…", so grep finds a logged key
// in a NixOS configuration. Hashes and network ids print the same way.
func (k PublicKey) Short() string {
	// The ssh wire form: 19 bytes of header (length, "ssh-ed25519",
	// length), then the key; 25 base64 characters cover 150 of the
	// header's 152 bits, so the 26th onwards carry the key.
	var wire [19 + ed25519.PublicKeySize]byte
	copy(wire[:], "\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20")
	copy(wire[19:], k[:])
	return base64.StdEncoding.EncodeToString(wire[:])[25:33]
}

// AuthorizedKey returns the key as "ssh-ed25519 AAAA…", the form NixOS
// configuration uses.
func (k PublicKey) AuthorizedKey() string {
	pk, err := ssh.NewPublicKey(ed25519.PublicKey(k[:]))
	if err != nil { // cannot happen: any 32 bytes make an ed25519 ssh key
		panic(err)
	}
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pk)), "\n")
}

// IsZero reports whether k is the all-zero key, which is never a valid identity.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// Compare orders keys by their bytes.
func (k PublicKey) Compare(o PublicKey) int { return bytes.Compare(k[:], o[:]) }

// MarshalText writes the base64 form.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText accepts every form ParsePublicKey accepts.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Verify reports whether sig is k's ed25519 signature of msg.
func (k PublicKey) Verify(msg, sig []byte) bool {
	return ed25519.Verify(ed25519.PublicKey(k[:]), msg, sig)
}

// PrivateKey is an ed25519 private key. The zero value is not a key.
type PrivateKey struct {
	k ed25519.PrivateKey
}

// GenerateKey makes a new key pair from rand (crypto/rand.Reader in production).
func GenerateKey(rand io.Reader) (PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generating ed25519 key: %w", err)
	}
	return PrivateKey{k: k}, nil
}

// NewPrivateKeyFromSeed derives the key pair from a 32-byte seed.
func NewPrivateKeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("%w: seed has %d bytes, want %d", ErrBadKey, len(seed), ed25519.SeedSize)
	}
	return PrivateKey{k: ed25519.NewKeyFromSeed(seed)}, nil
}

// ParsePrivateKey reads an unencrypted private key in any of these forms:
// OpenSSH ("-----BEGIN OPENSSH PRIVATE KEY-----", as ssh-keygen -t ed25519
// writes), PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----", as openssl genpkey
// writes), or base64 of the 32-byte seed or the 64-byte seed+public key.
func ParsePrivateKey(data []byte) (PrivateKey, error) {
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "-----BEGIN") {
		raw, err := ssh.ParseRawPrivateKey([]byte(text))
		if err != nil {
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				return PrivateKey{}, fmt.Errorf("%w: the private key is encrypted; data-mesher needs an unencrypted key (ssh-keygen -p -N '' -f FILE removes the passphrase)", ErrBadKey)
			}
			return PrivateKey{}, fmt.Errorf("%w: the PEM private key is damaged, or not a key ssh-keygen or openssl wrote; make a new one with dm-agent keygen", ErrBadKey)
		}
		switch k := raw.(type) {
		case ed25519.PrivateKey:
			return PrivateKey{k: k}, nil
		case *ed25519.PrivateKey:
			return PrivateKey{k: *k}, nil
		default:
			kind := "not an ed25519 key"
			switch raw.(type) {
			case *rsa.PrivateKey:
				kind = "an RSA key"
			case *ecdsa.PrivateKey:
				kind = "an ECDSA key"
			}
			return PrivateKey{}, fmt.Errorf("%w: the private key is %s; data-mesher keys are ed25519 (dm-agent keygen makes one)", ErrBadKey, kind)
		}
	}
	b, err := decodeBase64(text)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("%w: the private key is neither PEM nor base64 (want the \"-----BEGIN OPENSSH PRIVATE KEY-----\" file dm-agent keygen writes)", ErrBadKey)
	}
	switch len(b) {
	case ed25519.SeedSize:
		return NewPrivateKeyFromSeed(b)
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if !k.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(b[ed25519.SeedSize:])) {
			return PrivateKey{}, fmt.Errorf("%w: the public half of the 64-byte key does not match its seed", ErrBadKey)
		}
		return PrivateKey{k: k}, nil
	default:
		return PrivateKey{}, fmt.Errorf("%w: the base64 private key holds %d bytes; want 32 or 64 (or the PEM file ssh-keygen writes)", ErrBadKey, len(b))
	}
}

// MarshalOpenSSH returns the key in the OpenSSH PEM format ssh-keygen writes.
func (k PrivateKey) MarshalOpenSSH(comment string) ([]byte, error) {
	if k.k == nil {
		return nil, fmt.Errorf("%w: zero private key", ErrBadKey)
	}
	blk, err := ssh.MarshalPrivateKey(k.k, comment)
	if err != nil {
		return nil, fmt.Errorf("marshalling OpenSSH private key: %w", err)
	}
	return pem.EncodeToMemory(blk), nil
}

// MarshalPKCS8 returns the key as a PKCS#8 PEM block.
func (k PrivateKey) MarshalPKCS8() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.k)
	if err != nil {
		return nil, fmt.Errorf("marshalling PKCS#8 private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Seed returns the 32-byte seed the key is derived from.
func (k PrivateKey) Seed() []byte { return k.k.Seed() }

// Public returns the public half.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p[:], k.k[ed25519.SeedSize:])
	return p
}

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return k.k == nil }

// Sign signs msg.
func (k PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(k.k, msg) }

// Ed25519 returns the key for code that works with crypto/ed25519 directly
// (the reachability challenge). It must not be modified.
func (k PrivateKey) Ed25519() ed25519.PrivateKey { return k.k }

// Signer exposes the key as a crypto.Signer, for TLS or x509 use.
func (k PrivateKey) Signer() crypto.Signer { return k.k }

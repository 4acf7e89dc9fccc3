package crdt

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keys written by ssh-keygen and openssl, the tools users have, must load,
// and their public halves must match what those tools printed.
func TestParseKeysFromStandardTools(t *testing.T) {
	for _, tc := range []struct{ priv, pub string }{
		{"testdata/keys/ssh-keygen-ed25519", "testdata/keys/ssh-keygen-ed25519.pub"},
		{"testdata/keys/openssl-pkcs8.pem", "testdata/keys/openssl-pkcs8.pub.b64"},
	} {
		k, err := ParsePrivateKey(readFile(t, tc.priv))
		if err != nil {
			t.Fatalf("%s: %v", tc.priv, err)
		}
		pub, err := ParsePublicKey(string(readFile(t, tc.pub)))
		if err != nil {
			t.Fatalf("%s: %v", tc.pub, err)
		}
		if k.Public() != pub {
			t.Errorf("%s: public key %s, want %s", tc.priv, k.Public(), pub)
		}
	}
}

func TestPublicKeyForms(t *testing.T) {
	k := testKey("alice").Public()
	auth := k.AuthorizedKey()
	if !strings.HasPrefix(auth, "ssh-ed25519 AAAA") {
		t.Fatalf("authorized key form %q", auth)
	}
	for _, s := range []string{auth, auth + " alice@laptop", "  " + auth + "\n", k.String(),
		strings.TrimRight(k.String(), "="), strings.NewReplacer("+", "-", "/", "_").Replace(k.String())} {
		got, err := ParsePublicKey(s)
		if err != nil {
			t.Errorf("ParsePublicKey(%q): %v", s, err)
			continue
		}
		if got != k {
			t.Errorf("ParsePublicKey(%q) = %s, want %s", s, got, k)
		}
	}
	var viaText PublicKey
	if err := viaText.UnmarshalText([]byte(auth)); err != nil || viaText != k {
		t.Errorf("UnmarshalText: %v, %s", err, viaText)
	}
}

func TestParsePublicKeyRefuses(t *testing.T) {
	for name, s := range map[string]string{
		"rsa":       string(readFile(t, "testdata/keys/rsa.pub")),
		"short":     "AAAA",
		"not b64":   "this is not a key",
		"truncated": testKey("a").Public().AuthorizedKey()[:40],
		"empty":     "",
	} {
		if _, err := ParsePublicKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: err = %v, want ErrBadKey", name, err)
		}
	}
}

func TestPrivateKeyRoundTrips(t *testing.T) {
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemSSH, err := k.MarshalOpenSSH("node")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pemSSH, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Fatalf("OpenSSH form starts %q", pemSSH[:30])
	}
	pkcs8, err := k.MarshalPKCS8()
	if err != nil {
		t.Fatal(err)
	}
	seed := []byte(base64.StdEncoding.EncodeToString(k.Seed()))
	pub := k.Public()
	full := []byte(base64.StdEncoding.EncodeToString(append(k.Seed(), pub[:]...)))
	for name, b := range map[string][]byte{"openssh": pemSSH, "pkcs8": pkcs8, "seed": seed, "seed+public": full} {
		got, err := ParsePrivateKey(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Public() != k.Public() {
			t.Errorf("%s: round trip changed the key", name)
		}
	}
}

func TestParsePrivateKeyRefuses(t *testing.T) {
	_, err := ParsePrivateKey(readFile(t, "testdata/keys/encrypted-ed25519"))
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted key: %v, want a message saying it is encrypted", err)
	}
	b := testKey("b").Public()
	mismatched := base64.StdEncoding.EncodeToString(append(testKey("a").Seed(), b[:]...))
	for _, tc := range []struct {
		name, in, says string
	}{
		{"garbage", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "PEM"},
		{"wrong length", "AAAA", "want 32 or 64"},
		{"mismatched half", mismatched, "does not match"},
		{"not a key", "hello world", "neither PEM nor base64"},
	} {
		_, err := ParsePrivateKey([]byte(tc.in))
		if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrBadKey saying %q", tc.name, err, tc.says)
		}
	}
}

// Logs and tables show a key by the same 8 characters, the ones after the
// start every ed25519 key shares in its "ssh-ed25519 AAAA…" form.
func TestShortIsTheAuthorizedKeysDistinctPart(t *testing.T) {
	const shared = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"
	for i := range 64 {
		var k PublicKey
		for j := range k {
			k[j] = byte(i*31 + j*7)
		}
		full := k.AuthorizedKey()
		if !strings.HasPrefix(full, shared+k.Short()) || len(k.Short()) != 8 {
			t.Fatalf("Short %q of %s", k.Short(), full)
		}
	}
}

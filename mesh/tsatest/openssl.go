// Package tsatest runs a real, independent RFC 3161 timestamp authority for
// tests: OpenSSL's `openssl ts -reply` with a CA and a time-stamping
// certificate made at test time, behind a small HTTP front. Nothing in it is
// data-mesher code, so tokens it issues test the verifier against an
// implementation we did not write.
package tsatest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// OpenSSL is a timestamp authority backed by the openssl command.
type OpenSSL struct {
	dir     string
	RootDER []byte // the CA certificate to pin in settings
	mu      sync.Mutex
	down    atomic.Bool
	// Served counts the tokens issued.
	Served atomic.Int64
}

// ErrNoOpenSSL is returned when the openssl command is missing.
var ErrNoOpenSSL = errors.New("openssl is not installed")

// NewOpenSSL makes a CA and a TSA certificate in dir (which must exist and
// be private to the caller) and returns the authority.
func NewOpenSSL(dir string) (*OpenSSL, error) {
	if _, err := exec.LookPath("openssl"); err != nil {
		return nil, ErrNoOpenSSL
	}
	run := func(args ...string) error {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("openssl %v: %v: %s", args, err, out)
		}
		return nil
	}
	files := map[string]string{
		"tsa.ext": "extendedKeyUsage = critical,timeStamping\nkeyUsage = critical,digitalSignature\n",
		"tsa.cnf": `[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = .
serial = ./serial
signer_cert = ./tsa.crt
certs = ./tsa.crt
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`,
		"serial": "01\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=data-mesher test TSA root",
			"-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
		{"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=data-mesher test TSA"},
		{"x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
			"-out", "tsa.crt", "-days", "365", "-extfile", "tsa.ext"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, err
		}
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("openssl wrote no PEM CA certificate")
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, err
	}
	return &OpenSSL{dir: dir, RootDER: blk.Bytes}, nil
}

// SetDown makes the HTTP front answer 503, as an unreachable or failing
// authority would.
func (o *OpenSSL) SetDown(down bool) { o.down.Store(down) }

// Reply answers one DER timestamp query with `openssl ts -reply`.
func (o *OpenSSL) Reply(query []byte) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := filepath.Join(o.dir, "query.tsq")
	r := filepath.Join(o.dir, "reply.tsr")
	if err := os.WriteFile(q, query, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("openssl", "ts", "-reply", "-config", "tsa.cnf", "-queryfile", "query.tsq", "-out", "reply.tsr")
	cmd.Dir = o.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("openssl ts -reply: %v: %s", err, out)
	}
	o.Served.Add(1)
	return os.ReadFile(r)
}

// ServeHTTP is the HTTP front: POST application/timestamp-query in,
// application/timestamp-reply out.
func (o *OpenSSL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o.down.Load() {
		http.Error(w, "timestamp authority is down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/timestamp-query" {
		http.Error(w, "POST application/timestamp-query", http.StatusBadRequest)
		return
	}
	query, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	reply, err := o.Reply(query)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/timestamp-reply")
	_, _ = io.Copy(w, bytes.NewReader(reply))
}

// CMSSign signs content with the authority's certificate as a bare CMS
// signature (`openssl cms -sign`, content type TSTInfo): what a token
// looks like without the ESS signing certificate attribute, which
// `openssl ts -reply` adds and `openssl cms -sign` does not.
func (o *OpenSSL) CMSSign(content []byte) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, out := filepath.Join(o.dir, "cms.in"), filepath.Join(o.dir, "cms.der")
	if err := os.WriteFile(in, content, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("openssl", "cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-econtent_type", "1.2.840.113549.1.9.16.1.4",
		"-signer", "tsa.crt", "-inkey", "tsa.key", "-outform", "DER", "-in", in, "-out", out)
	cmd.Dir = o.dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("openssl cms -sign: %v: %s", err, b)
	}
	return os.ReadFile(out)
}

// Verify runs `openssl ts -verify` on a token for the SHA-256 imprint
// digest, against the authority's CA: OpenSSL's own verdict.
func (o *OpenSSL) Verify(token, digest []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	in := filepath.Join(o.dir, "verify.tsr")
	if err := os.WriteFile(in, token, 0o600); err != nil {
		return err
	}
	cmd := exec.Command("openssl", "ts", "-verify", "-token_in", "-in", in, "-digest", fmt.Sprintf("%x", digest),
		"-CAfile", "ca.crt", "-untrusted", "tsa.crt")
	cmd.Dir = o.dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("openssl ts -verify: %v: %s", err, bytes.TrimSpace(b))
	}
	return nil
}

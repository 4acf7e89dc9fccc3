package mesh

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh/tsatest"
	"github.com/digitorus/pkcs7"
)

func newOpenSSL(t *testing.T) (*tsatest.OpenSSL, *httptest.Server) {
	t.Helper()
	tsa, err := tsatest.NewOpenSSL(t.TempDir())
	if errors.Is(err, tsatest.ErrNoOpenSSL) {
		t.Skip("openssl is not installed (apt-get install openssl)")
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tsa)
	t.Cleanup(srv.Close)
	return tsa, srv
}

func trustOf(roots ...[]byte) *crdt.Trust {
	admin := testKey("admin")
	s := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "x", HostTTL: time.Hour, TSARoots: roots}, admin))
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	if _, err := st.Ingest(s, time.Now()); err != nil {
		panic(err)
	}
	return st.Trust(admin.Public())
}

func fastClient() *TSAClient {
	return &TSAClient{Timeout: 5 * time.Second, Attempts: 2, Backoff: 10 * time.Millisecond}
}

// Tokens from an independent TSA (OpenSSL) verify against its pinned root,
// and the very same tokens do not verify against another root.
func TestOpenSSLTokensVerify(t *testing.T) {
	tsa, srv := newOpenSSL(t)
	other, _ := newOpenSSL(t)
	claim := crdt.Hash{0xab, 0xcd}
	tok, url, err := fastClient().Stamp(context.Background(), []string{srv.URL}, claim, trustOf(tsa.RootDER))
	if err != nil || url != srv.URL {
		t.Fatalf("Stamp: %v (%s)", err, url)
	}
	at, err := crdt.TSAVerifier{}.VerifyToken(tok, claim, trustOf(tsa.RootDER))
	if err != nil {
		t.Fatalf("token from openssl: %v", err)
	}
	if d := time.Since(at.Time); d < -time.Minute || d > time.Minute {
		t.Fatalf("token time %v is not now", at.Time)
	}
	if _, err := (crdt.TSAVerifier{}).VerifyToken(tok, claim, trustOf(other.RootDER)); !errors.Is(err, crdt.ErrUntrustedAttestor) {
		t.Fatalf("token against another pinned root: %v", err)
	}
	if _, err := (crdt.TSAVerifier{}).VerifyToken(tok, crdt.Hash{1}, trustOf(tsa.RootDER)); !errors.Is(err, crdt.ErrBadAttestation) {
		t.Fatalf("token against another claim: %v", err)
	}
	// The client itself refuses a token that would not verify.
	if _, _, err := fastClient().Stamp(context.Background(), []string{srv.URL}, claim, trustOf(other.RootDER)); !errors.Is(err, crdt.ErrUntrustedAttestor) {
		t.Fatalf("client kept a token from an unpinned TSA: %v", err)
	}
}

func closedURL(t *testing.T) string {
	l := must(net.Listen("tcp", "127.0.0.1:0"))
	u := "http://" + l.Addr().String() + "/tsr"
	l.Close()
	return u
}

// A token without the ESS signing certificate attribute (a bare CMS
// signature over a real TSTInfo, made with openssl cms -sign) is refused,
// as openssl ts -verify refuses it; the authority's own token passes both.
func TestOpenSSLTokenWithoutSigningCertificateRefused(t *testing.T) {
	tsa, srv := newOpenSSL(t)
	claim := crdt.Hash{0x5e, 0x55}
	tok, _, err := fastClient().Stamp(context.Background(), []string{srv.URL}, claim, trustOf(tsa.RootDER))
	if err != nil {
		t.Fatal(err)
	}
	if err := tsa.Verify(tok, claim[:]); err != nil {
		t.Fatalf("OpenSSL refuses its own token: %v", err)
	}
	bare, err := tsa.CMSSign(must(pkcs7.Parse(tok)).Content)
	if err != nil {
		t.Fatal(err)
	}
	if err := tsa.Verify(bare, claim[:]); err == nil || !strings.Contains(err.Error(), "signing certificate") {
		t.Fatalf("OpenSSL's verdict on the bare signature: %v", err)
	}
	if _, err := (crdt.TSAVerifier{}).VerifyToken(bare, claim, trustOf(tsa.RootDER)); !errors.Is(err, crdt.ErrBadAttestation) || !strings.Contains(err.Error(), "signing certificate attribute") {
		t.Fatalf("our verdict on the bare signature: %v", err)
	}
}

func TestStampFallsBackAndRetries(t *testing.T) {
	tsa, good := newOpenSSL(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "try again", http.StatusBadGateway)
			return
		}
		tsa.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	trust := trustOf(tsa.RootDER)

	_, url, err := fastClient().Stamp(context.Background(), []string{closedURL(t), down.URL, good.URL}, crdt.Hash{1}, trust)
	if err != nil || url != good.URL {
		t.Fatalf("fallback: %v, from %s", err, url)
	}
	_, url, err = fastClient().Stamp(context.Background(), []string{flaky.URL}, crdt.Hash{1}, trust)
	if err != nil || url != flaky.URL || calls.Load() != 2 {
		t.Fatalf("retry: %v, from %s after %d calls", err, url, calls.Load())
	}
	_, _, err = fastClient().Stamp(context.Background(), []string{down.URL}, crdt.Hash{1}, trust)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("all down: %v", err)
	}
	if _, _, err := fastClient().Stamp(context.Background(), nil, crdt.Hash{1}, trust); !errors.Is(err, ErrNoTSA) {
		t.Fatalf("no URLs: %v", err)
	}
}

func TestStampRefusesBadReplies(t *testing.T) {
	tsa, _ := newOpenSSL(t)
	trust := trustOf(tsa.RootDER)
	var mode atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "garbage":
			w.Write([]byte("hello"))
		case "huge":
			w.Write(make([]byte, 1<<20))
		case "replay":
			// A valid reply, but to another request: the nonce differs.
			q := must(timestampQuery(crdt.Hash{1}))
			w.Write(must(tsa.Reply(q)))
		}
	}))
	defer srv.Close()
	c := fastClient()
	for m, says := range map[string]string{"garbage": "reply", "huge": "larger", "replay": "nonce"} {
		mode.Store(m)
		before := time.Now()
		_, _, err := c.Stamp(context.Background(), []string{srv.URL}, crdt.Hash{1}, trust)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want an error about %q", m, err, says)
		}
		if time.Since(before) > time.Second {
			t.Errorf("%s: retried a reply that cannot get better", m)
		}
	}
}

// A claim made while the TSA is down stays inactive; when the TSA comes
// back, the stamper gets a token and the claim activates, with no restart.
func TestStamperActivatesClaimWhenTSAReturns(t *testing.T) {
	tsa, srv := newOpenSSL(t)
	tsa.SetDown(true)
	admin, alice := testKey("admin"), testKey("alice")
	now := time.Now()
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "nether", HostTTL: time.Hour,
		TSARoots: [][]byte{tsa.RootDER}, TSAURLs: []string{srv.URL}}, admin))
	host := must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: alice.Public(), Heartbeat: now,
		Addresses: []netip.Addr{netip.MustParseAddr("fd00::1")}}, alice))
	claim := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: alice.Public(), Name: "mors", Created: now}, alice))

	var mu sync.Mutex
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	if res := st.IngestAll([]*crdt.Record{set, host, claim}, now); len(res.Rejected) > 0 {
		t.Fatal(res.Rejected)
	}
	resolves := func() bool {
		mu.Lock()
		defer mu.Unlock()
		e := st.View(crdt.ViewConfig{Networks: []crdt.JoinedNetwork{{ID: admin.Public()}}}, time.Now()).Names["mors.nether"]
		return e != nil && e.Node == alice.Public()
	}
	pending := func() []StampJob {
		mu.Lock()
		defer mu.Unlock()
		if len(st.Attestations(admin.Public(), claim.Hash())) > 0 {
			return nil
		}
		s := st.Settings(admin.Public()).Settings()
		return []StampJob{{Network: admin.Public(), Claim: claim.Hash(), URLs: s.TSAURLs, Trust: st.Trust(admin.Public())}}
	}
	var delivered atomic.Int32
	deliver := func(r *crdt.Record) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := st.Ingest(r, time.Now()); err != nil {
			t.Errorf("delivered attestation refused: %v", err)
		}
		delivered.Add(1)
	}
	// Count the stamper's requests (the handler is swapped before the
	// stamper starts: the server reads it on every request).
	var tries atomic.Int32
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		tsa.ServeHTTP(w, r)
	})
	s := NewStamper(&TSAClient{Attempts: 1, Timeout: 2 * time.Second}, pending, deliver, nil)
	s.Interval = 20 * time.Millisecond
	s.MaxBackoff = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()

	// While the TSA is down the stamper keeps trying, and the claim stays
	// inactive.
	eventually(t, 10*time.Second, "three failed attempts", func() bool { return tries.Load() >= 3 })
	if resolves() || delivered.Load() != 0 {
		t.Fatal("claim active while the TSA is down")
	}
	tsa.SetDown(false)
	eventually(t, 10*time.Second, "the claim to activate", resolves)
	if tsa.Served.Load() != 1 || delivered.Load() != 1 {
		t.Fatalf("served %d tokens, delivered %d", tsa.Served.Load(), delivered.Load())
	}
	cancel()
	<-done
}

package wg

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("wg test " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(k ed25519.PrivateKey) [32]byte { return [32]byte(k.Public().(ed25519.PublicKey)) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// responderAt serves a Responder for k on a loopback port; it answers for
// any address on that port in network net.
func responderAt(t *testing.T, k ed25519.PrivateKey, network [32]byte) (*httptest.Server, netip.AddrPort) {
	t.Helper()
	var srv *httptest.Server
	r := &Responder{Key: k, Serves: func(n [32]byte, at netip.AddrPort) bool {
		return n == network && at.Port() == uint16(srv.Listener.Addr().(*net.TCPAddr).Port)
	}}
	mux := http.NewServeMux()
	mux.Handle("POST "+ChallengePath, r)
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, netip.MustParseAddrPort(srv.Listener.Addr().String())
}

func loopbackPeer() []Peer {
	return []Peer{{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
}

func newProber(t *testing.T, peers func() []Peer) (*Prober, *atomic.Int32) {
	changes := &atomic.Int32{}
	p := &Prober{Peers: peers, RetryAfter: 20 * time.Millisecond, TTL: time.Minute, OnChange: func() { changes.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	return p, changes
}

func TestChallengePassesForTheKeyHolder(t *testing.T) {
	net1 := [32]byte{1}
	alice := key("alice")
	_, at := responderAt(t, alice, net1)
	p, changes := newProber(t, loopbackPeer)
	p.Update([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}})
	eventually(t, "alice to pass", func() bool { return p.Reachable(net1, pub(alice)) })
	if changes.Load() == 0 {
		t.Fatal("no change reported")
	}
	if p.Reachable([32]byte{2}, pub(alice)) {
		t.Fatal("reachable in a network it was not checked in")
	}
}

// A host claiming an address where another node answers fails: the
// answer is signed by the other node's key.
func TestChallengeFailsForAnotherNodesAddress(t *testing.T) {
	net1 := [32]byte{1}
	alice, mallory := key("alice"), key("mallory")
	_, at := responderAt(t, alice, net1) // alice answers here
	p, _ := newProber(t, loopbackPeer)
	p.Update([]Target{{Network: net1, Node: pub(mallory), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}})
	eventually(t, "a verdict", func() bool { return len(p.Statuses()) == 1 })
	st := p.Statuses()[0]
	if st.OK || !strings.Contains(st.Err.Error(), "holds key") || p.Reachable(net1, pub(mallory)) {
		t.Fatalf("mallory claiming alice's address: %+v", st)
	}
}

func TestChallengeNeedsARoute(t *testing.T) {
	net1 := [32]byte{1}
	alice := key("alice")
	_, at := responderAt(t, alice, net1)
	p, _ := newProber(t, func() []Peer { return []Peer{{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::/64")}}} })
	p.Update([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}})
	eventually(t, "a verdict", func() bool { return len(p.Statuses()) == 1 })
	if st := p.Statuses()[0]; st.OK || !errors.Is(st.Err, ErrNotRouted) {
		t.Fatalf("address outside every peer's allowed IPs: %+v", st)
	}
}

// A host whose agent is down fails; when it comes back, it passes, without
// anyone restarting anything.
func TestChallengeFollowsTheAgent(t *testing.T) {
	net1 := [32]byte{1}
	alice := key("alice")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	at := netip.MustParseAddrPort(l.Addr().String())
	l.Close() // nobody answers yet
	p, _ := newProber(t, loopbackPeer)
	p.Update([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}})
	eventually(t, "a failed verdict", func() bool { return len(p.Statuses()) == 1 })
	if p.Reachable(net1, pub(alice)) {
		t.Fatal("reachable with its agent stopped")
	}
	l, err = net.Listen("tcp", at.String())
	if err != nil {
		t.Fatal(err)
	}
	r := &Responder{Key: alice, Serves: func([32]byte, netip.AddrPort) bool { return true }}
	srv := &http.Server{Handler: r}
	go srv.Serve(l)
	defer srv.Close()
	eventually(t, "alice to pass once her agent answers", func() bool { return p.Reachable(net1, pub(alice)) })
}

// All of a host's addresses must pass: listing a victim's address next to
// one's own does not get a name onto the victim's address.
func TestChallengeNeedsEveryAddress(t *testing.T) {
	net1 := [32]byte{1}
	mallory, victim := key("mallory"), key("victim")
	_, own := responderAt(t, mallory, net1)
	_, theirs := responderAt(t, victim, net1)
	p, _ := newProber(t, loopbackPeer)
	// Same loopback address, different ports: model them as two targets'
	// worth of addresses by checking each port separately.
	p.Update([]Target{{Network: net1, Node: pub(mallory), Addrs: []netip.Addr{own.Addr()}, Port: own.Port()}})
	eventually(t, "mallory's own address to pass", func() bool { return p.Reachable(net1, pub(mallory)) })
	p.Update([]Target{{Network: net1, Node: pub(mallory), Addrs: []netip.Addr{own.Addr(), netip.MustParseAddr("127.0.0.2")}, Port: own.Port()}})
	eventually(t, "the second address to be checked", func() bool { return len(p.Statuses()) == 2 })
	if p.Reachable(net1, pub(mallory)) {
		t.Fatal("a host with one failing address counts as reachable")
	}
	_ = theirs
}

func TestResponderRefusesOtherAddresses(t *testing.T) {
	r := &Responder{Key: key("a"), Serves: func([32]byte, netip.AddrPort) bool { return false }}
	rec := httptest.NewRecorder()
	body := make([]byte, challengeLen)
	body[0] = 1
	r.ServeHTTP(rec, httptest.NewRequest("POST", ChallengePath, strings.NewReader(string(body))))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("signed for an address it does not serve: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("POST", ChallengePath, strings.NewReader("short")))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("malformed challenge: %d", rec.Code)
	}
}

func TestSeedsAndRoutes(t *testing.T) {
	peers := []Peer{
		{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::2/128"), netip.MustParsePrefix("10.0.0.2/32")}},
		{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::3/128"), netip.MustParsePrefix("fd01::/64")}},
		{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::2/128")}},
	}
	got := Seeds(peers, 7946)
	want := []string{"10.0.0.2:7946", "[fd00::2]:7946", "[fd00::3]:7946"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("seeds %v, want %v", got, want)
	}
	for addr, routed := range map[string]bool{"fd00::2": true, "fd01::99": true, "fd02::1": false, "10.0.0.2": true, "::ffff:10.0.0.2": true} {
		if Routed(netip.MustParseAddr(addr), peers) != routed {
			t.Errorf("Routed(%s) != %v", addr, routed)
		}
	}
}

// A host's record can change while one of its addresses is being checked
// (here its addresses are reordered): the result must land on that address
// wherever it now stands, and the address must not stay marked in flight,
// never to be checked again.
func TestChallengeSurvivesAddressesChangingMidCheck(t *testing.T) {
	net1 := [32]byte{1}
	alice := key("alice")
	l, err := net.Listen("tcp4", "0.0.0.0:0") // 127.0.0.1 and 127.0.0.2 alike
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	inFlight, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	r := &Responder{Key: alice, Serves: func(n [32]byte, at netip.AddrPort) bool { return n == net1 && at.Port() == port }}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.Host, "127.0.0.1:") && held.CompareAndSwap(false, true) {
			close(inFlight) // the first check of a: hold it until the record changed
			<-release
		}
		r.ServeHTTP(w, req)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)

	p, _ := newProber(t, loopbackPeer)
	p.Update([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{a}, Port: port}})
	<-inFlight
	p.Update([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{b, a}, Port: port}})
	close(release)
	eventually(t, "alice to pass on both addresses", func() bool { return p.Reachable(net1, pub(alice)) })
	for _, st := range p.Statuses() {
		if !st.OK {
			t.Errorf("%s: %v", st.Addr, st.Err)
		}
	}
}

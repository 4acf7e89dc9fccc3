package mesh

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

func key(name string) crdt.PrivateKey { return testKey("challenge " + name) }

func pub(k crdt.PrivateKey) crdt.PublicKey { return k.Public() }

// responderAt serves a Responder for k on a loopback port; it answers for
// any address on that port in network net.
func responderAt(t *testing.T, k crdt.PrivateKey, network crdt.PublicKey) (*httptest.Server, netip.AddrPort) {
	t.Helper()
	var srv *httptest.Server
	r := &Responder{Key: k, Serves: func(n crdt.PublicKey, at netip.AddrPort) bool {
		return n == network && at.Port() == uint16(srv.Listener.Addr().(*net.TCPAddr).Port)
	}}
	mux := http.NewServeMux()
	mux.Handle("POST "+PathChallenge, r)
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, netip.MustParseAddrPort(srv.Listener.Addr().String())
}

// loopbackRouted routes 127.0.0.0/8, as a WireGuard peer whose allowed
// IPs hold it would.
func loopbackRouted(a netip.Addr) bool { return netip.MustParsePrefix("127.0.0.0/8").Contains(a) }

func newProber(t *testing.T, routed func(netip.Addr) bool) *Prober {
	p := &Prober{Routed: routed, RetryFirst: 20 * time.Millisecond, TTL: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	return p
}

func TestChallengePassesForTheKeyHolder(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice := key("alice")
	_, at := responderAt(t, alice, net1)
	p := newProber(t, loopbackRouted)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}}))
	eventually(t, 10*time.Second, "alice to pass", func() bool { return p.Reachable(net1, pub(alice)) })
	select {
	case <-p.Changes():
	default:
		t.Fatal("no change reported")
	}
	if p.Reachable(crdt.PublicKey{2}, pub(alice)) {
		t.Fatal("reachable in a network it was not checked in")
	}
	checked := p.Statuses()[0].Checked
	if got, want := p.Lapse(), checked.Add(p.TTL+time.Nanosecond); !got.Equal(want) {
		t.Fatalf("the pass lapses at %v, want its check plus the TTL, %v", got, want)
	}
}

// Lapse is the first moment Reachable turns false by itself, with no
// check: a pass older than the TTL. Whoever keeps the answers (the view)
// recomputes then instead of on a timer.
func TestProberLapseIsWhenReachableTurnsFalse(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice, bob := key("alice").Public(), key("bob").Public()
	p := &Prober{Routed: func(netip.Addr) bool { return false }, TTL: 3 * time.Second}
	if l := p.Lapse(); !l.IsZero() {
		t.Fatalf("no pass, yet one lapses at %v", l)
	}
	now := time.Now()
	p.Restore([]Verdict{
		{Network: net1, Node: alice, Addr: netip.MustParseAddr("fd00::1"), Port: 7331, Checked: now.Add(-2 * time.Second)},
		{Network: net1, Node: bob, Addr: netip.MustParseAddr("fd00::2"), Port: 7331, Checked: now.Add(-time.Second)},
	})
	first := p.Lapse()
	if want := now.Add(time.Second + time.Nanosecond); !first.Equal(want) {
		t.Fatalf("first lapse %v, want alice's check plus the TTL, %v", first, want)
	}
	if !p.Reachable(net1, alice) || !p.Reachable(net1, bob) {
		t.Fatal("a restored pass within the TTL does not count")
	}
	eventually(t, 10*time.Second, "alice's pass to lapse", func() bool { return time.Now().After(first) })
	if p.Reachable(net1, alice) {
		t.Fatal("alice is reachable after her lapse")
	}
	if !p.Reachable(net1, bob) {
		t.Fatal("bob lapsed with alice")
	}
	if got, want := p.Lapse(), now.Add(2*time.Second+time.Nanosecond); !got.Equal(want) {
		t.Fatalf("next lapse %v, want bob's, %v", got, want)
	}
	eventually(t, 10*time.Second, "bob's pass to lapse", func() bool { return time.Now().After(now.Add(2 * time.Second)) })
	if l := p.Lapse(); !l.IsZero() {
		t.Fatalf("every pass lapsed, yet one lapses at %v", l)
	}
}

// A host claiming an address where another node answers fails: the
// answer is signed by the other node's key.
func TestChallengeFailsForAnotherNodesAddress(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice, mallory := key("alice"), key("mallory")
	_, at := responderAt(t, alice, net1) // alice answers here
	p := newProber(t, loopbackRouted)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(mallory), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}}))
	eventually(t, 10*time.Second, "a verdict", func() bool { return len(p.Statuses()) == 1 })
	st := p.Statuses()[0]
	if st.OK || !strings.Contains(st.Err.Error(), "holds key") || p.Reachable(net1, pub(mallory)) {
		t.Fatalf("mallory claiming alice's address: %+v", st)
	}
}

func TestChallengeNeedsARoute(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice := key("alice")
	_, at := responderAt(t, alice, net1)
	p := newProber(t, netip.MustParsePrefix("fd00::/64").Contains)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}}))
	eventually(t, 10*time.Second, "a verdict", func() bool { return len(p.Statuses()) == 1 })
	if st := p.Statuses()[0]; st.OK || !errors.Is(st.Err, ErrNotRouted) {
		t.Fatalf("address outside every peer's allowed IPs: %+v", st)
	}
}

// A host whose agent is down fails; when it comes back, it passes, without
// anyone restarting anything.
func TestChallengeFollowsTheAgent(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice := key("alice")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	at := netip.MustParseAddrPort(l.Addr().String())
	l.Close() // nobody answers yet
	p := newProber(t, loopbackRouted)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}}))
	eventually(t, 10*time.Second, "a failed verdict", func() bool { return len(p.Statuses()) == 1 })
	if p.Reachable(net1, pub(alice)) {
		t.Fatal("reachable with its agent stopped")
	}
	l, err = net.Listen("tcp", at.String())
	if err != nil {
		t.Fatal(err)
	}
	r := &Responder{Key: alice, Serves: func(crdt.PublicKey, netip.AddrPort) bool { return true }}
	srv := &http.Server{Handler: r}
	go srv.Serve(l)
	defer srv.Close()
	eventually(t, 10*time.Second, "alice to pass once her agent answers", func() bool { return p.Reachable(net1, pub(alice)) })
}

// All of a host's addresses must pass: listing a victim's address next to
// one's own does not get a name onto the victim's address.
func TestChallengeNeedsEveryAddress(t *testing.T) {
	net1 := crdt.PublicKey{1}
	mallory, victim := key("mallory"), key("victim")
	_, own := responderAt(t, mallory, net1)
	_, theirs := responderAt(t, victim, net1)
	p := newProber(t, loopbackRouted)
	// Same loopback address, different ports: model them as two targets'
	// worth of addresses by checking each port separately.
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(mallory), Addrs: []netip.Addr{own.Addr()}, Port: own.Port()}}))
	eventually(t, 10*time.Second, "mallory's own address to pass", func() bool { return p.Reachable(net1, pub(mallory)) })
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(mallory), Addrs: []netip.Addr{own.Addr(), netip.MustParseAddr("127.0.0.2")}, Port: own.Port()}}))
	eventually(t, 10*time.Second, "the second address to be checked", func() bool { return len(p.Statuses()) == 2 })
	if p.Reachable(net1, pub(mallory)) {
		t.Fatal("a host with one failing address counts as reachable")
	}
	_ = theirs
}

func TestResponderRefusesOtherAddresses(t *testing.T) {
	r := &Responder{Key: key("a"), Serves: func(crdt.PublicKey, netip.AddrPort) bool { return false }}
	rec := httptest.NewRecorder()
	body := make([]byte, challengeLen)
	body[0] = 1
	r.ServeHTTP(rec, httptest.NewRequest("POST", PathChallenge, strings.NewReader(string(body))))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("signed for an address it does not serve: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("POST", PathChallenge, strings.NewReader("short")))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("malformed challenge: %d", rec.Code)
	}
}

// A host's record can change while one of its addresses is being checked
// (here its addresses are reordered): the result must land on that address
// wherever it now stands, and the address must not stay marked in flight,
// never to be checked again.
func TestChallengeSurvivesAddressesChangingMidCheck(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice := key("alice")
	l, err := net.Listen("tcp4", "0.0.0.0:0") // 127.0.0.1 and 127.0.0.2 alike
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	inFlight, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	r := &Responder{Key: alice, Serves: func(n crdt.PublicKey, at netip.AddrPort) bool { return n == net1 && at.Port() == port }}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.Host, "127.0.0.1:") && held.CompareAndSwap(false, true) {
			close(inFlight) // the first check of a: hold it until the record changed
			<-release
		}
		r.ServeHTTP(w, req)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)

	p := newProber(t, loopbackRouted)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{a}, Port: port}}))
	<-inFlight
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{b, a}, Port: port}}))
	close(release)
	eventually(t, 10*time.Second, "alice to pass on both addresses", func() bool { return p.Reachable(net1, pub(alice)) })
	for _, st := range p.Statuses() {
		if !st.OK {
			t.Errorf("%s: %v", st.Addr, st.Err)
		}
	}
}

// A host whose agent is not up yet when it is first checked (a cold start)
// passes within seconds of it coming up: failures are retried quickly at
// first (the default back-off starts at 250 ms), not after 15 s.
func TestColdStartRetriesQuickly(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice := key("alice")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	at := netip.MustParseAddrPort(l.Addr().String())
	l.Close() // not up yet
	p := &Prober{Routed: loopbackRouted, TTL: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}}))
	eventually(t, 10*time.Second, "a first, failed check", func() bool { return len(p.Statuses()) == 1 })
	l, err = net.Listen("tcp", at.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &Responder{Key: alice, Serves: func(crdt.PublicKey, netip.AddrPort) bool { return true }}}
	go srv.Serve(l)
	defer srv.Close()
	up := time.Now()
	eventually(t, 10*time.Second, "alice to pass soon after her agent came up", func() bool { return p.Reachable(net1, pub(alice)) })
	t.Logf("passed %v after the agent came up", time.Since(up).Round(10*time.Millisecond))
}

// When WireGuard's routes change, the hosts there are checked again at
// once: a pass does not outlive the route it was made through (it would
// otherwise stand until its renewal, half the TTL later), and a host whose
// route comes back passes again at once.
func TestRecheckWhenRoutesChange(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice := key("alice")
	_, at := responderAt(t, alice, net1)
	var routed atomic.Bool
	routed.Store(true)
	p := &Prober{Routed: func(a netip.Addr) bool { return routed.Load() && loopbackRouted(a) }, TTL: time.Hour, RetryFirst: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Update(slices.Values([]Target{{Network: net1, Node: pub(alice), Addrs: []netip.Addr{at.Addr()}, Port: at.Port()}}))
	eventually(t, 10*time.Second, "alice to pass", func() bool { return p.Reachable(net1, pub(alice)) })

	routed.Store(false) // the peer was removed
	p.Recheck([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	if !p.Reachable(net1, pub(alice)) {
		t.Fatal("a change of routes elsewhere touched alice's verdict")
	}
	p.Recheck([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	eventually(t, 10*time.Second, "alice to fail once her route is gone", func() bool { return !p.Reachable(net1, pub(alice)) })
	if st := p.Statuses()[0]; !errors.Is(st.Err, ErrNotRouted) {
		t.Fatalf("the failure: %v", st.Err)
	}
	routed.Store(true) // back; the retry back-off (an hour here) does not apply
	p.Recheck([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	eventually(t, 10*time.Second, "alice to pass again once her route is back", func() bool { return p.Reachable(net1, pub(alice)) })
}

// Update keeps what it is told again, verdicts included, and forgets the
// hosts it is no longer told about.
func TestProberUpdateKeepsAndForgets(t *testing.T) {
	net1 := crdt.PublicKey{1}
	p := &Prober{Routed: func(netip.Addr) bool { return false }}
	now := time.Now()
	a, b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	alice, bob := key("alice").Public(), key("bob").Public()
	p.Restore([]Verdict{{Network: net1, Node: alice, Addr: a, Port: 7331, Checked: now}, {Network: net1, Node: bob, Addr: b, Port: 7331, Checked: now}})
	both := []Target{{Network: net1, Node: alice, Addrs: []netip.Addr{a}, Port: 7331}, {Network: net1, Node: bob, Addrs: []netip.Addr{b}, Port: 7331}}
	for range 3 {
		p.Update(slices.Values(both))
		if !p.Reachable(net1, alice) || !p.Reachable(net1, bob) {
			t.Fatal("an update that changed nothing dropped a verdict")
		}
	}
	p.Update(slices.Values(both[:1]))
	if !p.Reachable(net1, alice) || p.Reachable(net1, bob) || len(p.Statuses()) != 1 {
		t.Fatalf("bob is still held: %+v", p.Statuses())
	}
	p.Update(slices.Values(both))
	if p.Reachable(net1, bob) {
		t.Fatal("bob came back with his old verdict")
	}
}

// The scheduler looks at no host until the earliest check falls due, and
// misses none: a restored verdict is renewed at half the TTL, and a host
// that appears meanwhile is checked at once.
func TestProberWakesForTheEarliestCheck(t *testing.T) {
	net1 := crdt.PublicKey{1}
	alice, bob := key("alice").Public(), key("bob").Public()
	a, b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	p := &Prober{Routed: func(netip.Addr) bool { return false }, TTL: 4 * time.Second, RetryFirst: time.Hour}
	checked := time.Now().Add(-time.Second) // renewed one second from now
	p.Restore([]Verdict{{Network: net1, Node: alice, Addr: a, Port: 7331, Checked: checked}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	failed := func(node crdt.PublicKey) bool {
		for _, st := range p.Statuses() {
			if st.Node == node && errors.Is(st.Err, ErrNotRouted) {
				return true
			}
		}
		return false
	}
	p.Update(slices.Values([]Target{{Network: net1, Node: alice, Addrs: []netip.Addr{a}, Port: 7331}, {Network: net1, Node: bob, Addrs: []netip.Addr{b}, Port: 7331}}))
	eventually(t, 10*time.Second, "bob, new, to be checked at once", func() bool { return failed(bob) })
	if failed(alice) && time.Since(checked) < 2*time.Second {
		t.Fatal("alice was checked before her renewal fell due")
	}
	eventually(t, 10*time.Second, "alice's renewal", func() bool { return failed(alice) })
	if since := time.Since(checked); since < 2*time.Second {
		t.Fatalf("alice renewed %v after her check, before half the TTL", since)
	}
}

// At rest (nothing due), a look of the scheduler at 100,000 hosts costs
// nothing; it used to walk every host four times a second.
func BenchmarkProberScheduleAtRest(b *testing.B) {
	net1 := crdt.PublicKey{1}
	p := &Prober{Routed: func(netip.Addr) bool { return false }, TTL: 24 * time.Hour}
	now := time.Now()
	vs := make([]Verdict, 100000)
	for i := range vs {
		vs[i] = Verdict{Network: net1, Node: crdt.PublicKey{byte(i), byte(i >> 8), byte(i >> 16)}, Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Port: 7331, Checked: now}
	}
	p.Restore(vs)
	p.init()
	p.schedule()
	b.ResetTimer()
	for b.Loop() {
		p.schedule()
	}
}

// A node that cannot reach a mesh writes a bounded number of lines about
// it: the first failures of a minute, then one line saying the rest is not
// logged; a retry that fails again is not news at all. (A new node
// bootstrapping 100,000 hosts it could not reach wrote 190,000 lines in
// 40 s.)
func TestProberFailuresLogBounded(t *testing.T) {
	var buf syncBuffer
	p := &Prober{Routed: func(netip.Addr) bool { return false }, TTL: time.Hour, RetryFirst: 5 * time.Millisecond, RetryMax: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	net1 := crdt.PublicKey{1}
	var targets []Target
	for i := range 100 {
		targets = append(targets, Target{Network: net1, Node: crdt.PublicKey{byte(i), 1}, Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}, Port: 7331})
	}
	p.Update(slices.Values(targets))
	eventually(t, 20*time.Second, "every host checked three times", func() bool { return p.Checks() >= 300 })
	out := buf.String()
	if n := strings.Count(out, "host failed the reachability challenge"); n != failLinesPerMinute {
		t.Fatalf("%d lines about failed hosts, want %d:\n%s", n, failLinesPerMinute, out)
	}
	if n := strings.Count(out, "the rest of this minute's failures are not logged"); n != 1 {
		t.Fatalf("%d lines saying the rest is not logged, want 1:\n%s", n, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

package agent

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/data-mesher/data-mesher/wg"
	"github.com/miekg/dns"
)

func freePort(t *testing.T) int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			u.Close()
			return p
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 5 * time.Millisecond; !cond(); wait = min(2*wait, 200*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}

// loopbackAgent is an agent bound to 127.0.0.1 with a fake interface.
func loopbackAgent(t *testing.T, dir string, admin crdt.PublicKey, dnsPort int) (*Config, func() (*Agent, context.CancelFunc, chan error)) {
	cfg := &Config{
		Interface: "wg-test", StateDir: dir, KeyFile: filepath.Join(dir, "node.key"), Hostnames: []string{"solo"},
		Networks:    map[string]NetworkConfig{"t": {PubKey: admin.AuthorizedKey()}},
		BindAddress: "127.0.0.1", Ports: Ports{Gossip: freePort(t), HTTP: freePort(t), DNS: dnsPort},
		ControlSocket: filepath.Join(dir, "control.sock"), MetricsListen: "off", SyncInterval: Duration(200 * time.Millisecond),
	}
	start := func() (*Agent, context.CancelFunc, chan error) {
		watch := func(ctx context.Context, name string) <-chan wg.Event {
			ch := make(chan wg.Event, 1)
			ch <- wg.Event{Interface: &wg.Interface{Name: name, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}}
			return ch
		}
		c := *cfg
		a, err := New(&c, Options{WatchInterface: watch})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		return a, cancel, done
	}
	return cfg, start
}

func lookup(addr string, name string) []string {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m, _, err := (&dns.Client{Timeout: time.Second}).Exchange(q, addr)
	if err != nil {
		return nil
	}
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// One agent on loopback: it claims its name, witnesses it itself (its key
// is the network's witness), answers for it; after a restart it answers
// from its state file before anything else happens.
func TestAgentOnLoopback(t *testing.T) {
	dir := t.TempDir()
	node, err := WriteKey(filepath.Join(dir, "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	admin := crdtKey("admin")
	dnsPort := freePort(t)
	cfg, start := loopbackAgent(t, dir, admin.Public(), dnsPort)
	a, cancel, done := start()
	eventually(t, 10*time.Second, "the control socket", func() bool {
		c, err := Dial(cfg.ControlSocket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{node.Public()}}, admin))
	c, err := Dial(cfg.ControlSocket)
	if err != nil {
		t.Fatal(err)
	}
	var res PublishResult
	if err := c.Call(Request{Op: "publish", Records: [][]byte{set.Bytes()}}, &res); err != nil || res.Added != 1 {
		t.Fatalf("publish: %+v %v", res, err)
	}
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	eventually(t, 15*time.Second, "solo.t to resolve", func() bool { return len(lookup(dnsAddr, "solo.t")) == 1 })
	var st Status
	if err := c.Call(Request{Op: "status"}, &st); err != nil || len(st.Networks) != 1 || st.Networks[0].Names[0] != "solo" || !st.Networks[0].Witness {
		t.Fatalf("status: %+v %v", st, err)
	}
	var r Resolution
	if err := c.Call(Request{Op: "resolve", Name: "solo.t."}, &r); err != nil || !r.Found || r.Holder != node.Public().AuthorizedKey() {
		t.Fatalf("resolve: %+v %v", r, err)
	}
	c.Close()
	_ = a
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Restarted: answers from the state file at once.
	start2 := time.Now()
	_, cancel2, done2 := start()
	eventually(t, 5*time.Second, "solo.t to resolve after the restart", func() bool { return len(lookup(dnsAddr, "solo.t")) == 1 })
	t.Logf("first answer %v after the restart", time.Since(start2).Round(time.Millisecond))
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("Run after restart: %v", err)
	}
}

// A host whose record drops a failing address is back in the view with the
// next view computation, on the verdict its other address already has: the
// prober must learn the new addresses before the view asks it. (It used to
// be asked first; nothing else recomputed the view until the next pass was
// renewed, so the host could stay out for minutes.)
func TestHostBackWhenItDropsAFailingAddress(t *testing.T) {
	admin, host := crdtKey("admin"), crdtKey("host")
	// The host answers challenges on 127.0.0.1; the only WireGuard peer
	// routes 127.0.0.1, so 127.0.0.3 fails (not routed).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	mux := http.NewServeMux()
	mux.Handle("POST "+wg.ChallengePath, &wg.Responder{Key: host.Ed25519(),
		Serves: func(n [32]byte, at netip.AddrPort) bool { return n == admin.Public() && at.Port() == port }})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	self := crdtKey("self")
	now := time.Now()
	hostRec := func(addrs ...string) *crdt.Record {
		h := crdt.Host{Network: admin.Public(), Node: host.Public(), Heartbeat: time.Now(), HTTPPort: port}
		for _, a := range addrs {
			h.Addresses = append(h.Addresses, netip.MustParseAddr(a))
		}
		return must(crdt.SignHost(h, host))
	}
	claim := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: host.Public(), Name: "h", Created: now}, host))
	if res := st.IngestAll([]*crdt.Record{
		must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "t", HostTTL: time.Hour,
			DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{self.Public()}}, admin)),
		claim, must(crdt.WitnessClaim(admin.Public(), claim.Hash(), now, self)), hostRec("127.0.0.1", "127.0.0.3"),
	}, now); len(res.Rejected) > 0 {
		t.Fatal(res.Rejected[0])
	}
	peers := []wg.Peer{{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	a := &Agent{cfg: &Config{DNS: DNS{JSONFile: "off"}}, key: self, now: time.Now,
		nets: []Joined{{Label: "t", ID: admin.Public(), Priority: 1}}, store: mesh.NewStore(st, nil),
		prober: &wg.Prober{Peers: func() []wg.Peer { return peers }, TTL: time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.prober.Run(ctx)

	a.updateView()
	eventually(t, 10*time.Second, "127.0.0.1 to pass and 127.0.0.3 to fail", func() bool {
		for _, h := range a.hosts() {
			if h.Node == host.Public().AuthorizedKey() {
				return slices.Equal(h.Verified, []string{"127.0.0.1"}) && strings.Contains(h.Challenge, "not routed")
			}
		}
		return false
	})
	a.updateView()
	if n := a.view.Load().Names["h.t"]; n != nil {
		t.Fatalf("h.t is in the view while 127.0.0.3 fails: %+v", n)
	}
	a.store.Write(func(st *crdt.State, now time.Time) []*crdt.Record {
		if _, err := st.Ingest(hostRec("127.0.0.1"), now); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	a.updateView()
	if n := a.view.Load().Names["h.t"]; n == nil {
		t.Fatal("h.t is still out of the view after its host dropped the failing address")
	}
}

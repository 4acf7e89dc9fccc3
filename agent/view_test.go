package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

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
	mux.Handle("POST "+mesh.PathChallenge, &mesh.Responder{Key: host,
		Serves: func(n crdt.PublicKey, at netip.AddrPort) bool { return n == admin.Public() && at.Port() == port }})
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
	conf := newLive(&Config{DNS: DNS{JSONFile: "off"}, Networks: map[string]NetworkConfig{"t": {PubKey: admin.Public().AuthorizedKey()}}})
	prober := &mesh.Prober{Routed: netip.MustParsePrefix("127.0.0.1/32").Contains, TTL: time.Hour}
	store := mesh.NewStore(st, nil)
	p := &viewPipeline{self: self.Public(), store: store, conf: func() *live { return conf }, tunnel: &tunnel{},
		log: slog.New(slog.DiscardHandler), prober: prober}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go prober.Run(ctx)

	p.update(time.Now())
	eventually(t, 10*time.Second, "127.0.0.1 to pass and 127.0.0.3 to fail", func() bool {
		var passed, failed bool
		for _, s := range prober.Statuses() {
			passed = passed || (s.Addr.String() == "127.0.0.1" && s.OK)
			failed = failed || (s.Addr.String() == "127.0.0.3" && errors.Is(s.Err, mesh.ErrNotRouted))
		}
		return passed && failed
	})
	p.update(time.Now())
	if n := p.current().Names["h.t"]; n != nil {
		t.Fatalf("h.t is in the view while 127.0.0.3 fails: %+v", n)
	}
	if res := store.Ingest([]*crdt.Record{hostRec("127.0.0.1")}); res.Added != 1 {
		t.Fatalf("the host's new record: %+v", res)
	}
	p.update(time.Now())
	if n := p.current().Names["h.t"]; n == nil {
		t.Fatal("h.t is still out of the view after its host dropped the failing address")
	}
}

// A view that gives the same answers as the last one is not kept beside
// it: the agent's current view shares the table's names (two copies were
// 30 MB at 100,000 hosts), and takes the new view's decay time.
func TestUnchangedViewSharesTheTablesNames(t *testing.T) {
	admin, host := crdtKey("admin"), crdtKey("host")
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	now := time.Now()
	claim := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: host.Public(), Name: "h", Created: now}, host))
	if res := st.IngestAll([]*crdt.Record{
		must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "t", HostTTL: time.Hour,
			DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{admin.Public()}}, admin)),
		claim, must(crdt.WitnessClaim(admin.Public(), claim.Hash(), now, admin)),
		must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: host.Public(), Heartbeat: now,
			Addresses: []netip.Addr{netip.MustParseAddr("fd00::1")}, HTTPPort: 1}, host)),
	}, now); len(res.Rejected) > 0 {
		t.Fatal(res.Rejected[0])
	}
	conf := newLive(&Config{DNS: DNS{JSONFile: "off"}, Networks: map[string]NetworkConfig{"t": {PubKey: admin.Public().AuthorizedKey()}}})
	p := &viewPipeline{self: host.Public(), store: mesh.NewStore(st, nil), conf: func() *live { return conf }, tunnel: &tunnel{},
		log: slog.New(slog.DiscardHandler)}
	p.update(now)
	first := p.current()
	if first.Names["h.t"] == nil {
		t.Fatal("h.t is not in the view")
	}
	later := now.Add(time.Minute)
	until := p.update(later)
	v := p.current()
	if v == first {
		t.Fatal("the view was not recomputed")
	}
	if !v.ValidUntil.Equal(until) || !until.Equal(now.Add(time.Hour)) {
		t.Fatalf("decay time %v (returned %v), want the host's heartbeat + TTL %v", v.ValidUntil, until, now.Add(time.Hour))
	}
	if v.Names["h.t"] != first.Names["h.t"] || v.Names["h.t"] != p.table.View().Names["h.t"] {
		t.Fatal("an unchanged view holds a second copy of the names")
	}
}

// A host whose pass lapses (no renewal came back within the TTL) leaves
// the view at the lapse: the view says it would change then, and the
// loop needs no timer of its own to find out (it used to recompute every
// minute, at 100,000 hosts most of an idle agent's CPU).
func TestViewChangesWhenAPassLapses(t *testing.T) {
	admin, host, self := crdtKey("admin"), crdtKey("host"), crdtKey("self")
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	now := time.Now()
	claim := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: host.Public(), Name: "h", Created: now}, host))
	addr := netip.MustParseAddr("fd00::1")
	if res := st.IngestAll([]*crdt.Record{
		must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "t", HostTTL: time.Hour,
			DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{admin.Public()}}, admin)),
		claim, must(crdt.WitnessClaim(admin.Public(), claim.Hash(), now, admin)),
		must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: host.Public(), Heartbeat: now,
			Addresses: []netip.Addr{addr}, HTTPPort: 1}, host)),
	}, now); len(res.Rejected) > 0 {
		t.Fatal(res.Rejected[0])
	}
	conf := newLive(&Config{DNS: DNS{JSONFile: "off"}, Networks: map[string]NetworkConfig{"t": {PubKey: admin.Public().AuthorizedKey()}}})
	// Not run: the pass is never renewed.
	prober := &mesh.Prober{Routed: func(netip.Addr) bool { return false }, TTL: 2 * time.Second}
	checked := now.Add(-time.Second)
	prober.Restore([]mesh.Verdict{{Network: admin.Public(), Node: host.Public(), Addr: addr, Port: 1, Checked: checked}})
	p := &viewPipeline{self: self.Public(), store: mesh.NewStore(st, nil), conf: func() *live { return conf }, tunnel: &tunnel{},
		log: slog.New(slog.DiscardHandler), prober: prober}
	until := p.update(time.Now())
	if p.current().Names["h.t"] == nil {
		t.Fatal("h.t is not in the view while its pass holds")
	}
	lapse := checked.Add(prober.TTL + time.Nanosecond)
	if !until.Equal(lapse) {
		t.Fatalf("the view says it changes at %v, want the pass's lapse %v (the host decays only at %v)", until, lapse, p.current().ValidUntil)
	}
	eventually(t, 10*time.Second, "the lapse", func() bool { return time.Now().After(until) })
	until = p.update(time.Now())
	if n := p.current().Names["h.t"]; n != nil {
		t.Fatalf("h.t is in the view after its pass lapsed: %+v", n)
	}
	if !until.Equal(p.current().ValidUntil) {
		t.Fatalf("no pass left, yet the view says it changes at %v, before its decay %v", until, p.current().ValidUntil)
	}
}

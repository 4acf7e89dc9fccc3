package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/control"
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
	_, cancel, done := start()
	c := control.NewClient(cfg.ControlSocket)
	ctx := context.Background()
	eventually(t, 10*time.Second, "the agent to run the mesh", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Waiting == ""
	})
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{node.Public()}}, admin))
	if res, err := c.Publish(ctx, set); err != nil || res.Added != 1 {
		t.Fatalf("publish: %+v %v", res, err)
	}
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	eventually(t, 15*time.Second, "solo.t to resolve", func() bool { return len(lookup(dnsAddr, "solo.t")) == 1 })
	if st, err := c.Status(ctx); err != nil || len(st.Networks) != 1 || st.Networks[0].Names[0] != "solo" || !st.Networks[0].Witness {
		t.Fatalf("status: %+v %v", st, err)
	}
	if r, err := c.Resolve(ctx, "solo.t."); err != nil || !r.Found || r.Holder != node.Public().AuthorizedKey() {
		t.Fatalf("resolve: %+v %v", r, err)
	}
	// A name without the domain is looked up in the joined networks' domains.
	if r, err := c.Resolve(ctx, "solo"); err != nil || !r.Found || r.Name != "solo.t" {
		t.Fatalf("resolve of a relative name: %+v %v", r, err)
	}
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

// A node with somebody to sync with makes its claims once it has synced,
// not when the fallback for a silent mesh is due (claimsWait, an hour
// here): it waited the full 10 s before, because a first sync that
// brought nothing new woke nothing. Two agents on loopback; the second
// bootstraps from the first, which witnesses its claim.
func TestClaimsFollowTheFirstSync(t *testing.T) {
	defer func(w time.Duration) { claimsWait = w }(claimsWait)
	claimsWait = time.Hour
	admin := crdtKey("admin")
	dirA, dirB := t.TempDir(), t.TempDir()
	nodeA := must(WriteKey(filepath.Join(dirA, "node.key"), ""))
	if _, err := WriteKey(filepath.Join(dirB, "node.key"), ""); err != nil {
		t.Fatal(err)
	}
	dnsA := freePort(t)
	cfgA, startA := loopbackAgent(t, dirA, admin.Public(), dnsA)
	_, cancelA, doneA := startA()
	defer func() { cancelA(); <-doneA }()
	c := control.NewClient(cfgA.ControlSocket)
	ctx := context.Background()
	eventually(t, 30*time.Second, "the first agent to run the mesh", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Waiting == ""
	})
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{nodeA.Public()}}, admin))
	if _, err := c.Publish(ctx, set); err != nil {
		t.Fatal(err)
	}
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsA)
	eventually(t, 30*time.Second, "solo.t to resolve", func() bool { return len(lookup(dnsAddr, "solo.t")) == 1 })

	cfgB, startB := loopbackAgent(t, dirB, admin.Public(), freePort(t))
	cfgB.Hostnames = []string{"second"}
	cfgB.Networks = map[string]NetworkConfig{"t": {PubKey: admin.Public().AuthorizedKey(),
		BootstrapPeers: []string{"http://127.0.0.1:" + strconv.Itoa(cfgA.Ports.HTTP)}}}
	_, cancelB, doneB := startB()
	defer func() { cancelB(); <-doneB }()
	eventually(t, 60*time.Second, "second.t, claimed after the first sync, to resolve at the first agent", func() bool {
		return len(lookup(dnsAddr, "second.t")) == 1
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// On an interface that is not WireGuard (lo has addresses) the agent does
// not run the mesh: it waits, and says why on its control socket, which
// answers from the first moment; a stop while it waits is not an error.
func TestWaitsForAWireGuardInterfaceAndSaysWhy(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteKey(filepath.Join(dir, "node.key"), ""); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Interface: "lo", StateDir: dir, KeyFile: filepath.Join(dir, "node.key"),
		Networks:      map[string]NetworkConfig{"t": {PubKey: crdtKey("admin").Public().AuthorizedKey()}},
		ControlSocket: filepath.Join(dir, "control.sock"), MetricsListen: "off"}
	lo := &wg.Interface{Name: "lo", Kind: "device", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}
	watch := func(ctx context.Context, name string) <-chan wg.Event {
		ch := make(chan wg.Event, 1)
		ch <- wg.Event{Interface: lo, Err: fmt.Errorf("%w: lo is a device link, not WireGuard", wg.ErrNotWireGuard)}
		return ch
	}
	a, err := New(cfg, Options{WatchInterface: watch})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	c := control.NewClient(cfg.ControlSocket)
	defer c.Close()
	eventually(t, 10*time.Second, "status to say the interface is not WireGuard", func() bool {
		s, err := c.Status(context.Background())
		return err == nil && strings.Contains(s.Waiting, "not a WireGuard device") && strings.Contains(s.Waiting, "wg show interfaces")
	})
	if _, err := c.Hosts(context.Background()); !errors.Is(err, control.ErrNotReady) {
		t.Fatalf("hosts while waiting: %v, want ErrNotReady", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run stopped while waiting: %v, want nil", err)
	}
}

// When the tunnel address changes, the listeners (DNS, the peer endpoint,
// gossip) move to the new one without a restart.
func TestListenersFollowTheTunnelAddress(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteKey(filepath.Join(dir, "node.key"), ""); err != nil {
		t.Fatal(err)
	}
	dnsPort, httpPort := freePort(t), freePort(t)
	cfg := &Config{Interface: "wg-test", StateDir: dir, KeyFile: filepath.Join(dir, "node.key"), Hostnames: []string{"solo"},
		Networks:      map[string]NetworkConfig{"t": {PubKey: crdtKey("admin").Public().AuthorizedKey()}},
		Ports:         Ports{Gossip: freePort(t), HTTP: httpPort, DNS: dnsPort},
		ControlSocket: filepath.Join(dir, "control.sock"), MetricsListen: "off"}
	events := make(chan wg.Event, 4)
	at := func(addr string) *wg.Interface {
		return &wg.Interface{Name: "wg-test", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix(addr + "/8")}}
	}
	events <- wg.Event{Interface: at("127.0.0.2")}
	a, err := New(cfg, Options{WatchInterface: func(context.Context, string) <-chan wg.Event { return events }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	answers := func(addr string) bool {
		q := new(dns.Msg)
		q.SetQuestion("example.org.", dns.TypeA)
		m, _, err := (&dns.Client{Timeout: 300 * time.Millisecond}).Exchange(q, net.JoinHostPort(addr, strconv.Itoa(dnsPort)))
		return err == nil && m.Rcode == dns.RcodeRefused
	}
	peer := func(addr string) bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + net.JoinHostPort(addr, strconv.Itoa(httpPort)) + mesh.PathTime)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}
	eventually(t, 10*time.Second, "DNS and the peer endpoint on 127.0.0.2", func() bool { return answers("127.0.0.2") && peer("127.0.0.2") })

	events <- wg.Event{Interface: at("127.0.0.3")}
	c := control.NewClient(cfg.ControlSocket)
	defer c.Close()
	eventually(t, 10*time.Second, "DNS and the peer endpoint on 127.0.0.3", func() bool { return answers("127.0.0.3") && peer("127.0.0.3") })
	eventually(t, 10*time.Second, "nothing left on 127.0.0.2", func() bool { return !answers("127.0.0.2") && !peer("127.0.0.2") })
	s, err := c.Status(context.Background())
	if err != nil || s.Bind != "127.0.0.3" || slices.ContainsFunc(s.Listening, func(l string) bool { return strings.HasPrefix(l, "127.0.0.2:") }) {
		t.Fatalf("status after the move: bind %q, listening %v (%v)", s.Bind, s.Listening, err)
	}
}

// The watchdog is fed while the agent makes progress, and not while its
// loop cannot reach the state (a stuck lock): systemd then restarts it.
func TestWatchdogFollowsProgress(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteKey(filepath.Join(dir, "node.key"), ""); err != nil {
		t.Fatal(err)
	}
	cfg, _ := loopbackAgent(t, dir, crdtKey("admin").Public(), freePort(t))
	var fed atomic.Int64
	watch := func(ctx context.Context, name string) <-chan wg.Event {
		ch := make(chan wg.Event, 1)
		ch <- wg.Event{Interface: &wg.Interface{Name: name, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}}
		return ch
	}
	a, err := New(cfg, Options{WatchInterface: watch, Watchdog: func() { fed.Add(1) }, WatchdogEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	eventually(t, 10*time.Second, "the watchdog fed while the agent runs", func() bool { return fed.Load() > 5 && a.up.Load() != nil })
	stuck, release := make(chan struct{}), make(chan struct{})
	go a.store.Read(func(*crdt.State) { close(stuck); <-release }) // a lock held for ever
	<-stuck
	// The loop's next beat blocks on the lock; whatever it fed before that
	// is all there will be.
	eventually(t, 10*time.Second, "the feeding to stop", func() bool {
		before := fed.Load()
		time.Sleep(200 * time.Millisecond)
		return fed.Load() == before
	})
	close(release)
	resumed := fed.Load()
	eventually(t, 10*time.Second, "the feeding to resume", func() bool { return fed.Load() > resumed+3 })
}

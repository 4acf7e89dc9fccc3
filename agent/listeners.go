package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/data-mesher/data-mesher/wg"
)

// The listeners on the tunnel address: DNS, the peer endpoint and gossip.
// They start together on one address and, when the interface loses that
// address, move together to its new one (rebind), without a restart: the
// state, the view, the verdicts and the stamper carry on.

func dnsListen(conf *live, bind netip.Addr) []netip.AddrPort {
	out := []netip.AddrPort{netip.AddrPortFrom(bind, uint16(conf.Ports.DNS))}
	for _, l := range conf.DNS.Listen {
		out = append(out, netip.MustParseAddrPort(l))
	}
	return out
}

// listen records a bound listener for status and doctor.
func (a *Agent) listen(name string, at netip.AddrPort) {
	a.mu.Lock()
	a.listening[name] = at.String()
	a.mu.Unlock()
}

// unlisten forgets the listeners on addr.
func (a *Agent) unlisten(addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, at := range a.listening {
		if ap, err := netip.ParseAddrPort(at); err == nil && ap.Addr() == addr {
			delete(a.listening, name)
		}
	}
}

// startDNS answers DNS on bind (and dns.listen), from table if given.
func (a *Agent) startDNS(conf *live, bind netip.Addr, table *dnsserver.Table) (*dnsserver.Server, error) {
	srv := dnsserver.NewServer(dnsserver.Config{Listen: dnsListen(conf, bind), Forwarders: conf.DNS.Forwarders, Logger: a.opts.Logger})
	if table != nil {
		srv.SetTable(table)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("starting DNS: %w (is another DNS server bound there? `dm-agent doctor` names it)", err)
	}
	for _, l := range dnsListen(conf, bind) {
		a.listen("dns "+l.String(), l)
	}
	return srv, nil
}

// startMesh starts the peer endpoint on bind and joins the mesh there.
func (a *Agent) startMesh(ctx context.Context, conf *live, bind netip.Addr) (*mesh.Node, *peerListener, error) {
	var boot []string
	for _, n := range conf.Nets {
		boot = append(boot, n.Bootstrap...)
	}
	joined := func(id crdt.PublicKey) bool { return a.conf.Load().joined(id) }
	node, err := mesh.New(mesh.Config{
		Key: a.key, Routed: a.tunnel.routed, BindAddr: bind, GossipPort: conf.Ports.Gossip, HTTPPort: conf.Ports.HTTP,
		Seeds: wg.Seeds(a.tunnel.peers(), conf.Ports.Gossip), Bootstrap: boot, SyncInterval: time.Duration(conf.SyncInterval),
		Challenge: &mesh.Responder{Key: a.key, Serves: a.tunnel.serves(conf.Ports.HTTP, joined)},
		Logger:    a.opts.Logger,
	}, a.store)
	if err != nil {
		return nil, nil, err
	}
	peer := &peerListener{}
	httpAddr := netip.AddrPortFrom(bind, uint16(conf.Ports.HTTP))
	if err := peer.start(ctx, httpAddr, node.Handler(), a.log); err != nil {
		return nil, nil, err
	}
	a.listen("http "+httpAddr.String(), httpAddr)
	if err := node.Start(ctx); err != nil {
		peer.stop()
		return nil, nil, err
	}
	gossipAddr := netip.AddrPortFrom(bind, uint16(conf.Ports.Gossip))
	a.listen("gossip "+gossipAddr.String(), gossipAddr)
	return node, peer, nil
}

// stopListeners stops whichever of the listeners run.
func (p *parts) stopListeners() {
	if p.peer != nil {
		p.peer.stop()
	}
	if p.node != nil {
		p.node.Stop()
	}
	if p.dns != nil {
		p.dns.Stop()
	}
}

// rebind moves the listeners from the old tunnel address to bind: DNS
// first (from the table it answers now, so no answer is lost), then the
// peer endpoint and gossip. It returns the parts that run after it, and
// false if the mesh could not start there (remesh tries again); if DNS
// cannot start on the new address the old listeners keep running, and the
// next change of the interface tries again.
func (a *Agent) rebind(ctx context.Context, p *parts, bind netip.Addr) (*parts, bool) {
	conf := a.conf.Load()
	old := a.tunnel.Bind()
	a.log.Info("the tunnel address changed; moving the listeners", "from", old, "to", bind)
	dns, err := a.startDNS(conf, bind, p.dns.Handler().Table())
	if err != nil {
		a.log.Error("moving DNS to the new tunnel address; it stays on the old one", "to", bind, "err", err)
		return p, true
	}
	p.dns.Stop()
	a.view.dns = dns
	p.peer.stop()
	p.node.Stop()
	a.unlisten(old)
	a.tunnel.setBind(bind) // before the new node signs its proof and host record
	next := &parts{prober: p.prober, stamper: p.stamper, dns: dns, node: p.node, peer: p.peer}
	a.up.Store(next)
	ok := a.remesh(ctx, next)
	return next, ok
}

// remesh starts gossip and the peer endpoint on the current tunnel
// address, in place of stopped ones; false means it failed and should be
// tried again.
func (a *Agent) remesh(ctx context.Context, p *parts) bool {
	bind := a.tunnel.Bind()
	node, peer, err := a.startMesh(ctx, a.conf.Load(), bind)
	if err != nil {
		// The old node stays in place, stopped: it answers what is asked
		// of it (no members, nothing synced) until a retry works.
		a.log.Error("starting the mesh on the tunnel address; gossip and the peer endpoint are down, retrying", "at", bind, "err", err)
		return false
	}
	next := &parts{prober: p.prober, stamper: p.stamper, dns: p.dns, node: node, peer: peer}
	a.up.Store(next)
	return true
}

// newBind says whether the listeners must move, and where: when the
// address is not configured and the interface no longer has the one in
// use.
func (a *Agent) newBind(conf *live, ifc *wg.Interface) (netip.Addr, bool) {
	if conf.BindAddress != "" || ifc == nil {
		return netip.Addr{}, false
	}
	cur := a.tunnel.Bind()
	for _, pr := range ifc.Addrs {
		if pr.Addr() == cur {
			return netip.Addr{}, false
		}
	}
	b, ok := pickBind("", ifc)
	return b, ok && !strings.EqualFold(b.String(), cur.String())
}

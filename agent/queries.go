package agent

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
)

// The agent answers the control API (control.Backend): the command line's
// status, hosts, resolve, export, settings and publish, and doctor's
// facts. Each answer reads one snapshot of the configuration and holds the
// state's lock only while it copies out what it needs.

var _ control.Backend = (*Agent)(nil)

// network resolves a label or key of the configuration, as the API takes it.
func (a *Agent) network(conf *live, s string) (Joined, error) {
	n, err := conf.network(s)
	if err != nil {
		return n, fmt.Errorf("%w: %v", control.ErrNotFound, err)
	}
	return n, nil
}

// Status is what `dm-agent status` shows.
func (a *Agent) Status(context.Context) (control.Status, error) {
	conf := a.conf.Load()
	s := control.Status{Node: a.key.Public().AuthorizedKey(), Version: Version, Uptime: a.now().Sub(a.started).Seconds(),
		Waiting: *a.waiting.Load(), Interface: conf.Interface, Restored: a.restored}
	if b := a.tunnel.Bind(); b.IsValid() {
		s.Bind = b.String()
	}
	a.mu.Lock()
	for _, addr := range a.listening {
		s.Listening = append(s.Listening, addr)
	}
	a.mu.Unlock()
	sort.Strings(s.Listening)
	p := a.up.Load()
	if p != nil {
		s.Members = p.node.MemberCount()
		s.Synced = p.node.Synced()
	}
	a.store.Read(func(st *crdt.State) {
		for _, n := range conf.Nets {
			ns := control.NetworkStatus{Label: n.Label, ID: n.ID.AuthorizedKey(), Priority: n.Priority, Records: st.Len(n.ID),
				Hosts: len(st.Hosts(n.ID))}
			if set := st.Settings(n.ID); set != nil {
				ns.HasSettings, ns.Domain, ns.Updated = true, set.Settings().Domain, set.Settings().Updated
				ns.Attestors = len(set.Settings().Witnesses) + len(set.Settings().TSARoots)
				ns.Witness = st.Trust(n.ID).IsWitness(a.key.Public())
			}
			for _, c := range st.Claims(n.ID, a.key.Public()) {
				ns.Names = append(ns.Names, c.Claim().Name)
			}
			s.Networks = append(s.Networks, ns)
		}
	})
	s.DNS.Names = len(a.view.current().Names)
	if p != nil {
		s.DNS.Queries = map[string]int64{}
		h := p.dns.Handler()
		for _, r := range dnsResults {
			s.DNS.Queries[r.String()] = h.Count(r)
		}
		s.DNS.Fast = p.dns.FastAnswers()
	}
	return s, nil
}

var dnsResults = []dnsserver.Result{dnsserver.ResultAnswer, dnsserver.ResultNoData, dnsserver.ResultNXDomain,
	dnsserver.ResultRefused, dnsserver.ResultError, dnsserver.ResultForwarded}

// ready returns the network parts, or ErrNotReady with what Run waits for.
func (a *Agent) ready() (*parts, error) {
	if p := a.up.Load(); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("%w: the agent is waiting for %s", control.ErrNotReady, *a.waiting.Load())
}

// Hosts lists every host of the joined networks and how it stands here.
func (a *Agent) Hosts(context.Context) ([]control.HostInfo, error) {
	p, err := a.ready()
	if err != nil {
		return nil, err
	}
	conf := a.conf.Load()
	now := a.now()
	type hostKey struct{ network, node crdt.PublicKey }
	failures := map[hostKey]string{}
	verified := map[hostKey][]string{}
	for _, st := range p.prober.Statuses() {
		k := hostKey{st.Network, st.Node}
		if st.OK {
			verified[k] = append(verified[k], st.Addr.String())
		} else {
			failures[k] = st.Err.Error()
		}
	}
	out := []control.HostInfo{}
	a.store.Read(func(st *crdt.State) {
		for _, n := range conf.Nets {
			for _, h := range st.Hosts(n.ID) {
				host := h.Host()
				k := hostKey{n.ID, host.Node}
				hi := control.HostInfo{Network: n.Label, Node: host.Node.AuthorizedKey(), Short: host.Node.Short(), Self: host.Node == a.key.Public(),
					Heartbeat: host.Heartbeat, Challenge: failures[k], Verified: verified[k]}
				sort.Strings(hi.Verified)
				hi.Reachable = hi.Self || p.prober.Reachable(n.ID, host.Node)
				for _, ad := range host.Addresses {
					hi.Addresses = append(hi.Addresses, ad.String())
				}
				for _, c := range st.Claims(n.ID, host.Node) {
					if st.NameStatus(n.ID, c.Claim().Name, now).Holder == host.Node {
						hi.Names = append(hi.Names, c.Claim().Name)
					} else {
						hi.Lost = append(hi.Lost, c.Claim().Name)
					}
				}
				out = append(out, hi)
			}
		}
	})
	return out, nil
}

// Resolve explains how name resolves here and why. A name under none of
// the joined networks' domains is taken as relative ("mors"): it is looked
// up in each domain, by network priority, and the first that resolves (or
// else the first anybody claims) is explained.
func (a *Agent) Resolve(_ context.Context, name string) (control.Resolution, error) {
	fqdn := strings.ToLower(strings.TrimSuffix(name, "."))
	conf := a.conf.Load()
	var domains []string // of the joined networks with settings, by priority
	a.store.Read(func(st *crdt.State) {
		nets := slices.Clone(conf.Nets)
		slices.SortStableFunc(nets, func(x, y Joined) int { return cmp.Compare(x.Priority, y.Priority) })
		for _, n := range nets {
			if set := st.Settings(n.ID); set != nil {
				domains = append(domains, set.Settings().Domain)
			}
		}
	})
	candidates := []string{fqdn}
	if len(domains) > 0 && !slices.ContainsFunc(domains, func(d string) bool { return fqdn == d || strings.HasSuffix(fqdn, "."+d) }) {
		candidates = candidates[:0]
		for _, d := range domains {
			candidates = append(candidates, fqdn+"."+d)
		}
	}
	var best control.Resolution
	for i, c := range candidates {
		r := a.resolveFQDN(conf, c)
		if r.Found {
			return r, nil
		}
		if i == 0 || (len(best.Contest) == 0 && len(r.Contest) > 0) {
			best = r
		}
	}
	return best, nil
}

// resolveFQDN explains one fully qualified name.
func (a *Agent) resolveFQDN(conf *live, fqdn string) control.Resolution {
	r := control.Resolution{Name: fqdn}
	if e := a.view.current().Names[fqdn]; e != nil {
		r.Found = true
		r.Network = e.Network.AuthorizedKey()
		if !e.Node.IsZero() {
			r.Holder = e.Node.AuthorizedKey()
		}
		for _, ad := range e.Addrs {
			r.Addrs = append(r.Addrs, ad.String())
		}
		for _, x := range e.Extra {
			r.Extra = append(r.Extra, x.Type.String()+" "+x.Data)
		}
	}
	// Explain: which network's zone, and how every claim on it stands.
	reachable := func(network, node crdt.PublicKey) bool { return node == a.key.Public() }
	if p := a.up.Load(); p != nil {
		reachable = p.prober.Reachable
	}
	a.store.Read(func(st *crdt.State) {
		for _, n := range conf.Nets {
			set := st.Settings(n.ID)
			if set == nil {
				continue
			}
			rel, ok := strings.CutSuffix(fqdn, "."+set.Settings().Domain)
			if !ok {
				continue
			}
			ns := st.NameStatus(n.ID, rel, a.now())
			r.Override = r.Override || ns.Override
			for _, c := range ns.Claims {
				cl := control.Claim{Node: c.Node.AuthorizedKey(), Attested: c.Attested, Time: c.Time, HostLive: c.HostLive, Active: c.Active,
					Reachable: reachable(n.ID, c.Node)}
				if c.Attested {
					cl.By = c.By.String()
				}
				r.Contest = append(r.Contest, cl)
			}
		}
	})
	switch {
	case r.Found && r.Override:
		r.Why = "assigned by the network admin's override"
	case r.Found && r.Holder != "":
		r.Why = "held by the earliest attested active claim"
	case r.Found:
		r.Why = "an admin-defined record"
	case len(r.Contest) == 0:
		r.Why = "nobody claims this name in a joined network"
	default:
		r.Why = "claimed, but no claim is active and reachable here (not attested yet, host gone, or failing the reachability challenge)"
	}
	return r
}

// Export is data.json of one network, or of every joined one.
func (a *Agent) Export(_ context.Context, network string) ([]byte, error) {
	var ids []crdt.PublicKey
	if network != "" {
		n, err := a.network(a.conf.Load(), network)
		if err != nil {
			return nil, err
		}
		ids = append(ids, n.ID)
	}
	var snap *crdt.DataSnapshot
	var err error
	a.store.Read(func(st *crdt.State) {
		if len(ids) == 0 {
			ids = st.Joined()
		}
		snap, err = st.SnapshotDataJSON(ids...)
	})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer // written outside the store's lock
	_, err = snap.WriteTo(&b)
	return b.Bytes(), err
}

// Settings is a network's settings record, nil if it has none yet.
func (a *Agent) Settings(_ context.Context, network string) (*crdt.Record, error) {
	n, err := a.network(a.conf.Load(), network)
	if err != nil {
		return nil, err
	}
	var rec *crdt.Record
	a.store.Read(func(st *crdt.State) { rec = st.Settings(n.ID) })
	return rec, nil
}

// Publish ingests records from the local admin, spreads the new ones, and
// returns once they are on disk.
func (a *Agent) Publish(ctx context.Context, recs []*crdt.Record) (control.PublishResult, error) {
	p, err := a.ready()
	if err != nil {
		return control.PublishResult{}, err
	}
	res := p.node.Publish(recs...)
	// Acknowledge only what is on disk.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.persist.wait(wctx); err != nil {
		return control.PublishResult{}, fmt.Errorf("records taken but not yet on disk: %w", err)
	}
	out := control.PublishResult{Added: res.Added, Known: res.Known, Superseded: res.Superseded}
	for _, r := range res.Rejected {
		out.Rejected = append(out.Rejected, r.Error())
	}
	return out, nil
}

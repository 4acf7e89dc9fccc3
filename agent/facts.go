package agent

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
)

// Facts gathers what only the running agent knows, for doctor: its
// status, the reachability verdicts, its peers' clocks, how its own names
// stand, and whether its networks' attestors answer.
func (a *Agent) Facts(ctx context.Context) (control.Facts, error) {
	st, _ := a.Status(ctx)
	f := control.Facts{Status: st}
	conf := a.conf.Load()
	p := a.up.Load()
	var members []string
	if p != nil {
		for _, s := range p.prober.Statuses() {
			c := control.Challenge{Node: s.Node.AuthorizedKey(), Addr: netip.AddrPortFrom(s.Addr, s.Port).String(), OK: s.OK}
			if s.Err != nil {
				c.Error = s.Err.Error()
			}
			f.Challenges = append(f.Challenges, c)
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		for _, s := range p.node.MeasureSkew(sctx, 5) {
			ps := control.PeerSkew{Peer: s.Member.Addr.String(), Skew: s.Offset.Seconds()}
			if s.Err != nil {
				ps.Err = s.Err.Error()
			}
			f.Skew = append(f.Skew, ps)
		}
		cancel()
		for _, m := range p.node.Members() {
			members = append(members, m.Name)
		}
	}
	now := a.now()
	type attestors struct {
		label string
		urls  []string
	}
	var probe []attestors
	a.store.Read(func(st *crdt.State) {
		for _, n := range conf.Nets {
			for _, name := range n.Hostnames {
				f.OwnNames = append(f.OwnNames, a.ownName(st, n, name, now))
			}
			set := st.Settings(n.ID)
			if set == nil {
				continue
			}
			s := set.Settings()
			online := 0
			for _, w := range s.Witnesses {
				if w == a.key.Public() || slices.Contains(members, w.String()) {
					online++
				}
			}
			if len(s.Witnesses) > 0 {
				f.Attestors = append(f.Attestors, control.AttestorMsg{Network: n.Label, What: "witnesses", OK: online > 0,
					Detail: strconv.Itoa(online) + " of " + strconv.Itoa(len(s.Witnesses)) + " witnesses online"})
			}
			probe = append(probe, attestors{n.Label, append(slices.Clone(conf.TSAURLs), s.TSAURLs...)})
			if len(s.Witnesses) == 0 && len(s.TSARoots) == 0 {
				f.Attestors = append(f.Attestors, control.AttestorMsg{Network: n.Label, What: "settings", OK: false,
					Detail: "the settings trust no attestor: no claim can ever become active"})
			}
		}
	})
	// The timestamp authorities are asked outside the state's lock.
	for _, at := range probe {
		for _, u := range at.urls {
			ok, detail := probeURL(ctx, u)
			f.Attestors = append(f.Attestors, control.AttestorMsg{Network: at.label, What: u, OK: ok, Detail: detail})
		}
	}
	return f, nil
}

// ownName says how one of this node's names stands.
func (a *Agent) ownName(st *crdt.State, n Joined, name string, now time.Time) control.OwnName {
	ns := st.NameStatus(n.ID, name, now)
	on := control.OwnName{Network: n.Label, Name: name, Won: ns.Holder == a.key.Public()}
	if !ns.Holder.IsZero() {
		on.Holder = ns.Holder.AuthorizedKey()
	}
	for _, c := range ns.Claims {
		if c.Node == ns.Holder && c.Attested {
			on.Since = c.Time
		}
		if c.Node == a.key.Public() && !c.Active {
			switch {
			case !c.Attested:
				on.Pending = "not attested yet: no witness or timestamp authority has vouched for it"
			case !c.HostLive:
				on.Pending = "this node's host record is not live"
			}
		}
	}
	if !slices.ContainsFunc(ns.Claims, func(c crdt.ClaimState) bool { return c.Node == a.key.Public() }) {
		on.Pending = "this node has not claimed it yet"
	}
	return on
}

// probeURL reports whether an HTTP server answers at u (any status).
func probeURL(ctx context.Context, u string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	return true, "answers (" + resp.Status + ")"
}

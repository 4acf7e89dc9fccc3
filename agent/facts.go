package agent

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// facts gathers what only the running agent knows, for doctor.
func (a *Agent) facts(ctx context.Context) Facts {
	f := Facts{Status: a.status()}
	if a.prober != nil {
		for _, st := range a.prober.Statuses() {
			c := Challenge{Node: crdt.PublicKey(st.Node).AuthorizedKey(), Addr: netip.AddrPortFrom(st.Addr, st.Port).String(), OK: st.OK}
			if st.Err != nil {
				c.Error = st.Err.Error()
			}
			f.Challenges = append(f.Challenges, c)
		}
	}
	f.Skew = a.measureSkew(ctx, 5)
	now := a.now()
	a.mu.Lock()
	nets := slices.Clone(a.nets)
	a.mu.Unlock()
	var members []string
	if a.node != nil {
		for _, m := range a.node.Members() {
			members = append(members, m.Name)
		}
	}
	a.store.Read(func(st *crdt.State) {
		for _, n := range nets {
			for _, name := range n.Hostnames {
				ns := st.NameStatus(n.ID, name, now)
				on := OwnName{Network: n.Label, Name: name, Won: ns.Holder == a.key.Public()}
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
				f.OwnNames = append(f.OwnNames, on)
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
				f.Attestors = append(f.Attestors, AttestorMsg{Network: n.Label, What: "witnesses", OK: online > 0,
					Detail: strconv.Itoa(online) + " of " + strconv.Itoa(len(s.Witnesses)) + " witnesses online"})
			}
			for _, u := range append(slices.Clone(a.cfg.TSAURLs), s.TSAURLs...) {
				ok, detail := probeURL(ctx, u)
				f.Attestors = append(f.Attestors, AttestorMsg{Network: n.Label, What: u, OK: ok, Detail: detail})
			}
			if len(s.Witnesses) == 0 && len(s.TSARoots) == 0 {
				f.Attestors = append(f.Attestors, AttestorMsg{Network: n.Label, What: "settings", OK: false,
					Detail: "the settings trust no attestor: no claim can ever become active"})
			}
		}
	})
	return f
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

// measureSkew asks up to k members for their clock.
func (a *Agent) measureSkew(ctx context.Context, k int) []PeerSkew {
	if a.node == nil {
		return nil
	}
	ms := a.node.Members()
	if len(ms) > k {
		ms = ms[:k]
	}
	var out []PeerSkew
	client := &http.Client{Timeout: 3 * time.Second}
	for _, m := range ms {
		ps := PeerSkew{Peer: m.Addr.String()}
		u := "http://" + netip.AddrPortFrom(m.Addr, uint16(m.HTTPPort)).String() + "/v1/time"
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			ps.Err = err.Error()
			out = append(out, ps)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
		resp.Body.Close()
		rtt := time.Since(start)
		theirs, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
		if err != nil {
			ps.Err = "no clock in the answer"
		} else {
			ps.Skew = Duration(theirs.Sub(start.Add(rtt / 2)))
		}
		out = append(out, ps)
	}
	return out
}

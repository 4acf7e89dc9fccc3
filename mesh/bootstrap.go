package mesh

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// bootstrapLoop fetches the configured data.json copies until the mesh is
// reached (this node has peers and has synced with one), with back-off.
// Everything fetched goes through ingestion, so a hostile mirror can add
// nothing that does not verify; the live hosts it names become seeds.
func (n *Node) bootstrapLoop(ctx context.Context) {
	defer n.wg.Done()
	if len(n.cfg.Bootstrap) == 0 {
		return
	}
	wait := time.Second
	for {
		if n.ml.NumMembers() > 1 && n.synced.Load() {
			return
		}
		for _, u := range n.cfg.Bootstrap {
			if err := n.Bootstrap(ctx, u); err != nil {
				n.stats.BootstrapFailures.Add(1)
				n.log.Info("bootstrap source failed", "url", u, "err", err, "retry_in", wait)
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

// BootstrapURL turns a configured source into the data.json URL: a bare
// peer address ("http://[fd…]:7331") means its /data.json; any other path is
// a static file.
func BootstrapURL(src string) (string, error) {
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("bootstrap source %q is not an http(s) URL", src)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = PathDataJSON
	}
	return u.String(), nil
}

// Bootstrap fetches one data.json and ingests it, then joins the live hosts
// it lists.
func (n *Node) Bootstrap(ctx context.Context, src string) error {
	u, err := BootstrapURL(src)
	if err != nil {
		return err
	}
	body, err := n.get(ctx, u, 256<<20)
	if err != nil {
		return err
	}
	df, err := crdt.DecodeDataJSON(body)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	var recs []*crdt.Record
	var joined []crdt.PublicKey
	n.store.Read(func(st *crdt.State) { joined = st.Joined() })
	for _, dn := range df.Networks {
		if !contains(joined, dn.Network) {
			continue // only the networks this node joined
		}
		for _, e := range dn.Errors {
			n.log.Warn("bootstrap copy has a damaged record", "url", u, "err", e)
		}
		recs = append(recs, dn.Records...)
	}
	res := n.store.Ingest(recs)
	n.logRejected(res, u)
	n.stats.BootstrapOK.Add(1)
	n.log.Info("bootstrapped", "url", u, "added", res.Added, "known", res.Known, "refused", len(res.Rejected))
	// The live hosts are the way into the mesh.
	var seeds []string
	n.store.Read(func(st *crdt.State) {
		for _, id := range joined {
			for _, h := range st.Hosts(id) {
				if h.Signer() == n.cfg.Key.Public() {
					continue
				}
				for _, a := range h.Host().Addresses {
					seeds = append(seeds, net.JoinHostPort(a.String(), strconv.Itoa(int(h.Host().GossipPort))))
				}
			}
		}
	})
	if len(seeds) > 0 {
		if k, err := n.ml.Join(seeds); err != nil && k == 0 {
			return fmt.Errorf("no host named in %s answered gossip: %w", u, err)
		}
		n.SyncNow()
	}
	return nil
}

package mesh

import (
	"context"
	"fmt"
	"net"
	"net/http"
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

// bootstrapBatch is how many records a bootstrap ingests at a time: the
// file is read as a stream, so however large (or endless) it is, it costs
// one batch of memory plus what verifies and is kept.
const bootstrapBatch = 1000

// Bootstrap fetches one data.json and ingests it, then joins the live hosts
// it lists.
func (n *Node) Bootstrap(ctx context.Context, src string) error {
	u, err := BootstrapURL(src)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, max(n.cfg.RequestTimeout, 2*time.Minute))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var joined []crdt.PublicKey
	n.store.Read(func(st *crdt.State) { joined = st.Joined() })
	var added, known, refused, damaged int
	var batch []*crdt.Record
	ingest := func() {
		res := n.store.Ingest(batch)
		n.logRejected(res, u)
		added, known, refused = added+res.Added, known+res.Known+res.Superseded, refused+len(res.Rejected)
		batch = batch[:0]
	}
	err = crdt.ReadDataJSON(resp.Body, crdt.DataLimits{}, func(id crdt.PublicKey, rec *crdt.Record, err error) error {
		if !contains(joined, id) {
			return nil // only the networks this node joined
		}
		if err != nil {
			n.refusals.note(u, string(crdt.ReasonMalformed), err)
			damaged++
			return nil
		}
		if batch = append(batch, rec); len(batch) >= bootstrapBatch {
			ingest()
		}
		return nil
	})
	ingest()
	if err != nil && ctx.Err() != nil {
		// The body's read error only says the connection closed; say why.
		return fmt.Errorf("%s: gave up after %d records: %w", u, added+known+refused+damaged, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	n.stats.BootstrapOK.Add(1)
	n.log.Info("bootstrapped", "url", u, "added", added, "known", known, "refused", refused, "damaged", damaged)
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

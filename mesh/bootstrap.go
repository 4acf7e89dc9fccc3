package mesh

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
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
	// A whole data.json may take minutes (41 MB and 300,000 signatures
	// at 100,000 hosts), so the client's timeout, which bounds a whole
	// request, does not apply: a source that sends nothing for
	// RequestTimeout is given up, and one that sends for longer than
	// bootstrapMax (an endless file costs one batch of memory, but its
	// verifying would never end).
	total := max(n.cfg.RequestTimeout, bootstrapMax)
	ctx, cancelTotal := context.WithTimeoutCause(ctx, total, fmt.Errorf("still reading after %v", total))
	defer cancelTotal()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(n.cfg.RequestTimeout, func() { cancel(fmt.Errorf("nothing received for %v", n.cfg.RequestTimeout)) })
	defer stall.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	client := *n.cfg.HTTPClient
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", u, context.Cause(ctx))
		}
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
	body := &stallReader{r: resp.Body, stall: stall, after: n.cfg.RequestTimeout}
	err = crdt.ReadDataJSON(body, crdt.DataLimits{}, func(id crdt.PublicKey, rec *crdt.Record, err error) error {
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
	// The live hosts are the way into the mesh (once it runs): one that
	// answers is enough (its member list brings the rest), the source's
	// own first.
	if !n.running.Load() {
		return nil
	}
	source, _ := netip.ParseAddr(resp.Request.URL.Hostname())
	if cands := n.absentHosts(bootstrapJoinTries, source.Unmap()); len(cands) > 0 {
		if _, err := n.joinOneOf(cands, bootstrapJoinTries); err != nil {
			return fmt.Errorf("no host named in %s answered gossip: %w", u, err)
		}
		n.SyncNow()
	}
	return nil
}

// bootstrapMax bounds one bootstrap's reading; bootstrapJoinTries, the
// hosts it then tries to join.
const (
	bootstrapMax       = 10 * time.Minute
	bootstrapJoinTries = 8
)

// stallReader restarts stall each time bytes arrive.
type stallReader struct {
	r     io.Reader
	stall *time.Timer
	after time.Duration
}

func (s *stallReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if n > 0 {
		s.stall.Reset(s.after)
	}
	return n, err
}

package mesh

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// maxAnswerRecords bounds the record bytes in one stage-2 answer; what does
// not fit comes in the next round.
const maxAnswerRecords = 4 << 20

// syncLoop runs a round with a random peer every SyncInterval, and at once
// when kicked (a member joined, a seed answered).
func (n *Node) syncLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
		peer, ok := n.randomPeer()
		if !ok {
			continue
		}
		if _, err := n.SyncWith(ctx, peer); err != nil && ctx.Err() == nil {
			n.stats.SyncFailures.Add(1)
			n.log.Debug("anti-entropy round failed", "peer", peer.Addr, "err", err)
		}
	}
}

// SyncResult says what a round moved.
type SyncResult struct {
	Pulled, Pushed int // records
	InStep         bool
}

// SyncWith runs one anti-entropy round with peer: it pulls what the peer
// has and this node lacks, and pushes what the peer lacks.
func (n *Node) SyncWith(ctx context.Context, peer Member) (SyncResult, error) {
	var res SyncResult
	n.stats.SyncRounds.Add(1)
	u := n.peerURL(peer, PathSync)
	// Stage 1: network and group fingerprints.
	req := &wireMsg{stage: 1}
	n.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			wn := wireNet{id: id, root: st.Fingerprint(id)}
			b := st.BucketFingerprints(id)
			for g := range groups {
				var f crdt.Fingerprint
				for i := range bucketsPerGrp {
					f = f.Combine(b[g*bucketsPerGrp+i])
				}
				wn.groups[g] = short(f)
			}
			req.nets = append(req.nets, wn)
		}
	})
	ans, err := n.exchange(ctx, u, req)
	if err != nil {
		return res, err
	}
	// Stage 2: the prefixes held in the buckets that differ.
	req2 := &wireMsg{stage: 2}
	n.store.Read(func(st *crdt.State) {
		for _, an := range ans.nets {
			if !slices.Contains(st.Joined(), an.id) {
				continue
			}
			mine := st.BucketFingerprints(an.id)
			wn := wireNet{id: an.id}
			for _, d := range an.detail {
				for i, theirs := range d.buckets {
					b := int(d.group)*bucketsPerGrp + i
					if short(mine[b]) == theirs {
						continue
					}
					bp := bucketPrefixes{bucket: uint8(b)}
					for _, h := range st.BucketHashes(an.id, uint8(b)) {
						bp.prefixes = append(bp.prefixes, prefixOf(h))
					}
					wn.prefixes = append(wn.prefixes, bp)
				}
			}
			if len(wn.prefixes) > 0 {
				req2.nets = append(req2.nets, wn)
			}
		}
	})
	if len(req2.nets) == 0 {
		res.InStep = true
		n.synced.Store(true)
		return res, nil
	}
	ans2, err := n.exchange(ctx, u, req2)
	if err != nil {
		return res, err
	}
	var pulled [][]byte
	for _, an := range ans2.nets {
		pulled = append(pulled, an.records...)
	}
	if len(pulled) > 0 {
		got := n.store.IngestBytes(pulled)
		res.Pulled = got.Added
		n.stats.SyncRecords.Add(int64(got.Added))
		if bad := n.logRejected(got, peer.Addr.String()); n.limits.bad(peer.Addr, bad, time.Now()) {
			n.stats.PeersPenalized.Add(1)
			n.log.Warn("peer sent invalid records; ignoring it for a while", "peer", peer.Addr, "invalid", bad)
		}
	}
	// Stage 3: push what the peer wants.
	req3 := &wireMsg{stage: 3}
	n.store.Read(func(st *crdt.State) {
		for _, an := range ans2.nets {
			if len(an.wants) == 0 {
				continue
			}
			want := map[uint64]bool{}
			for _, p := range an.wants {
				want[p] = true
			}
			wn := wireNet{id: an.id}
			for _, b := range bucketsOf(an.wants) {
				for _, h := range st.BucketHashes(an.id, b) {
					if want[prefixOf(h)] {
						if r := st.Lookup(an.id, h); r != nil {
							wn.records = append(wn.records, r.Bytes())
						}
					}
				}
			}
			if len(wn.records) > 0 {
				res.Pushed += len(wn.records)
				req3.nets = append(req3.nets, wn)
			}
		}
	})
	if len(req3.nets) > 0 {
		if _, err := n.exchange(ctx, u, req3); err != nil {
			return res, err
		}
	}
	n.synced.Store(true)
	return res, nil
}

func bucketsOf(prefixes []uint64) []uint8 {
	seen := map[uint8]bool{}
	var out []uint8
	for _, p := range prefixes {
		b := uint8(p >> 56)
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

func (n *Node) exchange(ctx context.Context, u string, m *wireMsg) (*wireMsg, error) {
	body := m.encode()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", syncContentType)
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, n.cfg.MaxBody+1))
	if err != nil {
		return nil, err
	}
	n.stats.SyncBytesOut.Add(int64(len(body)))
	n.stats.SyncBytesIn.Add(int64(len(out)))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s: %s", u, resp.Status, bytes.TrimSpace(out[:min(len(out), 200)]))
	}
	if int64(len(out)) > n.cfg.MaxBody {
		return nil, fmt.Errorf("POST %s: answer larger than %d bytes", u, n.cfg.MaxBody)
	}
	return decodeWire(out, true)
}

const syncContentType = "application/x-data-mesher-sync"

// answer serves one stage of a round for a peer.
func (n *Node) answer(m *wireMsg, from string) (*wireMsg, int) {
	out := &wireMsg{stage: m.stage, answer: true}
	switch m.stage {
	case 1:
		n.store.Read(func(st *crdt.State) {
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) {
					continue // a node serves only the networks it joined
				}
				root := st.Fingerprint(rn.id)
				if root.Count == rn.root.Count && root.XOR == rn.root.XOR {
					continue
				}
				b := st.BucketFingerprints(rn.id)
				wn := wireNet{id: rn.id}
				for g := range groups {
					var f crdt.Fingerprint
					var d groupDetail
					d.group = uint8(g)
					for i := range bucketsPerGrp {
						f = f.Combine(b[g*bucketsPerGrp+i])
						d.buckets[i] = short(b[g*bucketsPerGrp+i])
					}
					if short(f) != rn.groups[g] {
						wn.detail = append(wn.detail, d)
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
	case 2:
		n.store.Read(func(st *crdt.State) {
			budget := maxAnswerRecords
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) {
					continue
				}
				wn := wireNet{id: rn.id}
				for _, bp := range rn.prefixes {
					theirs := map[uint64]bool{}
					for _, p := range bp.prefixes {
						theirs[p] = true
					}
					mine := map[uint64]bool{}
					for _, h := range st.BucketHashes(rn.id, bp.bucket) {
						p := prefixOf(h)
						mine[p] = true
						if theirs[p] || budget <= 0 {
							continue
						}
						if r := st.Lookup(rn.id, h); r != nil {
							wn.records = append(wn.records, r.Bytes())
							budget -= len(r.Bytes())
						}
					}
					for _, p := range bp.prefixes {
						if !mine[p] && uint8(p>>56) == bp.bucket {
							wn.wants = append(wn.wants, p)
						}
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
	case 3:
		var raws [][]byte
		for _, rn := range m.nets {
			raws = append(raws, rn.records...)
		}
		res := n.store.IngestBytes(raws)
		n.stats.SyncRecords.Add(int64(res.Added))
		return out, n.logRejected(res, from)
	}
	return out, 0
}

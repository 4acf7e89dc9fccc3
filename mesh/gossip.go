package mesh

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

// Gossip messages (memberlist user messages), one byte of type first:
//
//	'R' record     a whole record, when it fits a packet
//	'H' have       network key, record hash, announcer's node name: a record
//	               too large for a packet, to fetch from the announcer
//	'B' batch      'R' and 'H' messages in a packet of the mesh's own, when
//	               memberlist's broadcasts crowd them out (crowding.go)
//
// A node forwards a record only after ingesting it, and only if it was new:
// gossip spreads verified records, each once per node.
const (
	msgRecord = 'R'
	msgHave   = 'H'
)

type delegate struct{ n *Node }

// NodeMeta is this node's member proof (member.go).
func (d *delegate) NodeMeta(limit int) []byte { return d.n.nodeMeta() }

// NotifyMsg must not block: messages wait in a bounded inbox, and when it is
// full they are dropped (anti-entropy repairs what gossip loses).
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	select {
	case d.n.inbox <- append([]byte(nil), b...):
	default:
		d.n.stats.GossipDropped.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.crowd.Offer(d.n.queue, overhead, limit, time.Now())
}

func (d *delegate) LocalState(bool) []byte              { return nil }
func (d *delegate) MergeRemoteState(buf []byte, _ bool) {}

type events struct{ n *Node }

func (e *events) NotifyJoin(m *memberlist.Node) {
	e.n.memberUp(m)
	if m.Name != e.n.cfg.Key.Public().String() {
		e.n.log.Debug("member joined", "member", m.Name, "addr", m.Addr)
		// A node that has not synced yet does so with its first members.
		// The others do not: every join kicking a round at every node is
		// N rounds per join (a million while 1,000 nodes form), with a
		// random peer rather than the newcomer, which syncs itself.
		if !e.n.synced.Load() {
			e.n.SyncNow()
		}
	}
}

func (e *events) NotifyLeave(m *memberlist.Node) {
	e.n.memberDown(m)
	e.n.log.Debug("member left", "member", m.Name)
}

func (e *events) NotifyUpdate(m *memberlist.Node) { e.n.memberUp(m) }

// maxQueued bounds the broadcast queue; the oldest go first (anti-entropy
// covers them).
const maxQueued = 8192

func (n *Node) broadcast(r *crdt.Record) {
	QueueRecord(n.queue, r, n.cfg.InlineLimit, n.cfg.Key.Public().String())
	n.stats.Broadcasts.Add(1)
}

// receive ingests gossip and forwards what was new.
func (n *Node) receive(ctx context.Context) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n.inbox:
			n.stats.GossipIn.Add(1)
			if msg[0] != msgBatch {
				n.handleGossip(msg)
				continue
			}
			parts, ok := SplitBatch(msg[1:])
			if !ok {
				n.log.Debug("malformed gossip batch", "bytes", len(msg))
				continue
			}
			// Last first, as memberlist hands out the parts of a
			// compound packet: the queue puts the larger message of a
			// tier first, and an attestation is larger than its claim.
			for _, m := range slices.Backward(parts) {
				n.handleGossip(m)
			}
		}
	}
}

func (n *Node) handleGossip(msg []byte) {
	switch msg[0] {
	case msgRecord:
		n.ingestAndForward([][]byte{msg[1:]}, "gossip")
	case msgHave:
		if net, h, from, ok := haveMsg(msg[1:]); ok {
			n.announced(net, h, from)
		}
	default:
		n.log.Debug("unknown gossip message", "type", msg[0])
	}
}

// crowdLoop sends the mesh's gossip in packets of its own while
// memberlist's broadcasts crowd it out (crowding.go).
func (n *Node) crowdLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.GossipInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n.queue.NumQueued() == 0 || !n.crowd.CrowdedOut(now, n.cfg.GossipInterval) {
				continue
			}
			n.sendBatches()
		}
	}
}

// sendBatches sends GossipNodes random members a batch each, while the
// queue gives messages.
func (n *Node) sendBatches() {
	ms := n.memberList()
	for range min(n.gossipNodes, len(ms)) {
		i := rand.IntN(len(ms))
		m := ms[i]
		ms[i] = ms[len(ms)-1]
		ms = ms[:len(ms)-1]
		b := Batch(n.queue, BatchLimit(n.packetSize))
		if b == nil {
			return
		}
		to := &memberlist.Node{Name: m.Name, Addr: m.Addr.AsSlice(), Port: m.GossipPort}
		if err := n.ml.SendBestEffort(to, b); err != nil {
			n.log.Debug("sending gossip batch", "member", m.Name, "err", err)
		}
		n.stats.GossipBatches.Add(1)
	}
}

// ingestAndForward ingests records from the network and gossips the new
// ones onwards.
func (n *Node) ingestAndForward(raws [][]byte, from string) crdt.BatchResult {
	res := n.store.IngestBytes(raws)
	for _, r := range res.AddedRecords {
		n.broadcast(r)
	}
	n.logRejected(res, from)
	return res
}

// logRejected counts and reports the records a batch refused, and
// returns how many of them only a hostile or broken peer sends (for the
// penalty box).
func (n *Node) logRejected(res crdt.BatchResult, from string) int {
	bad := 0
	for _, rej := range res.Rejected {
		n.stats.Rejected.Add(1)
		switch rej.Reason {
		case crdt.ReasonBadSignature, crdt.ReasonMalformed, crdt.ReasonBadAttestation:
			bad++
		}
		n.refusals.note(from, string(rej.Reason), rej)
	}
	return bad
}

// haveMsg parses an announcement: network, hash, announcer.
func haveMsg(b []byte) (crdt.PublicKey, crdt.Hash, string, bool) {
	var net crdt.PublicKey
	var h crdt.Hash
	if len(b) < 64+1 {
		return net, h, "", false
	}
	copy(net[:], b[:32])
	copy(h[:], b[32:64])
	return net, h, string(b[64:]), true
}

// get fetches a URL with the node's client, refusing bodies over max bytes.
func (n *Node) get(ctx context.Context, u string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, max)
	}
	return body, nil
}

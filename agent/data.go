package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
)

// The database's ways in and out for people and programs: the control
// API's namespaces, data, writes and watches. Writes are signed with the
// node's key (the admin's writes are built and signed by the command line
// and published); reads are the namespaces' items, resolved by their
// policies (crdt.Items).

func namespaceInfo(label string, ns crdt.Namespace) control.Namespace {
	out := control.Namespace{Network: label, Name: ns.Name, Writers: ns.Writers.String(), Policy: ns.Policy.String(),
		MaxValue: ns.ValueLimit(), MaxEntriesPerWriter: ns.EntryLimit(), Lifetime: ns.Lifetime.Seconds()}
	for _, k := range ns.WriterKeys {
		out.WriterKeys = append(out.WriterKeys, k.AuthorizedKey())
	}
	return out
}

func dataItem(it crdt.Item) control.DataItem {
	d := control.DataItem{Writer: it.Writer.AuthorizedKey(), Time: it.Time, Hash: it.Hash.String(), Seq: it.Seq,
		Deleted: it.Op == crdt.OpDelete, Standing: string(it.Standing)}
	if it.Attested {
		d.AttestedAt = it.AttestedAt
	}
	if !d.Deleted {
		if utf8.Valid(it.Value) {
			v := string(it.Value)
			d.Value = &v
		} else {
			d.ValueBase64 = it.Value
		}
	}
	return d
}

func dataKey(k crdt.KeyItems) control.DataKey {
	d := control.DataKey{Key: k.Key, Deleted: k.Deleted, Items: []control.DataItem{}}
	if !k.Owner.IsZero() {
		d.Owner = k.Owner.AuthorizedKey()
	}
	for _, it := range k.Items {
		d.Items = append(d.Items, dataItem(it))
	}
	return d
}

// items reads namespace ns of network label-or-key, or says why not.
func (a *Agent) items(network, ns string) (Joined, *crdt.NamespaceItems, error) {
	n, err := a.network(a.conf.Load(), network)
	if err != nil {
		return n, nil, err
	}
	var v *crdt.NamespaceItems
	a.store.Read(func(st *crdt.State) { v = st.Items(n.ID, ns, a.now()) })
	if v == nil {
		return n, nil, fmt.Errorf("%w: network %s's settings declare no namespace %q", control.ErrNotFound, n.Label, ns)
	}
	return n, v, nil
}

// Namespaces lists what a network's settings declare.
func (a *Agent) Namespaces(_ context.Context, network string) ([]control.Namespace, error) {
	n, err := a.network(a.conf.Load(), network)
	if err != nil {
		return nil, err
	}
	out := []control.Namespace{}
	a.store.Read(func(st *crdt.State) {
		for _, ns := range st.Namespaces(n.ID) {
			out = append(out, namespaceInfo(n.Label, ns))
		}
	})
	return out, nil
}

// Data reads a namespace, or the key q names (in every owner's key-space
// of an owner namespace, unless q names the owner; other namespaces have
// no owners, and q's is ignored there).
func (a *Agent) Data(_ context.Context, q control.DataQuery) (control.DataList, error) {
	n, v, err := a.items(q.Network, q.Namespace)
	if err != nil {
		return control.DataList{}, err
	}
	var owner crdt.PublicKey
	if q.Owner != "" {
		if owner, err = crdt.ParsePublicKey(q.Owner); err != nil {
			return control.DataList{}, fmt.Errorf("%w: owner: %v", control.ErrBadRequest, err)
		}
	}
	out := control.DataList{Namespace: namespaceInfo(n.Label, v.Namespace), Keys: []control.DataKey{}}
	for _, k := range v.Keys {
		if q.Key != "" && (k.Key != q.Key || (v.Namespace.Writers == crdt.WritersOwner && !owner.IsZero() && k.Owner != owner)) {
			continue
		}
		out.Keys = append(out.Keys, dataKey(k))
	}
	return out, nil
}

// writeClock gives this node's writes strictly increasing times, so that
// a later write of a key always wins over an earlier one whatever the
// clock does.
type writeClock struct {
	mu   sync.Mutex
	last time.Time
}

func (c *writeClock) next(now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.After(c.last) {
		now = c.last.Add(time.Microsecond)
	}
	c.last = now
	return now
}

// Write signs a put or delete with the node's key and publishes it.
func (a *Agent) Write(ctx context.Context, w control.DataWrite) (control.DataWritten, error) {
	p, err := a.ready()
	if err != nil {
		return control.DataWritten{}, err
	}
	n, err := a.network(a.conf.Load(), w.Network)
	if err != nil {
		return control.DataWritten{}, err
	}
	self := a.key.Public()
	target := self
	if w.Owner != "" {
		if target, err = crdt.ParsePublicKey(w.Owner); err != nil {
			return control.DataWritten{}, fmt.Errorf("%w: owner: %v", control.ErrBadRequest, err)
		}
	}
	e := crdt.Entry{Network: n.ID, Namespace: w.Namespace, Writer: self, Key: w.Key, Op: crdt.OpPut, Value: w.Value}
	if w.Delete {
		e.Op, e.Value = crdt.OpDelete, nil
	}
	var notFound error
	a.store.Read(func(st *crdt.State) {
		decl := st.Namespace(n.ID, w.Namespace)
		if decl == nil {
			notFound = fmt.Errorf("%w: network %s's settings declare no namespace %q", control.ErrNotFound, n.Label, w.Namespace)
			return
		}
		e.Policy = decl.Policy
		e.Time = a.writes.next(a.now())
		switch {
		case decl.Policy == crdt.PolicyLog:
			e.Seq = st.NextSeq(n.ID, w.Namespace, self)
		case decl.Policy == crdt.PolicyORSet && w.Delete:
			// A tombstone names the adds it removes: the target's live adds
			// of the key that this node holds (later ones it has not seen
			// stay), dated at or after each of them.
			e.Target = target
			if v := st.Items(n.ID, w.Namespace, a.now()); v != nil {
				if k := v.Get(target, w.Key); k != nil {
					for _, it := range k.Items {
						if it.Writer == target {
							e.Removes = append(e.Removes, it.Hash)
							if !it.Time.Before(e.Time) {
								e.Time = a.writes.next(it.Time)
							}
						}
					}
				}
			}
			if len(e.Removes) == 0 {
				notFound = fmt.Errorf("%w: %s holds no element of key %q by %s to delete", control.ErrNotFound, w.Namespace, w.Key, target.Short())
			}
			slices.SortFunc(e.Removes, crdt.Hash.Compare)
		}
	})
	if notFound != nil {
		return control.DataWritten{}, notFound
	}
	rec, err := crdt.SignEntry(e, a.key)
	if err != nil {
		return control.DataWritten{}, fmt.Errorf("%w: %v", control.ErrBadRequest, err)
	}
	res := p.node.Publish(rec)
	out := control.DataWritten{Hash: rec.Hash().String(), Added: res.Added == 1}
	if len(res.Rejected) > 0 {
		out.Refused = res.Rejected[0].Error()
		return out, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.persist.wait(wctx); err != nil {
		return out, fmt.Errorf("written but not yet on disk: %w", err)
	}
	return out, nil
}

// Watch sends every change of namespace ns's keys from now on: after each
// change of the state that touches the namespace, and when its items
// change by themselves (an entry decays).
func (a *Agent) Watch(ctx context.Context, network, ns string, send func(control.DataChange) error) error {
	n, v, err := a.items(network, ns)
	if err != nil {
		return err
	}
	type keyID struct{ owner, key string }
	render := func(v *crdt.NamespaceItems) map[keyID][]byte {
		m := make(map[keyID][]byte, len(v.Keys))
		for _, k := range v.Keys {
			b, _ := json.Marshal(dataKey(k))
			m[keyID{k.Owner.String(), k.Key}] = b
		}
		return m
	}
	last := render(v)
	var version crdt.NamespaceVersion
	a.store.Read(func(st *crdt.State) { version = st.NamespaceVersion(n.ID, ns) })
	until := v.ValidUntil
	for {
		changed := a.changes.wait()
		wait := time.Hour
		if !until.IsZero() {
			wait = max(until.Sub(a.now()), time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		var next crdt.NamespaceVersion
		var nv *crdt.NamespaceItems
		a.store.Read(func(st *crdt.State) {
			next = st.NamespaceVersion(n.ID, ns)
			if next != version || (!until.IsZero() && !a.now().Before(until)) {
				nv = st.Items(n.ID, ns, a.now())
			}
		})
		if nv == nil {
			if next == (crdt.NamespaceVersion{}) {
				return errors.New("the namespace is no longer declared")
			}
			continue
		}
		version, until = next, nv.ValidUntil
		now := render(nv)
		var out []control.DataChange
		for _, k := range nv.Keys {
			id := keyID{k.Owner.String(), k.Key}
			if string(last[id]) != string(now[id]) {
				out = append(out, control.DataChange{Network: n.Label, Namespace: ns, Change: dataKey(k)})
			}
		}
		for id := range last {
			if _, ok := now[id]; !ok {
				gone := control.DataKey{Key: id.key, Items: []control.DataItem{}}
				if o, err := crdt.ParsePublicKey(id.owner); err == nil && !o.IsZero() {
					gone.Owner = o.AuthorizedKey()
				}
				out = append(out, control.DataChange{Network: n.Label, Namespace: ns, Change: gone})
			}
		}
		last = now
		for _, c := range out {
			if err := send(c); err != nil {
				return err
			}
		}
	}
}

// notifier lets any number of goroutines wait for the next change: wait
// returns a channel that closes at the next notify.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

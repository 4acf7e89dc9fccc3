package mesh

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

// Members prove their key. A node's memberlist name is its node key, and
// its metadata carries a proof: a signature by that key over the node's
// gossip address and port, its peer endpoint port, a time, and the
// networks it joined:
//
//	meta  = version (2) ‖ http port (2) ‖ time (8, Unix ns) ‖ count (1) ‖ networks (32 each) ‖ signature (64)
//	signed: "data-mesher/v1 member\0" ‖ key (32) ‖ address (16) ‖ gossip port (2) ‖ http port (2) ‖ time (8) ‖ count (1) ‖ networks
//
// Every alive message (memberlist's own, and each node of a push/pull
// merge) goes through admitMember before memberlist takes it: a member
// whose proof fails, is older than proofMaxAge, shares no network with
// this node, is banned (or not on a restricted network's allow-list) in
// every network it shares, or whose address WireGuard does not route, is
// refused: it never becomes a member here, so it is not probed, gossiped
// to, synced or fetched from. A member refused later (a ban, a route gone)
// leaves the member list at once and its address is shut at the
// transport, so memberlist's own failure detection declares it dead within
// seconds; the address is shut only while every member known at it is
// refused, so an announcement forged for a victim's address cannot cut
// the victim off.
const (
	memberContext   = "data-mesher/v1 member\x00"
	metaVersion     = 2
	maxMetaNetworks = 13 // 76 + 32·13 bytes fit memberlist's 512-byte meta
	// proofMaxAge is how old a proof may be; nodes re-sign theirs every
	// proofRefresh.
	proofMaxAge  = 6 * time.Hour
	proofRefresh = time.Hour
	proofSkew    = 5 * time.Minute
	// recheckEvery is how often every member is judged again for its
	// proof's age (a ban, an allow-list or a route is judged at once,
	// when it changes). Each recheck judges all members: every 10 s it
	// was 7% of TestScale's CPU at 850 nodes, and proofs age for hours.
	recheckEvery = time.Minute
)

// Why a member is refused (the refusals' reasons, in logs and metrics).
const (
	ReasonBadProof      = "bad-member-proof"
	ReasonStaleProof    = "stale-member-proof"
	ReasonNoSharedNet   = "no-shared-network"
	ReasonMemberBanned  = "member-banned"
	ReasonNotRouted     = "member-not-routed"
	ReasonNotAllowedKey = "member-not-allowed"
)

// MemberRefusal says why a member was refused.
type MemberRefusal struct {
	Reason string
	Name   string
	Err    error
}

func (r *MemberRefusal) Error() string {
	return fmt.Sprintf("member %.10s refused (%s): %v", r.Name, r.Reason, r.Err)
}

func (r *MemberRefusal) Unwrap() error { return r.Err }

type memberProof struct {
	httpPort uint16
	time     time.Time
	networks []crdt.PublicKey
	sig      []byte
}

func proofMessage(key crdt.PublicKey, addr netip.Addr, gossipPort uint16, p memberProof) []byte {
	m := make([]byte, 0, len(memberContext)+32+16+2+2+8+1+32*len(p.networks))
	m = append(m, memberContext...)
	m = append(m, key[:]...)
	a := addr.As16()
	m = append(m, a[:]...)
	m = binary.BigEndian.AppendUint16(m, gossipPort)
	m = binary.BigEndian.AppendUint16(m, p.httpPort)
	m = binary.BigEndian.AppendUint64(m, uint64(p.time.UnixNano()))
	m = append(m, byte(len(p.networks)))
	for _, id := range p.networks {
		m = append(m, id[:]...)
	}
	return m
}

// nodeMeta is this node's metadata: its proof, signed now.
func (n *Node) nodeMeta() []byte {
	var nets []crdt.PublicKey
	n.store.Read(func(st *crdt.State) { nets = st.Joined() })
	if len(nets) > maxMetaNetworks {
		nets = nets[:maxMetaNetworks]
	}
	p := memberProof{httpPort: uint16(n.cfg.HTTPPort), time: n.store.Now(), networks: nets}
	sig := n.cfg.Key.Sign(proofMessage(n.cfg.Key.Public(), n.cfg.BindAddr, uint16(n.cfg.GossipPort), p))
	b := []byte{metaVersion}
	b = binary.BigEndian.AppendUint16(b, p.httpPort)
	b = binary.BigEndian.AppendUint64(b, uint64(p.time.UnixNano()))
	b = append(b, byte(len(nets)))
	for _, id := range nets {
		b = append(b, id[:]...)
	}
	return append(b, sig...)
}

func parseMeta(b []byte) (memberProof, error) {
	var p memberProof
	if len(b) < 12 || b[0] != metaVersion {
		return p, errors.New("no member proof in its metadata (an agent older than this one, or not an agent)")
	}
	p.httpPort = binary.BigEndian.Uint16(b[1:3])
	p.time = time.Unix(0, int64(binary.BigEndian.Uint64(b[3:11])))
	k := int(b[11])
	if k > maxMetaNetworks || len(b) != 12+32*k+ed25519.SignatureSize {
		return p, fmt.Errorf("malformed member proof (%d bytes, %d networks)", len(b), k)
	}
	for i := range k {
		p.networks = append(p.networks, crdt.PublicKey(b[12+32*i:12+32*(i+1)]))
	}
	p.sig = b[12+32*k:]
	return p, nil
}

// admitMember decides whether a member may be one here; nil admits it.
func (n *Node) admitMember(name string, addr netip.Addr, port uint16, meta []byte) error {
	if name == n.cfg.Key.Public().String() {
		return nil
	}
	refuse := func(reason string, format string, args ...any) error {
		return &MemberRefusal{Reason: reason, Name: name, Err: fmt.Errorf(format, args...)}
	}
	key, err := crdt.ParsePublicKey(name)
	if err != nil {
		return refuse(ReasonBadProof, "its name is not a node key: %v", err)
	}
	p, err := parseMeta(meta)
	if err != nil {
		return refuse(ReasonBadProof, "%v", err)
	}
	if !n.proofs.verify(key, proofMessage(key, addr.Unmap(), port, p), p.sig) {
		return refuse(ReasonBadProof, "its proof does not verify for %s at %s", key.Short(), netip.AddrPortFrom(addr, port))
	}
	now := n.store.Now()
	if age := now.Sub(p.time); age > proofMaxAge || age < -proofSkew {
		return refuse(ReasonStaleProof, "its proof is dated %s (%s from now)", p.time.UTC().Format(time.RFC3339), -age.Round(time.Second))
	}
	var shared int
	reason := ""
	n.store.Read(func(st *crdt.State) {
		for _, id := range p.networks {
			if !slices.Contains(st.Joined(), id) {
				continue
			}
			shared++
			r := st.Admits(id, key)
			if r == "" {
				reason = ""
				return
			}
			reason = string(r)
		}
	})
	switch {
	case shared == 0:
		return refuse(ReasonNoSharedNet, "it joined none of this node's networks")
	case reason == string(crdt.ReasonBanned):
		return refuse(ReasonMemberBanned, "its key is banned")
	case reason != "":
		return refuse(ReasonNotAllowedKey, "its key is not on the allow-list")
	}
	if !n.cfg.Routed(addr.Unmap()) {
		return refuse(ReasonNotRouted, "its address %s is not routed to any WireGuard peer", addr)
	}
	return nil
}

// alive is memberlist's AliveDelegate and MergeDelegate.
type alive struct{ n *Node }

// NotifyAlive runs for every alive message, merges included.
func (d alive) NotifyAlive(peer *memberlist.Node) error {
	addr, _ := netip.AddrFromSlice(peer.Addr)
	err := d.n.admitMember(peer.Name, addr, peer.Port, peer.Meta)
	if err != nil {
		var r *MemberRefusal
		if errors.As(err, &r) {
			d.n.refusals.note(addr.Unmap().String(), r.Reason, err)
		}
	}
	return err
}

// NotifyMerge refuses a push/pull merge in which no member at all is
// admitted (a stranger's cluster, or an impostor joining alone);
// otherwise each member is judged by NotifyAlive.
func (d alive) NotifyMerge(peers []*memberlist.Node) error {
	var errs []error
	for _, p := range peers {
		addr, _ := netip.AddrFromSlice(p.Addr)
		err := d.n.admitMember(p.Name, addr, p.Port, p.Meta)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	for i, err := range errs {
		var r *MemberRefusal
		if errors.As(err, &r) {
			addr, _ := netip.AddrFromSlice(peers[i].Addr)
			d.n.refusals.note(addr.Unmap().String(), r.Reason, err)
		}
	}
	return fmt.Errorf("no member of that cluster is admitted here: %w", errors.Join(errs...))
}

// recheckMembers judges the current members again (new settings, routes
// changed, proofs aging), drops those now refused and shuts their
// addresses at the transport; members refused earlier and admitted now (a
// ban lifted) are forgotten, and gossip's reconnection brings them back.
func (n *Node) recheckMembers() {
	n.recheckMu.Lock()
	defer n.recheckMu.Unlock()
	n.membersMu.Lock()
	current := slices.Collect(maps.Values(n.members))
	earlier := slices.Collect(maps.Values(n.refusedAt))
	n.membersMu.Unlock()
	var refused, lifted []Member
	for _, m := range current {
		if err := n.admitMember(m.Name, m.Addr, m.GossipPort, m.meta); err != nil {
			var r *MemberRefusal
			if errors.As(err, &r) {
				n.refusals.note(m.Addr.String(), r.Reason, err)
			}
			refused = append(refused, m)
		}
	}
	for _, m := range earlier {
		if n.admitMember(m.Name, m.Addr, m.GossipPort, m.meta) == nil {
			lifted = append(lifted, m)
		}
	}
	n.membersMu.Lock()
	for _, m := range refused {
		delete(n.members, m.Name)
		n.refusedAt[m.Name] = m
	}
	for _, m := range lifted {
		delete(n.refusedAt, m.Name)
	}
	// An address is shut while every member known at it is refused.
	shut := map[netip.Addr]bool{}
	for _, m := range n.refusedAt {
		shut[m.Addr] = true
	}
	for _, m := range n.members {
		delete(shut, m.Addr)
	}
	n.membersMu.Unlock()
	n.filter.set(shut)
	if len(refused) > 0 {
		n.log.Info("members refused; their gossip is shut", "count", len(refused))
	}
	n.readmit(lifted)
}

// readmit lists again the lifted members that gossip still holds alive:
// memberlist tells of a member only when it joins or changes, and one
// refused and lifted before its failure detection noticed the shut
// address never left memberlist's list, so no event would bring it back
// (until its next re-signed proof, an hour later). The others come back
// as they rejoin.
func (n *Node) readmit(lifted []Member) {
	if len(lifted) == 0 {
		return
	}
	want := make(map[string]bool, len(lifted))
	for _, m := range lifted {
		want[m.Name] = true
	}
	for _, m := range n.ml.Members() {
		if !want[m.Name] {
			continue
		}
		if addr, _ := netip.AddrFromSlice(m.Addr); n.admitMember(m.Name, addr, m.Port, m.Meta) == nil {
			n.memberUp(m)
		}
	}
}

// filterTransport wraps memberlist's transport and drops what comes from
// or goes to a shut address.
type filterTransport struct {
	memberlist.NodeAwareTransport
	shut    *addrSet
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{} // Shutdown began: forward nothing more
	closed  chan struct{} // the inner transport has stopped
}

func newFilterTransport(inner memberlist.NodeAwareTransport, shut *addrSet) *filterTransport {
	t := &filterTransport{NodeAwareTransport: inner, shut: shut, packets: make(chan *memberlist.Packet, 64),
		streams: make(chan net.Conn, 8), done: make(chan struct{}), closed: make(chan struct{})}
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

func hostOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (t *filterTransport) forwardPackets() {
	in := t.NodeAwareTransport.PacketCh()
	for {
		select {
		case <-t.done:
			for { // drop what still comes until the inner transport has stopped
				select {
				case <-in:
				case <-t.closed:
					return
				}
			}
		case p := <-in:
			if t.shut.has(hostOf(p.From)) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done: // dropped; the loop drains from here
			}
		}
	}
}

func (t *filterTransport) forwardStreams() {
	in := t.NodeAwareTransport.StreamCh()
	for {
		select {
		case <-t.done:
			for {
				select {
				case c := <-in:
					c.Close()
				case <-t.closed:
					return
				}
			}
		case c := <-in:
			if t.shut.has(hostOf(c.RemoteAddr())) {
				c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.done:
				c.Close()
			}
		}
	}
}

func (t *filterTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *filterTransport) StreamCh() <-chan net.Conn           { return t.streams }

func addrHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

var errShut = errors.New("address shut: its members are refused")

func (t *filterTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.shut.has(addrHost(addr)) {
		return time.Now(), nil // dropped, as a lost packet would be
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *filterTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.shut.has(addrHost(a.Addr)) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *filterTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.shut.has(addrHost(addr)) {
		return nil, errShut
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (t *filterTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.shut.has(addrHost(a.Addr)) {
		return nil, errShut
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

// Shutdown stops forwarding, and keeps taking (and dropping) what the
// inner transport still hands over until it has stopped: memberlist's
// NetTransport hands each packet and stream over on an unbuffered channel
// and its Shutdown waits for its listeners, so when the forwarders simply
// ended, a packet arriving during shutdown blocked the listener, and
// Shutdown, for ever (an agent stopping while a peer still gossiped to it
// hung on SIGTERM about once in 30 stops).
func (t *filterTransport) Shutdown() error {
	close(t.done)
	err := t.NodeAwareTransport.Shutdown()
	close(t.closed)
	return err
}

// addrSet is a set of addresses, replaced whole, read by the transport on
// every packet.
type addrSet struct {
	mu    sync.RWMutex
	addrs map[netip.Addr]bool
}

func (s *addrSet) has(a netip.Addr) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.addrs[a]
}

func (s *addrSet) set(m map[netip.Addr]bool) {
	s.mu.Lock()
	s.addrs = m
	s.mu.Unlock()
}

// nodeAware gives memberlist's plain NetTransport the node-aware methods
// (as memberlist's own shim does).
type nodeAware struct{ memberlist.Transport }

func (t nodeAware) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t nodeAware) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

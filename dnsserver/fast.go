package dnsserver

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The fast path's pre-packed replies. Each is a reply the Handler produced
// and packed for a synthetic query, kept without its question: the 12-byte
// header and the records. A reply is rebuilt by patching the header (ID,
// RD, CD), copying the client's question (which echoes its case), and
// appending the OPT record when the client sent one.
//
// Replies are compressed as the Handler compresses them: names point into
// the question (see Handler.reply). A reply made for one of the table's
// names fits every question for that name whatever its case: the question
// has the same length, so the pointers land where they did. The shared
// templates (a zone's NXDOMAIN and NODATA, made for a probe name) point only
// at the zone's apex, at the end of the question, or after the question;
// for a question longer or shorter than the probe's, build moves those
// pointers by the difference.
//
// A name's own replies are kept in one string with its wire name (see
// fastName), since there is one such string for every host; the reverse
// names' PTR replies are packed when first asked (PTR questions are rare,
// and a table of 100,000 hosts would otherwise pack 100,000 of them).

type template struct {
	packed string // the reply without its question: header, then records
	result Result
	qlen   int // length of the question section it was packed after
	// ede is the extended DNS error (RFC 8914) the reply's OPT carries
	// when the query has one; 0: none.
	ede uint16
	// share is set for the templates that answer questions of any length
	// under their zone.
	share *sharing
}

type sharing struct {
	ptrs []int // the offsets after the header of the compression pointers to move
	// avoid are the wire names below the apex that the records hold (the
	// SOA's server and mailbox): a question ending in one compresses
	// differently, so the template does not answer it.
	avoid [][]byte
}

// noReply marks a reply that could not be packed: the Handler answers.
var noReply = &template{}

// fits reports whether the template answers the lower-case wire name
// qname (a shared template, a name under its zone).
func (t *template) fits(qname []byte) bool {
	if t.share == nil {
		return true
	}
	for _, a := range t.share.avoid {
		if bytes.HasSuffix(qname, a) {
			return false
		}
	}
	return true
}

// fastName holds the pre-packed replies of one of the table's names.
type fastName struct {
	// entry is the name's lower-case wire name (its first wlen bytes,
	// which the map's key shares), then its replies, one after the other:
	// the query type (2 bytes), the result (1), the length (2), and that
	// many bytes of header and records. Length 0: ask the Handler.
	entry string
	// nodata answers any other type: the zone's NODATA template (the
	// bytes after the question depend only on the zone's SOA); nil for
	// names with a CNAME (ask the Handler).
	nodata *template
	wlen   uint8
	// reusable: the entry depends only on this name's own records, so
	// a later table may take it as it is when they do not change.
	reusable bool
}

func (fn *fastName) key() string { return fn.entry[:fn.wlen] }

// answer decodes fn's reply to qtype into tp.
func (fn *fastName) answer(qtype uint16, tp *template) bool {
	for e := fn.entry[fn.wlen:]; len(e) >= 5; {
		n := int(e[3])<<8 | int(e[4])
		if uint16(e[0])<<8|uint16(e[1]) == qtype {
			*tp = template{packed: e[5 : 5+n], result: Result(e[2]), qlen: int(fn.wlen) + 4}
			return true
		}
		e = e[5+n:]
	}
	return false
}

// fastZone holds a zone's shared templates.
type fastZone struct {
	// nx is the zone's NXDOMAIN; nil if it could not be shared (ask the
	// Handler).
	nx *template
	// nodata is its NODATA for any name (the apex's, for a type no name
	// has), for the names of the reverse index and as fastName.nodata;
	// nil if it could not be shared (ask the Handler).
	nodata *template
	rev    *reverseIndex // the zone's reverse names, or nil
	// ptr are the PTR replies of rev's addresses, by index, packed when
	// first asked.
	ptr []atomic.Pointer[template]
}

type fastTable struct {
	names map[string]fastName  // lower-case wire name (fastName.key)
	zones map[string]*fastZone // by apex (wire)
	// apexLen[n]: some apex is n bytes long (wire), so a suffix of a
	// question of n bytes is worth looking up in zones (a reverse name
	// has 34 suffixes).
	apexLen [256]bool
	// refused answers names outside every zone; nil when forwarding is
	// configured (the Handler forwards).
	refused *template
	// packer is a Handler of the table, that packs replies when first
	// asked.
	packer *Handler
}

// fastTypes are the query types pre-packed for every name: what clients
// ask for hosts (HTTPS and SVCB come from browsers and curl).
var fastTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeMX, dns.TypeTXT,
	dns.TypeSRV, dns.TypePTR, dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeCAA}

// probe is h's packed reply to a synthetic question, and its result; nil
// if there is none to pre-pack.
func probe(h *Handler, name string, qtype uint16, qlen int) ([]byte, Result) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = false
	b, res := h.reply(q, false)
	if b == nil || len(b) > 65535 || len(b) < 12+qlen {
		return nil, res
	}
	return b, res
}

// pack is the template of h's reply to a synthetic question, or nil.
func pack(h *Handler, name string, qtype uint16) *template {
	qlen := len(wireName(name)) + 4
	b, res := probe(h, name, qtype, qlen)
	if b == nil {
		return nil
	}
	return &template{packed: string(b[:12]) + string(b[12+qlen:]), result: res, qlen: qlen}
}

// buildFast packs the templates of t, taking from prev (the table t
// replaces, or nil) every entry whose records did not change.
func buildFast(t *Table, prev *Table) *fastTable {
	h := &Handler{}
	h.table.Store(t)
	f := &fastTable{names: make(map[string]fastName, len(t.fixed)+len(t.view.Names)), zones: map[string]*fastZone{}, packer: h}
	// shared is the template of a probe under apex that is to answer
	// other names too, if it can (want: the result it must have).
	shared := func(name string, qtype uint16, z *zone, want Result) *template {
		tp := pack(h, name, qtype)
		if tp == nil || tp.result != want || !tp.shareUnder(len(wireName(z.apex))) {
			return nil
		}
		for _, n := range []string{z.soa.Ns, z.soa.Mbox} {
			if n = strings.ToLower(n); n != z.apex && dns.IsSubDomain(z.apex, n) {
				tp.share.avoid = append(tp.share.avoid, []byte(wireName(n)))
			}
		}
		return tp
	}
	zones := map[*zone]*fastZone{}
	for _, z := range t.zones {
		fz := &fastZone{
			nx: shared("dm-nxdomain-probe."+z.apex, dns.TypeA, z, ResultNXDomain),
			// NODATA for a type no name has, at the apex: the same
			// records after the question as for any name of the zone.
			nodata: shared(z.apex, dns.TypeNULL, z, ResultNoData),
			rev:    z.rev,
		}
		if z.rev != nil {
			fz.ptr = make([]atomic.Pointer[template], z.rev.len())
		}
		apex := wireName(z.apex)
		f.zones[apex] = fz
		f.apexLen[min(len(apex), 255)] = true
		zones[z] = fz
	}
	var entry []byte
	for name := range t.forwardNames() {
		z := t.zoneOf(name)
		if entry = appendWire(entry[:0], name); z == nil || len(entry) > 255 {
			continue // outside every zone: refused (or forwarded); too long to ask
		}
		if prev != nil && prev.unchangedIn(t, name) {
			if old, ok := prev.fast.names[string(entry)]; ok && old.reusable {
				f.names[old.key()] = old
				continue
			}
		}
		s := t.lookup(name)
		fn := fastName{wlen: uint8(len(entry))}
		qlen := len(entry) + 4
		hasCNAME := s.cname() != nil
		for _, qt := range fastTypes {
			// A CNAME's answer depends on other names; the others are this
			// name's records, as the Handler gives them
			// (TestFastPathMatchesHandler, FuzzQuery).
			if !hasCNAME && !s.has(qt) {
				continue
			}
			b, res := probe(h, name, qt, qlen)
			n := max(len(b)-qlen, 0)
			entry = append(entry, byte(qt>>8), byte(qt), byte(res), byte(n>>8), byte(n))
			if b != nil {
				entry = append(append(entry, b[:12]...), b[12+qlen:]...)
			}
		}
		if !hasCNAME {
			fn.nodata = zones[z].nodata
			if fn.nodata != nil && !fn.nodata.fits(entry[:fn.wlen]) {
				fn.nodata = pack(h, name, dns.TypeNULL) // e.g. ns.<zone>: its own
			}
			// The apex's NS answer carries the glue of another name, a
			// reverse name's PTR the TTLs of others.
			fn.reusable = t.apexes[name] == nil && s.ptrs == nil
		}
		fn.entry = string(entry)
		f.names[fn.key()] = fn
	}
	if tp := pack(h, "dm-refused-probe.invalid.", dns.TypeA); tp != nil && tp.result == ResultRefused && len(tp.packed) == 12 {
		tp.share, tp.ede = &sharing{}, dns.ExtendedErrorCodeNotAuthoritative
		f.refused = tp
	}
	return f
}

// shareUnder finds the compression pointers in tp's records and reports
// whether every one points at the apex of the question (its last apexLen
// bytes before type and class) or after the question: then tp answers any
// question under the apex, and tp becomes shared.
func (tp *template) shareUnder(apexLen int) bool {
	b := tp.packed[12:]
	minTarget := 12 + tp.qlen - 4 - apexLen
	var ptrs []int
	u16 := func(off int) int { return int(b[off])<<8 | int(b[off+1]) }
	name := func(off int) int {
		for off < len(b) {
			switch l := int(b[off]); {
			case l == 0:
				return off + 1
			case l&0xc0 == 0xc0:
				if off+2 > len(b) || u16(off)&0x3fff < minTarget {
					return -1
				}
				ptrs = append(ptrs, off)
				return off + 2
			case l > 63:
				return -1
			default:
				off += 1 + l
			}
		}
		return -1
	}
	h := tp.packed[:12]
	count := (int(h[6])<<8 | int(h[7])) + (int(h[8])<<8 | int(h[9])) + (int(h[10])<<8 | int(h[11]))
	off := 0
	for range count {
		if off = name(off); off < 0 || off+10 > len(b) {
			return false
		}
		typ, rdlen := uint16(u16(off)), u16(off+8)
		off += 10
		end := off + rdlen
		if end > len(b) {
			return false
		}
		switch typ {
		case dns.TypeNS, dns.TypeCNAME, dns.TypePTR:
			off = name(off)
		case dns.TypeMX:
			off = name(off + 2)
		case dns.TypeSRV:
			off = name(off + 6)
		case dns.TypeSOA:
			if off = name(off); off >= 0 {
				off = name(off)
			}
		}
		if off < 0 || off > end {
			return false
		}
		off = end
	}
	if off != len(b) {
		return false
	}
	tp.share = &sharing{ptrs: ptrs}
	return true
}

// appendWire appends the uncompressed wire form of a lower-case FQDN (our
// names hold no escaped dots) to b.
func appendWire(b []byte, fqdn string) []byte {
	for len(fqdn) > 0 && fqdn != "." {
		l, rest, _ := strings.Cut(fqdn, ".")
		b = append(b, byte(len(l)))
		b = append(b, l...)
		fqdn = rest
	}
	return append(b, 0)
}

// wireName is the uncompressed wire form of a lower-case FQDN.
func wireName(fqdn string) string {
	return string(appendWire(make([]byte, 0, len(fqdn)+1), fqdn))
}

// optLen is the length of the OPT record the Handler appends (UDP size
// 1232, version 0, the query's DO bit, no options).
const optLen = 11

// edeLen is the length of an extended DNS error option without text
// (code, length, info code).
const edeLen = 6

// query is a parsed common query.
type query struct {
	qname   []byte // lower-cased wire name (points into the scratch buffer)
	qlen    int    // length of the question section in the packet
	qtype   uint16
	edns    bool
	do      bool // DNSSEC OK, echoed (RFC 3225 §3)
	udpSize int
	// found is where lookup decodes a reply of one of the table's names
	// (they are kept packed together, see fastName).
	found template
}

// toLower maps the ASCII upper-case letters to lower case and every other
// byte to itself.
var toLower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()

// parseQuery reads the common UDP question into q: one IN question of
// plain labels, optionally one OPT record of version 0. Anything else
// returns false and goes to the Handler. q.qname points into lower.
func parseQuery(p []byte, lower *[256]byte, q *query) bool {
	if len(p) < 12+5 {
		return false
	}
	// QR=0, opcode QUERY, TC=0; one question, no answer or authority
	// records, at most one additional (the OPT).
	if p[2]&0xfa != 0 {
		return false
	}
	counts := binary.BigEndian.Uint64(p[4:12])
	if counts&^1 != 1<<48 {
		return false
	}
	i, n := 12, 0
	for {
		if i >= len(p) {
			return false
		}
		l := int(p[i])
		if l == 0 {
			break
		}
		if l > 63 || n+1+l >= 255 || i+1+l > len(p) {
			return false // compression pointers, long labels: the Handler
		}
		lower[n] = byte(l)
		dst := lower[n+1 : n+1+l]
		src := p[i+1 : i+1+l]
		src = src[:len(dst)]
		for k := range dst {
			dst[k] = toLower[src[k]]
		}
		n += 1 + l
		i += 1 + l
	}
	lower[n] = 0
	n++
	i++
	if i+4 > len(p) || binary.BigEndian.Uint16(p[i+2:]) != dns.ClassINET {
		return false
	}
	*q = query{qname: lower[:n], qtype: binary.BigEndian.Uint16(p[i:]), qlen: i + 4 - 12}
	i += 4
	if counts&1 == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = ext-rcode,
		// version, flags; options are ignored (as the Handler does).
		if i+11 > len(p) || p[i] != 0 || binary.BigEndian.Uint16(p[i+1:]) != dns.TypeOPT {
			return false
		}
		if p[i+5] != 0 || p[i+6] != 0 { // extended rcode, version
			return false
		}
		q.edns = true
		q.udpSize = int(binary.BigEndian.Uint16(p[i+3:]))
		q.do = p[i+7]&0x80 != 0
		i += 11 + int(binary.BigEndian.Uint16(p[i+9:]))
	}
	return i == len(p) && q.qtype != dns.TypeANY && q.qtype != dns.TypeAXFR && q.qtype != dns.TypeIXFR
}

// lookup finds the template for q; nil means: ask the Handler.
func (f *fastTable) lookup(q *query) *template {
	if fn, ok := f.names[string(q.qname)]; ok {
		if fn.answer(q.qtype, &q.found) {
			if len(q.found.packed) == 0 {
				return nil
			}
			return &q.found
		}
		return fn.nodata
	}
	// Not a name we hold: in the closest zone a reverse name, or
	// NXDOMAIN; else REFUSED.
	for i := 0; i < len(q.qname)-1; i += int(q.qname[i]) + 1 {
		if !f.apexLen[len(q.qname)-i] {
			continue
		}
		if fz := f.zones[string(q.qname[i:])]; fz != nil {
			if fz.rev != nil {
				if tp, ok := f.reverse(fz, q); ok {
					return tp
				}
			}
			if fz.nx != nil && !fz.nx.fits(q.qname) {
				return nil
			}
			return fz.nx
		}
	}
	return f.refused
}

// reverse answers q from the reverse index of its zone fz, if q's name is
// there (ok).
func (f *fastTable) reverse(fz *fastZone, q *query) (tp *template, ok bool) {
	p, ok := parseReverse(q.qname)
	if !ok {
		return nil, false
	}
	i, addr, ent := fz.rev.find(p)
	switch {
	case addr && q.qtype == dns.TypePTR:
		tp = fz.ptr[i].Load()
		if tp == nil {
			// Pack it now, once: every fast loop may, and they pack the same.
			if name, err := dns.ReverseAddr(fz.rev.addr(i).String()); err == nil {
				tp = pack(f.packer, name, dns.TypePTR)
			}
			if tp == nil {
				tp = noReply
			}
			fz.ptr[i].Store(tp)
		}
		if tp == noReply {
			return nil, true
		}
		return tp, true
	case addr || ent:
		if fz.nodata == nil || !fz.nodata.fits(q.qname) {
			return nil, true
		}
		return fz.nodata, true
	}
	return nil, false
}

// build writes the reply to the query in p into out and returns its length,
// or 0 if it does not fit the client's limit (the Handler then truncates).
func (t *template) build(p []byte, q *query, out []byte) int {
	limit := 512
	if q.edns {
		limit = min(max(q.udpSize, 512), maxUDPSize)
	}
	n := q.qlen + len(t.packed)
	if q.edns {
		n += optLen
		if t.ede != 0 {
			n += edeLen
		}
	}
	d := q.qlen - t.qlen
	if n > limit || n > len(out) || (d != 0 && t.share == nil) {
		return 0
	}
	copy(out, t.packed[:12])
	out[0], out[1] = p[0], p[1]       // ID
	out[2] = out[2]&^0x01 | p[2]&0x01 // RD from the query
	out[3] = out[3]&^0x10 | p[3]&0x10 // CD from the query
	copy(out[12:], p[12:12+q.qlen])   // the question, in the client's case
	r := out[12+q.qlen : n]
	copy(r, t.packed[12:])
	if d != 0 {
		for _, i := range t.share.ptrs {
			v := int(binary.BigEndian.Uint16(r[i:])&0x3fff) + d
			binary.BigEndian.PutUint16(r[i:], 0xc000|uint16(v))
		}
	}
	if q.edns {
		o := r[len(t.packed)-12:]
		var do byte
		if q.do {
			do = 0x80
		}
		// Root name, type OPT, our UDP size, extended rcode and version 0,
		// flags (DO), the options' length; then the extended error, if any.
		o[0], o[1], o[2], o[3], o[4] = 0, 0, byte(dns.TypeOPT), maxUDPSize>>8, maxUDPSize&0xff
		o[5], o[6], o[7], o[8], o[9], o[10] = 0, 0, do, 0, 0, 0
		if t.ede != 0 {
			o[10] = edeLen
			binary.BigEndian.PutUint16(o[11:], dns.EDNS0EDE)
			binary.BigEndian.PutUint16(o[13:], 2)
			binary.BigEndian.PutUint16(o[15:], t.ede)
		}
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	return n
}

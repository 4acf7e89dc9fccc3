package dnsserver

import (
	"bytes"
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// The fast path's pre-packed replies. Each template is a reply the Handler
// produced and packed for a synthetic query, split into its 12-byte header
// and what follows the question. A reply is rebuilt by patching the header
// (ID, RD, CD), copying the client's question (which echoes its case), and
// appending the OPT record when the client sent one.
//
// Replies are compressed as the Handler compresses them: names point into
// the question (see Handler.reply). A template made for one of the table's
// names fits every question for that name whatever its case: the question
// has the same length, so the pointers land where they did. The shared
// templates (a zone's NXDOMAIN and NODATA, made for a probe name) point only
// at the zone's apex, at the end of the question, or after the question;
// for a question longer or shorter than the probe's, build moves those
// pointers by the difference.

type template struct {
	header [12]byte
	rest   []byte
	result Result
	qlen   int // length of the question section it was packed after
	// shared templates answer questions of any length under their zone;
	// ptrs are the offsets in rest of the compression pointers to move.
	shared bool
	ptrs   []int
	// ede is the extended DNS error (RFC 8914) the reply's OPT carries
	// when the query has one; 0: none.
	ede uint16
	// avoid are the wire names below the apex that the records hold (the
	// SOA's server and mailbox): a question ending in one compresses
	// differently, so a shared template does not answer it.
	avoid [][]byte
}

// fits reports whether a shared template answers the lower-case wire
// name qname.
func (t *template) fits(qname []byte) bool {
	for _, a := range t.avoid {
		if bytes.HasSuffix(qname, a) {
			return false
		}
	}
	return true
}

type fastName struct {
	types []fastType // answers by query type
	// nodata answers any other type: the zone's NODATA template (the
	// bytes after the question depend only on the zone's SOA); nil for
	// names with a CNAME (ask the Handler).
	nodata *template
	// reusable: the entry depends only on this name's own records, so
	// a later table may take it as it is when they do not change.
	reusable bool
}

type fastType struct {
	qtype uint16
	t     *template
}

type fastTable struct {
	names map[string]*fastName // lower-case wire name
	// nx holds the NXDOMAIN template of each zone by apex (wire); a zone
	// whose template could not be shared maps to nil (ask the Handler).
	nx map[string]*template
	// refused answers names outside every zone; nil when forwarding is
	// configured (the Handler forwards).
	refused *template
}

// fastTypes are the query types pre-packed for every name: what clients
// ask for hosts (HTTPS and SVCB come from browsers and curl).
var fastTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeMX, dns.TypeTXT,
	dns.TypeSRV, dns.TypePTR, dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeCAA}

// buildFast packs the templates of t, taking from prev (the table t
// replaces) every entry whose records did not change.
func buildFast(t *Table, prev *Table, unchanged func(name string) bool) *fastTable {
	h := &Handler{}
	h.table.Store(t)
	f := &fastTable{names: make(map[string]*fastName, len(t.names)), nx: map[string]*template{}}
	probe := func(name string, qtype uint16) *template {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.RecursionDesired = false
		b, res := h.reply(q, false)
		qlen := len(wireName(name)) + 4
		if b == nil || len(b) > 65535 || len(b) < 12+qlen {
			return nil
		}
		tp := &template{rest: b[12+qlen:], result: res, qlen: qlen}
		copy(tp.header[:], b[:12])
		return tp
	}
	// shared is the template of a probe under apex that is to answer
	// other names too, if it can (want: the result it must have).
	shared := func(name string, qtype uint16, z *zone, want Result) *template {
		tp := probe(name, qtype)
		if tp == nil || tp.result != want || !tp.share(len(wireName(z.apex))) {
			return nil
		}
		for _, n := range []string{z.soa.Ns, z.soa.Mbox} {
			if n = strings.ToLower(n); n != z.apex && dns.IsSubDomain(z.apex, n) {
				tp.avoid = append(tp.avoid, []byte(wireName(n)))
			}
		}
		return tp
	}
	nodata := map[*zone]*template{}
	for _, z := range t.zones {
		f.nx[wireName(z.apex)] = shared("dm-nxdomain-probe."+z.apex, dns.TypeA, z, ResultNXDomain)
		// NODATA for a type no name has, at the apex: the same records
		// after the question as for any name of the zone.
		nodata[z] = shared(z.apex, dns.TypeNULL, z, ResultNoData)
	}
	for name, s := range t.names {
		wire := wireName(name)
		if prev != nil && unchanged(name) {
			if old := prev.fast.names[wire]; old != nil && old.reusable {
				f.names[wire] = old
				continue
			}
		}
		fn := &fastName{}
		hasCNAME := s.cname() != nil
		for _, qt := range fastTypes {
			// A CNAME's answer depends on other names; the others are this
			// name's records, as the Handler gives them
			// (TestFastPathMatchesHandler, FuzzQuery).
			if hasCNAME || s.has(qt) {
				if tp := probe(name, qt); tp != nil {
					fn.types = append(fn.types, fastType{qt, tp})
				}
			}
		}
		if !hasCNAME {
			fn.nodata = nodata[t.zoneOf(name)]
			if fn.nodata != nil && !fn.nodata.fits([]byte(wire)) {
				fn.nodata = probe(name, dns.TypeNULL) // e.g. ns.<zone>: its own
			}
			// The apex's NS answer carries the glue of another name.
			fn.reusable = t.apexes[name] == nil
		}
		f.names[wire] = fn
	}
	if tp := probe("dm-refused-probe.invalid.", dns.TypeA); tp != nil && tp.result == ResultRefused && len(tp.rest) == 0 {
		tp.shared, tp.ede = true, dns.ExtendedErrorCodeNotAuthoritative
		f.refused = tp
	}
	return f
}

// share finds the compression pointers in tp's records and reports
// whether every one points at the apex of the question (its last apexLen
// bytes before type and class) or after the question: then tp answers any
// question under the apex, and tp becomes shared.
func (tp *template) share(apexLen int) bool {
	b := tp.rest
	minTarget := 12 + tp.qlen - 4 - apexLen
	var ptrs []int
	name := func(off int) int {
		for off < len(b) {
			switch l := int(b[off]); {
			case l == 0:
				return off + 1
			case l&0xc0 == 0xc0:
				if off+2 > len(b) || int(binary.BigEndian.Uint16(b[off:])&0x3fff) < minTarget {
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
	count := int(binary.BigEndian.Uint16(tp.header[6:])) + int(binary.BigEndian.Uint16(tp.header[8:])) +
		int(binary.BigEndian.Uint16(tp.header[10:]))
	off := 0
	for range count {
		if off = name(off); off < 0 || off+10 > len(b) {
			return false
		}
		typ, rdlen := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+8:]))
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
	tp.shared, tp.ptrs = true, ptrs
	return true
}

// wireName is the uncompressed wire form of a lower-case FQDN (our names
// hold no escaped dots).
func wireName(fqdn string) string {
	b := make([]byte, 0, len(fqdn)+1)
	for len(fqdn) > 0 && fqdn != "." {
		l, rest, _ := strings.Cut(fqdn, ".")
		b = append(b, byte(len(l)))
		b = append(b, l...)
		fqdn = rest
	}
	return string(append(b, 0))
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
	if fn := f.names[string(q.qname)]; fn != nil {
		for _, ft := range fn.types {
			if ft.qtype == q.qtype {
				return ft.t
			}
		}
		return fn.nodata
	}
	// Not a name we hold: NXDOMAIN in the closest zone, or REFUSED.
	for i := 0; i < len(q.qname)-1; i += int(q.qname[i]) + 1 {
		if t, ok := f.nx[string(q.qname[i:])]; ok {
			if t != nil && !t.fits(q.qname) {
				return nil
			}
			return t
		}
	}
	return f.refused
}

// build writes the reply to the query in p into out and returns its length,
// or 0 if it does not fit the client's limit (the Handler then truncates).
func (t *template) build(p []byte, q *query, out []byte) int {
	limit := 512
	if q.edns {
		limit = min(max(q.udpSize, 512), maxUDPSize)
	}
	n := 12 + q.qlen + len(t.rest)
	if q.edns {
		n += optLen
		if t.ede != 0 {
			n += edeLen
		}
	}
	d := q.qlen - t.qlen
	if n > limit || n > len(out) || (d != 0 && !t.shared) {
		return 0
	}
	copy(out, t.header[:])
	out[0], out[1] = p[0], p[1]       // ID
	out[2] = out[2]&^0x01 | p[2]&0x01 // RD from the query
	out[3] = out[3]&^0x10 | p[3]&0x10 // CD from the query
	copy(out[12:], p[12:12+q.qlen])   // the question, in the client's case
	r := out[12+q.qlen : n]
	copy(r, t.rest)
	if d != 0 {
		for _, i := range t.ptrs {
			v := int(binary.BigEndian.Uint16(r[i:])&0x3fff) + d
			binary.BigEndian.PutUint16(r[i:], 0xc000|uint16(v))
		}
	}
	if q.edns {
		o := r[len(t.rest):]
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

package dnsserver

import (
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// The fast path's pre-packed replies. Each template is a reply the Handler
// produced for a synthetic query, split into its 12-byte header and what
// follows the question. A reply is rebuilt by patching the header (ID, RD,
// CD), copying the client's question (which echoes its case), and
// appending the OPT record when the client sent one.
//
// Templates are packed without name compression, so that what follows the
// question depends neither on the name asked nor on its case (a pointer
// into the question would show the client's case in the answers, where
// the Handler writes the names it holds).

type template struct {
	header [12]byte
	rest   []byte
	result Result
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
	nx    map[string]*template // zone apex (wire) → NXDOMAIN template
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
		m, res := h.answer(q, false)
		m.Compress = false
		b, err := m.Pack()
		if err != nil || len(b) > 65535 {
			return nil
		}
		qlen := len(q.Question[0].Name) + 1 + 4 // wire name of an FQDN: len+1 bytes
		if len(b) < 12+qlen {
			return nil
		}
		tp := &template{rest: b[12+qlen:], result: res}
		copy(tp.header[:], b[:12])
		return tp
	}
	nodata := map[*zone]*template{}
	for _, z := range t.zones {
		f.nx[wireName(z.apex)] = probe("dm-nxdomain-probe."+z.apex, dns.TypeA)
		// NODATA for a type no name has, at the apex: the same bytes after
		// the question as for any name of the zone.
		nodata[z] = probe(z.apex, dns.TypeNULL)
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
			switch {
			case hasCNAME: // the answer depends on other names: ask the Handler
				if tp := probe(name, qt); tp != nil {
					fn.types = append(fn.types, fastType{qt, tp})
				}
			case s.has(qt):
				// An authoritative answer of this name's records, as the
				// Handler gives it (TestFastPathMatchesHandler, FuzzQuery).
				if tp := answerTemplate(s.get(qt)); tp != nil {
					fn.types = append(fn.types, fastType{qt, tp})
				}
			}
		}
		if !hasCNAME {
			fn.nodata = nodata[t.zoneOf(name)]
			fn.reusable = true
		}
		f.names[wire] = fn
	}
	f.refused = probe("dm-refused-probe.invalid.", dns.TypeA)
	return f
}

// answerTemplate packs a plain answer: QR, AA, NOERROR, the records.
func answerTemplate(rrs []dns.RR) *template {
	tp := &template{result: ResultAnswer}
	tp.header[2] = 0x84 // QR, AA
	binary.BigEndian.PutUint16(tp.header[4:], 1)
	binary.BigEndian.PutUint16(tp.header[6:], uint16(len(rrs)))
	size := 0
	for _, rr := range rrs {
		size += dns.Len(rr)
	}
	buf := make([]byte, size)
	off := 0
	for _, rr := range rrs {
		var err error
		if off, err = dns.PackRR(rr, buf, off, nil, false); err != nil {
			return nil
		}
	}
	tp.rest = buf[:off:off]
	return tp
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

// optRR is the OPT record the Handler appends (UDP size 1232, version 0,
// no flags, no options).
var optRR = []byte{0, 0, 41, maxUDPSize >> 8, maxUDPSize & 0xff, 0, 0, 0, 0, 0, 0}

// query is a parsed common query.
type query struct {
	qname   []byte // lower-cased wire name (points into the scratch buffer)
	qlen    int    // length of the question section in the packet
	qtype   uint16
	edns    bool
	udpSize int
}

// parseQuery reads the common UDP question: one IN question of plain
// labels, optionally one OPT record of version 0. Anything else returns
// false and goes to the Handler. lower must hold 255 bytes.
func parseQuery(p []byte, lower []byte) (query, bool) {
	var q query
	if len(p) < 12+5 {
		return q, false
	}
	flags := binary.BigEndian.Uint16(p[2:])
	// QR=0, opcode QUERY, TC=0.
	if flags&0x8000 != 0 || flags&0x7800 != 0 || flags&0x0200 != 0 {
		return q, false
	}
	if binary.BigEndian.Uint16(p[4:]) != 1 || binary.BigEndian.Uint16(p[6:]) != 0 || binary.BigEndian.Uint16(p[8:]) != 0 {
		return q, false
	}
	ar := binary.BigEndian.Uint16(p[10:])
	if ar > 1 {
		return q, false
	}
	i, n := 12, 0
	for {
		if i >= len(p) {
			return q, false
		}
		l := int(p[i])
		if l == 0 {
			lower[n] = 0
			n++
			i++
			break
		}
		if l > 63 || i+1+l > len(p) || n+1+l >= 255 {
			return q, false // compression pointers, long labels: the Handler
		}
		lower[n] = byte(l)
		for k := 1; k <= l; k++ {
			c := p[i+k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[n+k] = c
		}
		n += 1 + l
		i += 1 + l
	}
	if i+4 > len(p) || binary.BigEndian.Uint16(p[i+2:]) != dns.ClassINET {
		return q, false
	}
	q.qname, q.qtype, q.qlen = lower[:n], binary.BigEndian.Uint16(p[i:]), i+4-12
	i += 4
	if ar == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = ext-rcode,
		// version, flags; options are ignored (as the Handler does).
		if i+11 > len(p) || p[i] != 0 || binary.BigEndian.Uint16(p[i+1:]) != dns.TypeOPT {
			return q, false
		}
		if p[i+5] != 0 || p[i+6] != 0 { // extended rcode, version
			return q, false
		}
		rdlen := int(binary.BigEndian.Uint16(p[i+9:]))
		i += 11 + rdlen
		q.edns = true
		q.udpSize = int(binary.BigEndian.Uint16(p[i-11-rdlen+3:]))
	}
	if i != len(p) || q.qtype == dns.TypeANY || q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR {
		return q, false
	}
	return q, true
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
		if t := f.nx[string(q.qname[i:])]; t != nil {
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
		n += len(optRR)
	}
	if n > limit || n > len(out) {
		return 0
	}
	copy(out, t.header[:])
	out[0], out[1] = p[0], p[1]       // ID
	out[2] = out[2]&^0x01 | p[2]&0x01 // RD from the query
	out[3] = out[3]&^0x10 | p[3]&0x10 // CD from the query
	copy(out[12:], p[12:12+q.qlen])   // the question, in the client's case
	copy(out[12+q.qlen:], t.rest)
	if q.edns {
		copy(out[12+q.qlen+len(t.rest):], optRR)
		ar := binary.BigEndian.Uint16(out[10:]) + 1
		binary.BigEndian.PutUint16(out[10:], ar)
	}
	return n
}

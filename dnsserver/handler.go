package dnsserver

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// maxUDPSize is the largest UDP answer this server sends (the EDNS default
// recommended by DNS flag day 2020).
const maxUDPSize = 1232

// Result classifies answers, for metrics.
type Result int

// The results a query can have.
const (
	ResultAnswer Result = iota
	ResultNoData
	ResultNXDomain
	ResultRefused
	ResultError
	ResultForwarded
	numResults
)

func (r Result) String() string {
	return [...]string{"answer", "nodata", "nxdomain", "refused", "error", "forwarded"}[r]
}

// Handler is the authoritative DNS logic, a miekg/dns Handler. Its table
// is swapped atomically.
type Handler struct {
	table      atomic.Pointer[Table]
	forwarders []string
	client     *dns.Client
	counts     [numResults]atomic.Int64
}

// NewHandler returns a handler with an empty table. forwarders, if any,
// receive the queries outside the mesh's zones (host:port).
func NewHandler(forwarders []string) *Handler {
	h := &Handler{forwarders: forwarders, client: &dns.Client{Timeout: 2 * time.Second}}
	h.table.Store(&Table{fixed: map[string]*rrset{}, apexes: map[string]*zone{}, view: &crdt.ResolvedView{}, fast: &fastTable{}})
	return h
}

// SetTable installs a new table; queries in flight finish with the old one.
func (h *Handler) SetTable(t *Table) { h.table.Store(t) }

// Table returns the current table.
func (h *Handler) Table() *Table { return h.table.Load() }

// Count returns how many queries ended with r.
func (h *Handler) Count(r Result) int64 { return h.counts[r].Load() }

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	b, res := h.reply(req, w.RemoteAddr().Network() != "tcp")
	h.counts[res].Add(1)
	if b != nil {
		_, _ = w.Write(b)
	}
}

// reply is the packed reply to req (nil: send nothing). udp decides
// truncation.
//
// Names are compressed (RFC 1035 §4.1.4) as NSD and Knot compress them:
// every name is packed against the question, so the answer's owner is a
// pointer to the question and shows the client's case, as do the suffixes
// of the question that other names share (the zone apex in an SOA). The
// reply is packed with the question in lower case, the case the table
// holds, and the client's question written over it afterwards: the fast
// path does the same from pre-packed replies, so both send the same bytes.
func (h *Handler) reply(req *dns.Msg, udp bool) ([]byte, Result) {
	m, res := h.answer(req, udp)
	if m == nil {
		return nil, res
	}
	b, err := m.Pack()
	if err != nil {
		return nil, ResultError
	}
	if len(req.Question) == 1 && len(m.Question) == 1 && m.Question[0].Name != req.Question[0].Name &&
		strings.EqualFold(m.Question[0].Name, req.Question[0].Name) {
		var client, ours [256]byte
		n, err1 := dns.PackDomainName(req.Question[0].Name, client[:], 0, nil, false)
		k, err2 := dns.PackDomainName(m.Question[0].Name, ours[:], 0, nil, false)
		if err1 == nil && err2 == nil && n == k && 12+n <= len(b) {
			copy(b[12:], client[:n])
		}
	}
	return b, res
}

// answer builds the reply to req, its question in lower case. udp decides
// truncation.
func (h *Handler) answer(req *dns.Msg, udp bool) (*dns.Msg, Result) {
	m := new(dns.Msg)
	if req.Response {
		return nil, ResultError // never answer an answer
	}
	m.SetReply(req)
	if len(m.Question) == 1 {
		m.Question = []dns.Question{{Name: strings.ToLower(req.Question[0].Name), Qtype: req.Question[0].Qtype, Qclass: req.Question[0].Qclass}}
	}
	m.Authoritative = false
	m.RecursionAvailable = false
	m.Compress = true
	opt := req.IsEdns0()
	size := dns.MinMsgSize
	if opt != nil {
		size = int(max(min(opt.UDPSize(), maxUDPSize), dns.MinMsgSize))
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: unknown version → BADVERS, with our OPT.
			m.SetEdns0(maxUDPSize, opt.Do())
			m.Rcode = dns.RcodeBadVers
			return m, ResultError
		}
	}
	var ede *dns.EDNS0_EDE // an extended error (RFC 8914), with EDNS only
	finish := func(r Result) (*dns.Msg, Result) {
		if opt != nil {
			// RFC 3225 §3: the DO bit of the query is copied into the
			// reply. The zones are not signed, so it changes nothing
			// else.
			m.SetEdns0(maxUDPSize, opt.Do())
			if ede != nil {
				o := m.IsEdns0()
				o.Option = append(o.Option, ede)
			}
		}
		if udp {
			m.Truncate(size)
		}
		// Truncate turns compression off when the whole message fits
		// uncompressed; the reply is compressed all the same.
		m.Compress = true
		return m, r
	}
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return finish(ResultError)
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return finish(ResultError)
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeRefused
		return finish(ResultRefused)
	}
	t := h.table.Load()
	qname := strings.ToLower(q.Name)
	z := t.zoneOf(qname)
	if z == nil {
		if len(h.forwarders) > 0 && q.Qtype != dns.TypeAXFR && q.Qtype != dns.TypeIXFR {
			if fwd := h.forward(req); fwd != nil {
				if udp {
					fwd.Truncate(size)
				}
				return fwd, ResultForwarded
			}
			m.Rcode = dns.RcodeServerFailure
			return finish(ResultError)
		}
		// Not ours: REFUSED, saying why as NSD and Knot do.
		m.Rcode = dns.RcodeRefused
		ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNotAuthoritative}
		return finish(ResultRefused)
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused
		return finish(ResultRefused)
	}
	m.Authoritative = true
	res := t.resolve(m, z, qname, q.Qtype)
	return finish(res)
}

// resolve fills m's answer and authority sections for qname in zone z.
func (t *Table) resolve(m *dns.Msg, z *zone, qname string, qtype uint16) Result {
	name := qname
	for hops := 0; hops < 8; hops++ {
		s := t.lookup(name)
		if s == nil {
			// The RCODE describes the last name of a CNAME chain (RFC 6604).
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{z.soa}
			return ResultNXDomain
		}
		if qtype == dns.TypeANY && !s.empty() {
			// RFC 8482: answer ANY minimally.
			m.Answer = append(m.Answer, &dns.HINFO{Hdr: hdr(name, dns.TypeHINFO, z.negTTL), Cpu: "RFC8482"})
			return ResultAnswer
		}
		if s.has(qtype) {
			rrs := s.get(qtype)
			m.Answer = append(m.Answer, rrs...)
			if qtype == dns.TypeNS {
				t.glue(m, rrs)
			}
			return ResultAnswer
		}
		if c := s.cname(); c != nil {
			m.Answer = append(m.Answer, c)
			target := strings.ToLower(c.Target)
			if tz := t.zoneOf(target); tz == nil {
				return ResultAnswer // outside our zones: the client follows it
			} else {
				z = tz
			}
			name = target
			continue
		}
		m.Ns = []dns.RR{z.soa}
		return ResultNoData
	}
	return ResultAnswer
}

// glue adds the addresses of the NS targets that the table holds to the
// additional section, A before AAAA, as NSD and Knot do (RFC 1035 §3.3.11
// asks for them; a resolver needs them to reach the server). SRV and MX
// targets get none, as in NSD's minimal responses: the client asks.
func (t *Table) glue(m *dns.Msg, ns []dns.RR) {
	for _, rr := range ns {
		n, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		s := t.lookup(strings.ToLower(n.Ns))
		if s == nil || t.zoneOf(s.owner) == nil {
			continue
		}
		m.Extra = append(m.Extra, s.get(dns.TypeA)...)
		m.Extra = append(m.Extra, s.get(dns.TypeAAAA)...)
	}
}

func (h *Handler) forward(req *dns.Msg) *dns.Msg {
	for _, f := range h.forwarders {
		resp, _, err := h.client.Exchange(req, f)
		if err == nil && resp != nil {
			resp.Id = req.Id
			return resp
		}
	}
	return nil
}

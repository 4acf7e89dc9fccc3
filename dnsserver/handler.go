package dnsserver

import (
	"strings"
	"sync/atomic"
	"time"

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
	h.table.Store(&Table{names: map[string]*rrset{}, apexes: map[string]*zone{}, fast: &fastTable{}})
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
	resp, res := h.answer(req, w.RemoteAddr().Network() != "tcp")
	h.counts[res].Add(1)
	if resp != nil {
		_ = w.WriteMsg(resp)
	}
}

// answer builds the reply to req. udp decides truncation.
func (h *Handler) answer(req *dns.Msg, udp bool) (*dns.Msg, Result) {
	m := new(dns.Msg)
	if req.Response {
		return nil, ResultError // never answer an answer
	}
	m.SetReply(req)
	m.Authoritative = false
	m.RecursionAvailable = false
	m.Compress = true
	opt := req.IsEdns0()
	size := dns.MinMsgSize
	if opt != nil {
		size = int(max(min(opt.UDPSize(), maxUDPSize), dns.MinMsgSize))
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: unknown version → BADVERS, with our OPT.
			m.SetEdns0(maxUDPSize, false)
			m.Rcode = dns.RcodeBadVers
			return m, ResultError
		}
	}
	finish := func(r Result) (*dns.Msg, Result) {
		if opt != nil {
			m.SetEdns0(maxUDPSize, false)
		}
		if udp {
			m.Truncate(size)
		}
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
		m.Rcode = dns.RcodeRefused
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
		s := t.names[name]
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
			m.Answer = append(m.Answer, s.get(qtype)...)
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

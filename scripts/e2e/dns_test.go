//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The DNS conformance suite: three real dm-agents on WireGuard, one network
// ("demo") with the admin's own records, asked by real clients (dig, kdig)
// on a node's tunnel address; a zone dumped from the answers checked by
// named-checkzone; the replies compared with NSD's for the same zone; and
// dns.json read by a CoreDNS built with github.com/jfly/coredns-data-mesher.
//
// DM_E2E_DM_AGENT, if set, is a dm-agent binary to test instead of building
// this checkout's. DM_E2E_COREDNS_PLUGIN, if set, is a checkout of
// coredns-data-mesher to build CoreDNS with when the module proxy does not
// serve it.

const (
	dnsNodes = 3
	// The admin's records: an address each way, a CNAME, an SRV, a TXT.
	printerAddr = "fd6d:6573::99"
	legacyAddr  = "10.9.9.9"
)

type dnsMesh struct {
	*Bed
	t         *testing.T
	bin, work string
	netKey    string
	keys      map[int]string
}

func (d *dnsMesh) dir(i int) string  { return filepath.Join(d.Dir, strconv.Itoa(i)) }
func (d *dnsMesh) sock(i int) string { return filepath.Join(d.dir(i), "control.sock") }

func (d *dnsMesh) mustDM(args ...string) string {
	d.t.Helper()
	out, err := exec.Command(d.bin, args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("dm-agent %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startDNSMesh brings up the nodes, their agents and the network's
// settings, and waits until every node answers every name.
func startDNSMesh(t *testing.T) *dnsMesh {
	requireE2E(t)
	for tool, pkg := range map[string]string{"dig": "bind9-dnsutils", "kdig": "knot-dnsutils", "named-checkzone": "bind9-utils"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian %s; scripts/test installs it)", tool, pkg)
		}
	}
	work := t.TempDir()
	d := &dnsMesh{t: t, work: work, keys: map[int]string{}, bin: os.Getenv("DM_E2E_DM_AGENT")}
	if d.bin == "" {
		d.bin = build(t, work, "cmd/dm-agent")
	}
	d.Bed = Up(t, dnsNodes)
	for i := 1; i <= dnsNodes; i++ {
		d.keys[i] = strings.TrimSpace(d.mustDM("keygen", "--out", filepath.Join(d.dir(i), "node.key")))
	}
	admin := filepath.Join(work, "admin.key")
	out := d.mustDM("network", "create", "--domain", "demo", "--admin-key", admin, "--witness", d.keys[1], "--out", admin+".json")
	for _, l := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(l, "pubkey: "); ok {
			d.netKey = k
		}
	}
	if d.netKey == "" {
		t.Fatalf("no pubkey in %s", out)
	}
	for i := 1; i <= dnsNodes; i++ {
		boot := []string{}
		if i != 1 {
			boot = []string{"http://[" + Tunnel(1) + "]:7331"}
		}
		cfg := map[string]any{
			"interface": "wg0", "state_dir": filepath.Join(d.dir(i), "state"), "key_file": filepath.Join(d.dir(i), "node.key"),
			"control_socket": d.sock(i), "metrics_listen": "off", "hostnames": []string{fmt.Sprint("node", i)},
			"sync_interval": "1s", "reachability_ttl": "20s",
			"networks": map[string]any{"demo": map[string]any{"pubkey": d.netKey, "priority": 1, "bootstrap_peers": boot}},
		}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		conf := filepath.Join(d.dir(i), "config.json")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
		d.Start(i, "agent", d.bin, "run", "--config", conf)
	}
	for i := 1; i <= dnsNodes; i++ {
		eventually(t, 20*time.Second, fmt.Sprintf("node %d's control socket", i), func() bool {
			return exec.Command(d.bin, "status", "--control-socket", d.sock(i)).Run() == nil
		})
	}
	d.mustDM("settings", "--network", d.netKey, "--admin-key", admin, "--from", admin+".json", "--control-socket", d.sock(1),
		"--extra", "printer AAAA "+printerAddr, "--extra", "legacy A "+legacyAddr, "--extra", "www CNAME node1",
		"--extra", "_ssh._tcp.node1 SRV 0 5 22 node1", "--extra", "note TXT hello mesh")
	for i := 1; i <= dnsNodes; i++ {
		for j := 1; j <= dnsNodes; j++ {
			name := fmt.Sprintf("node%d.demo", j)
			eventually(t, 90*time.Second, fmt.Sprintf("%s on node %d", name, i), func() bool {
				r := d.dig(i, Tunnel(i), 53, name, "AAAA")
				return r.status == "NOERROR" && slices.Contains(r.answerData(), "AAAA "+Tunnel(j))
			})
		}
		eventually(t, 60*time.Second, fmt.Sprintf("the admin's records on node %d", i), func() bool {
			return slices.Contains(d.dig(i, Tunnel(i), 53, "printer.demo", "AAAA").answerData(), "AAAA "+printerAddr)
		})
	}
	return d
}

// digReply is dig's reading of a reply.
type digReply struct {
	status, flags, ednsFlags string
	edns                     bool
	size                     int
	question                 string
	answer, authority, extra []string // records, fields joined by single spaces
	raw                      string   // dig's output
}

// String is what the reply says: header, sizes and records, without the
// query ID, timing and server.
func (r digReply) String() string {
	return fmt.Sprintf("%s [%s] edns %v [%s] %d bytes; %s; answer %q; authority %q; additional %q", r.status, r.flags, r.edns,
		r.ednsFlags, r.size, r.question, r.answer, r.authority, r.extra)
}

var (
	digStatus = regexp.MustCompile(`status: (\w+)`)
	digFlags  = regexp.MustCompile(`(?m)^;; flags: ([a-z ]*);`)
	digEDNS   = regexp.MustCompile(`(?m)^; EDNS: version: 0, flags:([a-z ]*);`)
	digSize   = regexp.MustCompile(`MSG SIZE +rcvd: (\d+)`)
)

// dig asks server:port from node `from`. Options are dig's (+dnssec,
// +noedns, +tcp …), names and types.
func (d *dnsMesh) dig(from int, server string, port int, args ...string) digReply {
	full := append([]string{"dig", "@" + server, "-p", strconv.Itoa(port), "+time=2", "+tries=2", "+norecurse", "+nocookie"}, args...)
	out, _ := d.Exec(from, full...)
	r := digReply{raw: out}
	if m := digStatus.FindStringSubmatch(out); m != nil {
		r.status = m[1]
	}
	if m := digFlags.FindStringSubmatch(out); m != nil {
		r.flags = strings.TrimSpace(m[1])
	}
	if m := digEDNS.FindStringSubmatch(out); m != nil {
		r.edns, r.ednsFlags = true, strings.TrimSpace(m[1])
	}
	if m := digSize.FindStringSubmatch(out); m != nil {
		r.size, _ = strconv.Atoi(m[1])
	}
	var section *[]string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; QUESTION SECTION:"):
			section = nil
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			section = &r.answer
		case strings.HasPrefix(line, ";; AUTHORITY SECTION:"):
			section = &r.authority
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION:"):
			section = &r.extra
		case strings.TrimSpace(line) == "":
			section = nil
		case strings.HasPrefix(line, ";") && r.question == "" && strings.Contains(line, "\tIN\t"):
			r.question = strings.Join(strings.Fields(strings.TrimPrefix(line, ";")), " ")
		case section != nil && !strings.HasPrefix(line, ";"):
			*section = append(*section, strings.Join(strings.Fields(line), " "))
		}
	}
	return r
}

// answerData is the answer's type and data, sorted, without owner and TTL.
func (r digReply) answerData() []string {
	var out []string
	for _, rr := range r.answer {
		if f := strings.Fields(rr); len(f) >= 5 {
			out = append(out, strings.Join(f[3:], " "))
		}
	}
	slices.Sort(out)
	return out
}

// reverseApex is the ip6.arpa name of the test bed's /64.
func reverseApex() string {
	a := netip.MustParseAddr(Tunnel(1)).As16()
	var labels []string
	for i := 15; i >= 0; i-- {
		if i < 8 {
			labels = append(labels, fmt.Sprintf("%x", a[i]&0xf), fmt.Sprintf("%x", a[i]>>4))
		}
	}
	return strings.Join(append(labels, "ip6.arpa."), ".")
}

// dnsJSON reads node i's dns.json.
func (d *dnsMesh) dnsJSON(t *testing.T, i int) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(d.dir(i), "state", "dns.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("dns.json line %q: %v", sc.Text(), err)
		}
		out = append(out, line)
	}
	return out
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// zoneFromAnswers asks node i for the zone's records, name by name, and
// writes them as a master file; only records owned by the name asked (not
// what a CNAME led to).
func (d *dnsMesh) zoneFromAnswers(t *testing.T, i int, questions [][2]string) string {
	t.Helper()
	var b strings.Builder
	for _, q := range questions {
		r := d.dig(i, Tunnel(i), 53, q[0], q[1])
		if r.status != "NOERROR" {
			t.Fatalf("dig %s %s: %s\n%s", q[0], q[1], r.status, r.raw)
		}
		for _, rr := range r.answer {
			f := strings.Fields(rr)
			if strings.EqualFold(f[0], dnsFqdn(q[0])) && f[3] == q[1] {
				b.WriteString(rr + "\n")
			}
		}
	}
	return b.String()
}

func dnsFqdn(s string) string { return strings.TrimSuffix(s, ".") + "." }

func namedCheckzone(t *testing.T, apex, zone string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "zone")
	if err := os.WriteFile(file, []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	// -i local: check what the zone holds (a reverse zone's NS lives in
	// the forward zone, checked there).
	out, err := exec.Command("named-checkzone", "-i", "local", "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail", "-S", "fail",
		apex, file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Errorf("named-checkzone %s: %v\n%s\nthe zone, from the agent's answers:\n%s", apex, err, out, zone)
	}
}

func TestDNSOnTheWire(t *testing.T) {
	d := startDNSMesh(t)
	const n = 2 // the node asked, on its own tunnel address
	self := Tunnel(n)

	t.Run("authoritative answers, NXDOMAIN and NODATA with the SOA, REFUSED outside, TCP", func(t *testing.T) {
		for _, tc := range []struct {
			args         []string
			status       string
			answer       []string
			soa, aa      bool
			questionCase string
		}{
			{[]string{"node1.demo", "AAAA"}, "NOERROR", []string{"AAAA " + Tunnel(1)}, false, true, ""},
			{[]string{"+tcp", "node3.demo", "AAAA"}, "NOERROR", []string{"AAAA " + Tunnel(3)}, false, true, ""},
			{[]string{"NoDe1.DeMo", "AAAA"}, "NOERROR", []string{"AAAA " + Tunnel(1)}, false, true, "NoDe1.DeMo."},
			{[]string{"node1.demo", "A"}, "NOERROR", nil, true, true, ""},
			{[]string{"nobody.demo", "AAAA"}, "NXDOMAIN", nil, true, true, ""},
			{[]string{"printer.demo", "AAAA"}, "NOERROR", []string{"AAAA " + printerAddr}, false, true, ""},
			{[]string{"legacy.demo", "A"}, "NOERROR", []string{"A " + legacyAddr}, false, true, ""},
			{[]string{"www.demo", "AAAA"}, "NOERROR", []string{"AAAA " + Tunnel(1), "CNAME node1.demo."}, false, true, ""},
			{[]string{"_ssh._tcp.node1.demo", "SRV"}, "NOERROR", []string{"SRV 0 5 22 node1.demo."}, false, true, ""},
			{[]string{"note.demo", "TXT"}, "NOERROR", []string{`TXT "hello mesh"`}, false, true, ""},
			{[]string{"-x", Tunnel(3)}, "NOERROR", []string{"PTR node3.demo."}, false, true, ""},
			{[]string{"example.org", "A"}, "REFUSED", nil, false, false, ""},
		} {
			r := d.dig(n, self, 53, tc.args...)
			hasSOA := len(r.authority) == 1 && strings.Fields(r.authority[0])[3] == "SOA"
			aa := slices.Contains(strings.Fields(r.flags), "aa")
			if r.status != tc.status || !slices.Equal(r.answerData(), tc.answer) || hasSOA != tc.soa || aa != tc.aa {
				t.Errorf("dig %s: %s flags %q answer %q authority %q; want %s %q SOA %v AA %v", strings.Join(tc.args, " "), r.status, r.flags,
					r.answerData(), r.authority, tc.status, tc.answer, tc.soa, tc.aa)
			}
			if tc.questionCase != "" && (len(r.answer) == 0 || !strings.HasPrefix(r.answer[0], tc.questionCase+" ")) {
				t.Errorf("dig %s: the answer does not echo the question's case (0x20): %q", strings.Join(tc.args, " "), r.answer)
			}
		}
	})

	t.Run("the DO bit is echoed (RFC 3225), dig and kdig", func(t *testing.T) {
		for _, name := range []string{"node1.demo", "nobody.demo", "example.org"} {
			if r := d.dig(n, self, 53, "+dnssec", name, "AAAA"); !r.edns || r.ednsFlags != "do" {
				t.Errorf("dig +dnssec %s: EDNS %v flags %q", name, r.edns, r.ednsFlags)
			}
			if r := d.dig(n, self, 53, name, "AAAA"); !r.edns || r.ednsFlags != "" {
				t.Errorf("dig %s (no DO): EDNS %v flags %q", name, r.edns, r.ednsFlags)
			}
		}
		out, _ := d.Exec(n, "kdig", "@"+self, "+dnssec", "+norecurse", "node1.demo", "AAAA")
		if !regexp.MustCompile(`(?m)^;; Version: 0; flags: do; UDP size: 1232 B`).MatchString(out) {
			t.Errorf("kdig +dnssec: the reply's EDNS does not say do:\n%s", out)
		}
	})

	t.Run("names are compressed", func(t *testing.T) {
		// 12 header + 16 question (node1.demo: 12 bytes of name, type,
		// class) + 28 answer (a pointer to the question, 10, 16 address).
		if r := d.dig(n, self, 53, "+noedns", "node1.demo", "AAAA"); r.size != 56 {
			t.Errorf("node1.demo AAAA: %d bytes, want 56", r.size)
		}
		// 12 + 17 question + the SOA: owner a pointer to "demo." in the
		// question, 10, then ns+pointer (5), hostmaster+pointer (13) and
		// 20 bytes of numbers.
		if r := d.dig(n, self, 53, "+noedns", "nobody.demo", "AAAA"); r.size != 79 {
			t.Errorf("nobody.demo AAAA (NXDOMAIN): %d bytes, want 79", r.size)
		}
		out, _ := d.Exec(n, "kdig", "@"+self, "+noedns", "+norecurse", "node2.demo", "AAAA")
		if !strings.Contains(out, ";; Received 56 B") {
			t.Errorf("kdig node2.demo AAAA: want 56 bytes:\n%s", out)
		}
	})

	t.Run("the NS has an address, and NS answers carry it", func(t *testing.T) {
		r := d.dig(n, self, 53, "demo", "NS")
		if !slices.Equal(r.answerData(), []string{"NS ns.demo."}) {
			t.Fatalf("demo NS: %q", r.answerData())
		}
		if a := d.dig(n, self, 53, "ns.demo", "AAAA"); a.status != "NOERROR" || !slices.Equal(a.answerData(), []string{"AAAA " + self}) {
			t.Errorf("ns.demo AAAA on node %d: %s %q, want the node's own tunnel address %s", n, a.status, a.answerData(), self)
		}
		if !slices.ContainsFunc(r.extra, func(rr string) bool { return strings.HasPrefix(rr, "ns.demo. ") && strings.HasSuffix(rr, "AAAA "+self) }) {
			t.Errorf("demo NS: no glue for ns.demo. in %q", r.extra)
		}
	})

	t.Run("forward and reverse SOA agree", func(t *testing.T) {
		fwd := d.dig(n, self, 53, "demo", "SOA").answer
		rev := d.dig(n, self, 53, reverseApex(), "SOA").answer
		if len(fwd) != 1 || len(rev) != 1 {
			t.Fatalf("SOA: forward %q reverse %q", fwd, rev)
		}
		f, r := strings.Fields(fwd[0]), strings.Fields(rev[0])
		// owner TTL IN SOA mname rname serial refresh retry expire minimum
		if !slices.Equal(f[1:], r[1:]) {
			t.Errorf("the reverse zone's SOA differs from the forward zone's:\n%s\n%s", fwd[0], rev[0])
		}
	})

	t.Run("a zone dumped from the answers passes named-checkzone", func(t *testing.T) {
		qs := [][2]string{{"demo", "SOA"}, {"demo", "NS"}, {"www.demo", "CNAME"}, {"_ssh._tcp.node1.demo", "SRV"}, {"note.demo", "TXT"}}
		seen := map[string]bool{"www.demo": true} // a CNAME: its addresses are node1's
		for _, ns := range d.dig(n, self, 53, "demo", "NS").answerData() {
			target := strings.TrimSuffix(strings.TrimPrefix(ns, "NS "), ".")
			qs = append(qs, [2]string{target, "AAAA"}, [2]string{target, "A"})
			seen[target] = true
		}
		for _, line := range d.dnsJSON(t, n) {
			name := fmt.Sprint(line["hostname"])
			if seen[name] {
				continue
			}
			if len(strs(line["ips"])) > 0 {
				qs = append(qs, [2]string{name, "AAAA"})
			}
			if len(strs(line["ipv4"])) > 0 {
				qs = append(qs, [2]string{name, "A"})
			}
		}
		namedCheckzone(t, "demo", d.zoneFromAnswers(t, n, qs))
		rev := [][2]string{{reverseApex(), "SOA"}, {reverseApex(), "NS"}}
		for i := 1; i <= dnsNodes; i++ {
			a := netip.MustParseAddr(Tunnel(i)).As16()
			var labels []string
			for k := 15; k >= 0; k-- {
				labels = append(labels, fmt.Sprintf("%x", a[k]&0xf), fmt.Sprintf("%x", a[k]>>4))
			}
			rev = append(rev, [2]string{strings.Join(labels, ".") + ".ip6.arpa.", "PTR"})
		}
		namedCheckzone(t, reverseApex(), d.zoneFromAnswers(t, n, rev))
	})

	t.Run("the replies equal NSD's for the same zone", func(t *testing.T) {
		nsd, err := exec.LookPath("nsd")
		if err != nil {
			t.Skip("nsd is not installed (Debian nsd): the byte-for-byte comparison needs it")
		}
		dir := t.TempDir()
		var zone strings.Builder
		zone.WriteString(d.zoneFromAnswers(t, n, [][2]string{{"demo", "SOA"}, {"demo", "NS"}, {"ns.demo", "AAAA"}, {"www.demo", "CNAME"},
			{"_ssh._tcp.node1.demo", "SRV"}, {"note.demo", "TXT"}, {"printer.demo", "AAAA"}, {"legacy.demo", "A"},
			{"node1.demo", "AAAA"}, {"node2.demo", "AAAA"}, {"node3.demo", "AAAA"}}))
		os.WriteFile(filepath.Join(dir, "demo.zone"), []byte(zone.String()), 0o644)
		conf := fmt.Sprintf(`server:
    ip-address: %s@5300
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "%[2]s"
    database: ""
    zonelistfile: "%[2]s/zone.list"
    xfrdfile: "%[2]s/xfrd.state"
    pidfile: "%[2]s/nsd.pid"
    logfile: "%[2]s/nsd.log"
    rrl-ratelimit: 0
    minimal-responses: yes
remote-control:
    control-enable: no
zone:
    name: demo
    zonefile: demo.zone
`, self, dir)
		os.WriteFile(filepath.Join(dir, "nsd.conf"), []byte(conf), 0o644)
		d.Start(n, "nsd", nsd, "-d", "-c", filepath.Join(dir, "nsd.conf"))
		defer d.Stop(n, "nsd", "TERM")
		eventually(t, 10*time.Second, "NSD to answer", func() bool {
			return d.dig(n, self, 5300, "node1.demo", "AAAA").status == "NOERROR"
		})
		for _, q := range [][]string{
			{"node1.demo", "AAAA"}, {"NODE3.Demo", "AAAA"}, {"+noedns", "node2.demo", "AAAA"}, {"+dnssec", "node2.demo", "AAAA"},
			{"node1.demo", "A"}, {"nobody.demo", "AAAA"}, {"a.b.nobody.DEMO", "TXT"}, {"+dnssec", "nobody.demo", "AAAA"},
			{"demo", "SOA"}, {"demo", "NS"}, {"DEMO", "NS"}, {"ns.demo", "AAAA"}, {"www.demo", "AAAA"}, {"WWW.demo", "CNAME"},
			{"printer.demo", "AAAA"}, {"legacy.demo", "A"}, {"note.demo", "TXT"}, {"_ssh._tcp.node1.demo", "SRV"},
			{"_tcp.node1.demo", "SRV"}, {"example.org", "A"},
		} {
			ours, theirs := d.dig(n, self, 53, q...), d.dig(n, self, 5300, q...)
			if ours.String() != theirs.String() {
				t.Errorf("dig %s:\n dm-agent %s\n NSD      %s", strings.Join(q, " "), ours, theirs)
			}
		}
	})

	t.Run("dns.json holds what the server answers for A and AAAA, IPv6 alone under ips", func(t *testing.T) {
		want := map[string][2][]string{ // hostname → ips, ipv4
			"node1.demo": {{Tunnel(1)}, nil}, "node2.demo": {{Tunnel(2)}, nil}, "node3.demo": {{Tunnel(3)}, nil},
			"printer.demo": {{printerAddr}, nil}, "legacy.demo": {nil, {legacyAddr}}, "www.demo": {{Tunnel(1)}, nil},
		}
		var lines []map[string]any
		eventually(t, 30*time.Second, "dns.json to list the admin's records", func() bool {
			lines = d.dnsJSON(t, n)
			return slices.ContainsFunc(lines, func(l map[string]any) bool { return l["hostname"] == "legacy.demo" })
		})
		got := map[string]bool{}
		for _, l := range lines {
			name := fmt.Sprint(l["hostname"])
			got[name] = true
			for _, ip := range strs(l["ips"]) {
				if a, err := netip.ParseAddr(ip); err != nil || !a.Is6() || a.Is4In6() {
					t.Errorf("%s: %q in ips is not an IPv6 address", name, ip)
				}
			}
			w, ok := want[name]
			if !ok {
				continue
			}
			if !slices.Equal(strs(l["ips"]), w[0]) || !slices.Equal(strs(l["ipv4"]), w[1]) {
				t.Errorf("%s: ips %q ipv4 %q, want %q %q", name, strs(l["ips"]), strs(l["ipv4"]), w[0], w[1])
			}
		}
		for name := range want {
			if !got[name] {
				t.Errorf("%s is not in dns.json", name)
			}
		}
	})

	t.Run("coredns-data-mesher answers from dns.json as dm-agent does", func(t *testing.T) {
		coredns := buildCoreDNS(t, d.work)
		corefile := filepath.Join(d.work, "Corefile")
		os.WriteFile(corefile, []byte(".:5353 {\n    data-mesher\n}\n"), 0o644)
		// The plugin reads /var/lib/data-mesher/dns.json: in CoreDNS's own
		// mount namespace, that is node 2's state directory.
		d.Start(n, "coredns", "sh", "-c", `mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/data-mesher && `+
			`mount --bind "$0" /var/lib/data-mesher && exec "$1" -conf "$2"`, filepath.Join(d.dir(n), "state"), coredns, corefile)
		defer d.Stop(n, "coredns", "TERM")
		eventually(t, 20*time.Second, "CoreDNS to answer", func() bool {
			return d.dig(n, self, 5353, "node1.demo", "AAAA").status == "NOERROR"
		})
		names := []string{}
		for _, l := range d.dnsJSON(t, n) {
			names = append(names, fmt.Sprint(l["hostname"]))
		}
		for _, extra := range []string{"node1.demo", "printer.demo", "www.demo", "legacy.demo"} {
			if !slices.Contains(names, extra) {
				names = append(names, extra) // the plugin must know them too
			}
		}
		for _, name := range names {
			ours, theirs := d.dig(n, self, 53, name, "AAAA"), d.dig(n, self, 5353, name, "AAAA")
			if ours.status != theirs.status || !slices.Equal(ours.answerAddrs(), theirs.answerAddrs()) {
				t.Errorf("%s AAAA: dm-agent %s %q, CoreDNS with the plugin %s %q", name, ours.status, ours.answerAddrs(), theirs.status,
					theirs.answerAddrs())
			}
		}
		if !t.Failed() {
			t.Logf("CoreDNS with coredns-data-mesher and dm-agent agree on AAAA for %d names", len(names))
		}
	})
}

// answerAddrs are the AAAA addresses of the answer (a CNAME the plugin
// does not give is left out), sorted.
func (r digReply) answerAddrs() []string {
	var out []string
	for _, rr := range r.answer {
		if f := strings.Fields(rr); len(f) == 5 && f[3] == "AAAA" {
			out = append(out, f[4])
		}
	}
	slices.Sort(out)
	return out
}

// buildCoreDNS builds CoreDNS with only the data-mesher plugin, from Go
// modules: a main generated into dir that imports CoreDNS and the plugin.
func buildCoreDNS(t *testing.T, dir string) string {
	t.Helper()
	const plugin = "github.com/jfly/coredns-data-mesher"
	src := filepath.Join(dir, "coredns-src")
	os.MkdirAll(src, 0o755)
	main := `// Command coredns is CoreDNS with the data-mesher plugin alone.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "` + plugin + `"
)

func init() { dnsserver.Directives = []string{"data-mesher"} }

func main() { coremain.Run() }
`
	os.WriteFile(filepath.Join(src, "main.go"), []byte(main), 0o644)
	gocmd := func(args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := gocmd("mod", "init", "dmcoredns"); err != nil {
		t.Fatalf("go mod init: %v\n%s", err, out)
	}
	if local := os.Getenv("DM_E2E_COREDNS_PLUGIN"); local != "" {
		if out, err := gocmd("mod", "edit", "-require", plugin+"@v0.0.0", "-replace", plugin+"="+local); err != nil {
			t.Fatalf("go mod edit: %v\n%s", err, out)
		}
	} else if out, err := gocmd("list", "-m", plugin+"@latest"); err != nil {
		t.Skipf("the Go module proxy does not serve %s here (%s); set DM_E2E_COREDNS_PLUGIN to a checkout of it to run this test",
			plugin, strings.TrimSpace(out))
	}
	if out, err := gocmd("mod", "tidy"); err != nil {
		t.Skipf("go mod tidy for CoreDNS and %s failed (is the module proxy reachable?): %v\n%s", plugin, err, out)
	}
	bin := filepath.Join(dir, "coredns")
	if out, err := gocmd("build", "-o", bin, "."); err != nil {
		t.Fatalf("building CoreDNS with %s: %v\n%s", plugin, err, out)
	}
	return bin
}

// Command dnsbench is scripts/dns-bench's helper:
//
//	dnsbench gen -dir DIR -listen ADDR:PORT [-hosts 1000]
//	    a network of signed hosts for the real dm-agent: its configuration,
//	    key, state file and reachability verdicts under DIR/agent (it
//	    answers every name at once, with DNS on ADDR:PORT and nothing on
//	    the network), the same names as a zone file for NSD and Knot
//	    (DIR/bench.zone, written from the table dm-agent builds) and as
//	    unbound local-data (DIR/unbound.conf), and a query file for dnsperf
//	    (DIR/queries: each name 9 times and as many misses, 90% / 10%,
//	    shuffled with a fixed seed)
//	dnsbench replies -server ADDR:PORT -queries FILE [-n 300]
//	    one line per question (the first n distinct ones, asked as dnsperf
//	    asks them, then again with EDNS and DO): the reply's length and
//	    bytes, ID zeroed, to compare servers byte for byte
//	dnsbench serve -listen ADDR:PORT [-names 1000] [-serial N] [-cpuprofile FILE]
//	    the bare dnsserver package (no agent) on the names gen makes (the
//	    zone's SOA serial N), to tell the agent's part from the package's,
//	    and for profilers; the CPU profile runs from SIGUSR1 to SIGTERM
//	dnsbench firstanswer -server ADDR:PORT -name NAME -want ADDR [-settle 5s] [-log FILE] -- COMMAND…
//	    starts COMMAND in a session of its own and asks NAME's AAAA every
//	    millisecond until the answer is ADDR: the time from the start to
//	    that answer, and the resident memory of the session's processes
//	    then and -settle later (scripts/startup-bench)
//	dnsbench residence -pcap FILE -port PORT
//	    how long queries stayed in the server: from a capture on the
//	    loopback interface (tcpdump -i lo -w FILE), the time from each
//	    query to its reply (matched by client port and ID) as the kernel
//	    saw them; the quantiles, in ms
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/miekg/dns"
)

const (
	domain     = "bench"
	dnsTTL     = time.Minute
	httpPort   = 17331
	gossipPort = 17946
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: dnsbench gen|replies|serve|firstanswer|residence …")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "gen: output directory")
	listen := fs.String("listen", "127.53.0.1:5300", "gen, serve: the DNS address")
	hosts := fs.Int("hosts", 1000, "gen: signed hosts")
	peer := fs.String("peer", "", "gen: also write a second agent (peer/) on this address, holding the same records, that joins the first")
	server := fs.String("server", "", "replies: the server to ask")
	queries := fs.String("queries", "", "replies: dnsperf query file")
	n := fs.Int("n", 300, "replies: distinct questions to ask")
	names := fs.Int("names", 1000, "serve: names")
	serial := fs.Uint("serial", 1, "serve: the SOA serial")
	profile := fs.String("cpuprofile", "", "serve: write a CPU profile here, from SIGUSR1 to SIGTERM")
	pcap := fs.String("pcap", "", "residence: the capture")
	port := fs.Int("port", 5300, "residence: the server's port")
	name := fs.String("name", "", "firstanswer: the name to ask")
	want := fs.String("want", "", "firstanswer: the address it must answer")
	settle := fs.Duration("settle", 5*time.Second, "firstanswer: when to measure memory again")
	logFile := fs.String("log", os.DevNull, "firstanswer: the command's output")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(*dir, netip.MustParseAddrPort(*listen), *hosts, *peer)
	case "replies":
		err = replies(*server, *queries, *n)
	case "serve":
		err = serve(netip.MustParseAddrPort(*listen), *names, uint32(*serial), *profile)
	case "firstanswer":
		err = firstAnswer(netip.MustParseAddrPort(*server), *name, netip.MustParseAddr(*want), *settle, *logFile, fs.Args())
	case "residence":
		err = residence(*pcap, uint16(*port))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// hostAddr is the tunnel address of host i (h<i>.bench): fdbe:ec00::<i+1>.
func hostAddr(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 0xbe, 0xec, 13: byte((i + 1) >> 16), 14: byte((i + 1) >> 8), 15: byte(i + 1)})
}

// gen writes the network, the agent's files, the peers' zone and the
// queries; with peer, a second agent's files too.
func gen(dir string, listen netip.AddrPort, hosts int, peer string) error {
	if dir == "" {
		return fmt.Errorf("gen needs -dir")
	}
	admin, err := crdt.GenerateKey(nil)
	if err != nil {
		return err
	}
	witness, _ := crdt.GenerateKey(nil)
	now := time.Now()
	net := admin.Public()
	settings, err := crdt.SignSettings(crdt.Settings{Network: net, Updated: now.Add(-time.Hour).Truncate(time.Second), Domain: domain,
		HostTTL: 7 * 24 * time.Hour, DNSTTL: dnsTTL, Witnesses: []crdt.PublicKey{witness.Public()}}, admin)
	if err != nil {
		return err
	}
	recs := []*crdt.Record{settings}
	var verdicts []mesh.Verdict
	for i := range hosts {
		k, _ := crdt.GenerateKey(nil)
		addr := hostAddr(i)
		h, err := crdt.SignHost(crdt.Host{Network: net, Node: k.Public(), Heartbeat: now.Add(-time.Minute), Addresses: []netip.Addr{addr},
			GossipPort: 7946, HTTPPort: httpPort, DNSPort: 53}, k)
		if err != nil {
			return err
		}
		c, err := crdt.SignClaim(crdt.Claim{Network: net, Node: k.Public(), Name: fmt.Sprintf("h%d", i), Created: now.Add(-time.Minute)}, k)
		if err != nil {
			return err
		}
		a, err := crdt.WitnessClaim(net, c.Hash(), now.Add(-time.Minute), witness)
		if err != nil {
			return err
		}
		recs = append(recs, h, c, a)
		// This node checked every host a moment ago: they count as
		// reachable at once and are not checked again for hours.
		verdicts = append(verdicts, mesh.Verdict{Network: net, Node: k.Public(), Addr: addr, Port: httpPort, Checked: now})
	}
	st := crdt.NewState(crdt.DefaultOptions(), net)
	if res := st.IngestAll(recs, now); len(res.Rejected) > 0 {
		return fmt.Errorf("the generated records were refused: %v", res.Rejected[0])
	}
	if err := writeAgent(filepath.Join(dir, "agent"), st, net, verdicts, listen, nil); err != nil {
		return err
	}
	if peer != "" {
		// The second agent holds the same records under its own key
		// and joins the first: the two are in step from the start.
		a, err := netip.ParseAddr(peer)
		if err != nil {
			return fmt.Errorf("-peer: %w", err)
		}
		src := "http://" + netip.AddrPortFrom(listen.Addr(), httpPort).String()
		if err := writeAgent(filepath.Join(dir, "peer"), st, net, verdicts, netip.AddrPortFrom(a, listen.Port()), []string{src}); err != nil {
			return err
		}
	}

	// The peers serve the zone dm-agent's table holds (its NS name with
	// the listen address, as an agent given its own addresses answers).
	v := st.View(crdt.ViewConfig{Networks: []crdt.JoinedNetwork{{ID: net, Priority: 1}}}, now)
	if len(v.Names) != hosts {
		return fmt.Errorf("the view has %d names, want %d", len(v.Names), hosts)
	}
	tab, err := dnsserver.NewTable(v, dnsserver.TableOptions{ReversePrefixes: []netip.Prefix{}, NSAddrs: []netip.Addr{listen.Addr()}})
	if err != nil {
		return err
	}
	var zone strings.Builder
	if err := tab.WriteZone(&zone, domain); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, domain+".zone"), []byte(zone.String()), 0o644); err != nil {
		return err
	}
	var ub strings.Builder
	fmt.Fprintf(&ub, "    local-zone: \"%s.\" static\n", domain)
	for _, line := range strings.Split(zone.String(), "\n") {
		if line != "" && !strings.HasPrefix(line, ";") {
			fmt.Fprintf(&ub, "    local-data: \"%s\"\n", strings.Join(strings.Fields(line), " "))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "unbound.conf"), []byte(ub.String()), 0o644); err != nil {
		return err
	}
	var q []string
	for i := range hosts {
		for range 9 {
			q = append(q, fmt.Sprintf("h%d.%s AAAA", i, domain))
		}
		q = append(q, fmt.Sprintf("miss%d.%s AAAA", i, domain))
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
	return os.WriteFile(filepath.Join(dir, "queries"), []byte(strings.Join(q, "\n")+"\n"), 0o644)
}

// writeAgent writes an agent's key, state, verdicts and configuration
// into adir: it serves DNS on listen and joins bootstrap.
func writeAgent(adir string, st *crdt.State, net crdt.PublicKey, verdicts []mesh.Verdict, listen netip.AddrPort, bootstrap []string) error {
	if err := os.MkdirAll(filepath.Join(adir, "state"), 0o700); err != nil {
		return err
	}
	self, err := agent.WriteKey(filepath.Join(adir, "node.key"), "dns-bench")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(adir, "state", "state.bin"), agent.EncodeState(st.Verified(net), self), 0o600); err != nil {
		return err
	}
	if err := agent.WriteVerdictsFile(filepath.Join(adir, "state", agent.VerdictsFile), slices.Values(verdicts), self); err != nil {
		return err
	}
	nw := map[string]any{"pubkey": net.AuthorizedKey(), "priority": 1}
	if bootstrap != nil {
		nw["bootstrap_peers"] = bootstrap
	}
	cfg := map[string]any{
		"interface": "dmbench0", "bind_address": listen.Addr().String(), "state_dir": filepath.Join(adir, "state"),
		"key_file": filepath.Join(adir, "node.key"), "control_socket": filepath.Join(adir, "control.sock"),
		"metrics_listen": "off", "hostnames": []string{}, "reachability_ttl": "24h",
		"ports":    map[string]int{"dns": int(listen.Port()), "gossip": gossipPort, "http": httpPort},
		"log":      map[string]string{"level": "warn"},
		"networks": map[string]any{domain: nw},
	}
	cb, _ := json.MarshalIndent(cfg, "", "  ")
	return os.WriteFile(filepath.Join(adir, "config.json"), cb, 0o644)
}

// replies asks server the first n distinct questions of the query file.
func replies(server, queries string, n int) error {
	f, err := os.Open(queries)
	if err != nil {
		return err
	}
	defer f.Close()
	seen := map[string]bool{}
	var qs []string
	for sc := bufio.NewScanner(f); sc.Scan() && len(qs) < n; {
		if l := strings.TrimSpace(sc.Text()); l != "" && !seen[l] {
			seen[l] = true
			qs = append(qs, l)
		}
	}
	c, err := net.Dial("udp", server)
	if err != nil {
		return err
	}
	defer c.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	buf := make([]byte, 65535)
	for _, edns := range []bool{false, true} {
		for i, l := range qs {
			fl := strings.Fields(l)
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(fl[0]), dns.StringToType[fl[1]]) // RD set, as dnsperf sends
			m.Id = uint16(i)
			label := "plain"
			if edns {
				m.SetEdns0(1232, true)
				label = "edns-do"
			}
			b, _ := m.Pack()
			var got []byte
			for try := 0; try < 3 && got == nil; try++ {
				_ = c.SetDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(b); err != nil {
					return err
				}
				for {
					k, err := c.Read(buf)
					if err != nil {
						break
					}
					if k >= 2 && buf[0] == b[0] && buf[1] == b[1] {
						got = append([]byte(nil), buf[:k]...)
						break
					}
				}
			}
			if got == nil {
				fmt.Fprintf(out, "%s %s no reply\n", l, label)
				continue
			}
			got[0], got[1] = 0, 0
			fmt.Fprintf(out, "%s %s %d %s\n", l, label, len(got), hex.EncodeToString(got))
		}
	}
	return nil
}

// serve runs the bare dnsserver package.
func serve(listen netip.AddrPort, n int, serial uint32, profile string) error {
	v := &crdt.ResolvedView{Zones: []crdt.Zone{{Domain: domain, TTL: dnsTTL, Serial: serial}}, Names: map[string]*crdt.Name{}}
	for i := range n {
		a := hostAddr(i)
		name := fmt.Sprintf("h%d.%s", i, domain)
		v.Names[name] = &crdt.Name{FQDN: name, Addrs: []netip.Addr{a}, TTL: dnsTTL}
	}
	t, err := dnsserver.NewTable(v, dnsserver.TableOptions{ReversePrefixes: []netip.Prefix{}, NSAddrs: []netip.Addr{listen.Addr()}})
	if err != nil {
		return err
	}
	s := dnsserver.NewServer(dnsserver.Config{Listen: []netip.AddrPort{listen}})
	s.SetTable(t)
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Stop()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	var pf *os.File
	for s := range sig {
		if s != syscall.SIGUSR1 {
			break
		}
		if profile != "" && pf == nil {
			if pf, err = os.Create(profile); err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(pf); err != nil {
				return err
			}
		}
	}
	if pf != nil {
		pprof.StopCPUProfile()
		return pf.Close()
	}
	return nil
}

// residence reads a pcap file of a loopback capture (Ethernet framing,
// IPv4 or IPv6, UDP) and prints the quantiles of the time between each
// query to port and the reply to it.
func residence(file string, port uint16) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if len(b) < 24 {
		return fmt.Errorf("%s: not a pcap file", file)
	}
	var order binary.ByteOrder = binary.LittleEndian
	magic := order.Uint32(b)
	if magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1 {
		order = binary.BigEndian
		magic = order.Uint32(b)
	}
	unit := time.Microsecond
	switch magic {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		unit = time.Nanosecond
	default:
		return fmt.Errorf("%s: not a pcap file (magic %#x)", file, magic)
	}
	if link := order.Uint32(b[20:]); link != 1 {
		return fmt.Errorf("%s: link type %d; capture on lo (Ethernet framing)", file, link)
	}
	type key struct {
		port, id uint16
	}
	sent := map[key]time.Duration{}
	var waits []time.Duration
	for off := 24; off+16 <= len(b); {
		ts := time.Duration(order.Uint32(b[off:]))*time.Second + time.Duration(order.Uint32(b[off+4:]))*unit
		n := int(order.Uint32(b[off+8:]))
		pkt := b[off+16 : min(off+16+n, len(b))]
		off += 16 + n
		if len(pkt) < 14 {
			continue
		}
		var udp []byte
		switch ip := pkt[14:]; binary.BigEndian.Uint16(pkt[12:]) {
		case 0x0800:
			if len(ip) >= 20 && ip[9] == 17 && len(ip) >= int(ip[0]&0xf)*4 {
				udp = ip[int(ip[0]&0xf)*4:]
			}
		case 0x86dd:
			if len(ip) >= 40 && ip[6] == 17 {
				udp = ip[40:]
			}
		}
		if len(udp) < 8+2 {
			continue
		}
		src, dst, id := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:]), binary.BigEndian.Uint16(udp[8:])
		switch {
		case dst == port:
			sent[key{src, id}] = ts
		case src == port:
			if t0, ok := sent[key{dst, id}]; ok {
				waits = append(waits, ts-t0)
				delete(sent, key{dst, id})
			}
		}
	}
	if len(waits) == 0 {
		return fmt.Errorf("%s: no query and reply to port %d", file, port)
	}
	slices.Sort(waits)
	q := func(p float64) float64 {
		return float64(waits[min(len(waits)-1, int(float64(len(waits))*p))]) / float64(time.Millisecond)
	}
	fmt.Printf("n=%d p50=%.3f p99=%.3f p99.9=%.3f max=%.3f\n", len(waits), q(0.5), q(0.99), q(0.999), q(1))
	return nil
}

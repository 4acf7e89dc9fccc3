package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/wg"
	"github.com/miekg/dns"
)

// CheckStatus is a check's verdict.
type CheckStatus string

// The verdicts, best first.
const (
	StatusOK   CheckStatus = "ok"
	StatusSkip CheckStatus = "skip"
	StatusWarn CheckStatus = "warn"
	StatusFail CheckStatus = "fail"
)

// CheckResult is one line of doctor's table.
type CheckResult struct {
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail"`
	Remedy string      `json:"remedy,omitempty"`
}

// DoctorEnv is everything doctor probes; tests replace each part.
type DoctorEnv struct {
	ConfigPath string
	// Config loads and completes the configuration (flags applied).
	Config func() (*Config, error)
	// CheckKey checks the key file's existence and permissions.
	CheckKey func(path string) error
	// LoadKey reads the key (to check the state file's MAC).
	LoadKey func(path string) (crdt.PrivateKey, error)
	// Interface reads the mesh interface.
	Interface func(name string) (*wg.Interface, error)
	// Facts asks the running agent.
	Facts func(socket string) (*Facts, error)
	// QueryDNS asks server for name's AAAA and A records.
	QueryDNS func(server netip.AddrPort, name string) (rcode int, addrs []netip.Addr, err error)
	// StateFile decodes the state file and says how many records it holds.
	StateFile func(path string, key crdt.PrivateKey) (int, error)
	// Resolved reports systemd-resolved's DNS servers and domains for the
	// interface; running is false when resolved is not in use.
	Resolved func(iface string) (running bool, servers, domains []string, err error)
	// PortHolder names the process holding a TCP or UDP port, if any.
	PortHolder func(proto string, port int) string
	Now        func() time.Time
}

// DefaultDoctorEnv probes this machine.
func DefaultDoctorEnv(configPath string, config func() (*Config, error)) DoctorEnv {
	return DoctorEnv{
		ConfigPath: configPath,
		Config:     config,
		CheckKey:   CheckKeyFile,
		LoadKey:    LoadKey,
		Interface:  wg.Read,
		Facts: func(socket string) (*Facts, error) {
			c, err := Dial(socket)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			var f Facts
			return &f, c.Call(Request{Op: "facts"}, &f)
		},
		QueryDNS:   queryDNS,
		StateFile:  stateFileRecords,
		Resolved:   resolvedLink,
		PortHolder: portHolder,
		Now:        time.Now,
	}
}

// RunDoctor runs every check and returns the table.
func RunDoctor(env DoctorEnv) []CheckResult {
	d := &doctor{env: env}
	return d.run()
}

type doctor struct {
	env    DoctorEnv
	cfg    *Config
	key    crdt.PrivateKey
	ifc    *wg.Interface
	ifcErr error
	facts  *Facts
	out    []CheckResult
}

func (d *doctor) add(name string, st CheckStatus, detail, remedy string) {
	d.out = append(d.out, CheckResult{Name: name, Status: st, Detail: detail, Remedy: remedy})
}

func (d *doctor) run() []CheckResult {
	d.checkConfig()
	if d.cfg == nil {
		for _, n := range []string{"key", "interface", "wireguard", "agent", "ports", "dns", "state", "settings", "attestors", "clock", "reachability", "split-dns", "names"} {
			d.add(n, StatusSkip, "needs a valid configuration", "")
		}
		return d.out
	}
	// The slow probes run in parallel; the table keeps its order.
	var wg sync.WaitGroup
	var factsErr error
	wg.Add(2)
	go func() { defer wg.Done(); d.ifc, d.ifcErr = d.env.Interface(d.cfg.Interface) }()
	go func() { defer wg.Done(); d.facts, factsErr = d.env.Facts(d.cfg.ControlSocket) }()
	wg.Wait()
	d.checkKey()
	d.checkInterface()
	d.checkWireGuard()
	d.checkAgent(factsErr)
	d.checkPorts()
	d.checkDNS()
	d.checkState()
	d.checkSettings()
	d.checkAttestors()
	d.checkClock()
	d.checkReachability()
	d.checkSplitDNS()
	d.checkNames()
	return d.out
}

func (d *doctor) checkConfig() {
	cfg, err := d.env.Config()
	if err != nil {
		d.add("config", StatusFail, err.Error(), "fix the named field in "+d.env.ConfigPath+" (see `dm-agent run --help` for every setting)")
		return
	}
	d.cfg = cfg
	d.add("config", StatusOK, fmt.Sprintf("%s: %d network(s), interface %s", d.env.ConfigPath, len(cfg.Networks), cfg.Interface), "")
}

func (d *doctor) checkKey() {
	path := d.cfg.KeyPath()
	if err := d.env.CheckKey(path); err != nil {
		remedy := "create it: dm-agent keygen --out " + path
		if errors.Is(err, ErrKeyPermissions) {
			remedy = "chmod 600 " + path + " (and chown it to the agent's user)"
		}
		d.add("key", StatusFail, err.Error(), remedy)
		return
	}
	k, err := d.env.LoadKey(path)
	if err != nil {
		d.add("key", StatusFail, err.Error(), "replace it with an unencrypted ed25519 key: dm-agent keygen --out "+path)
		return
	}
	d.key = k
	d.add("key", StatusOK, path+": "+k.Public().AuthorizedKey(), "")
}

func (d *doctor) checkInterface() {
	name := d.cfg.Interface
	ifc, err := d.ifc, d.ifcErr
	switch {
	case errors.Is(err, wg.ErrNotFound):
		d.add("interface", StatusFail, "interface "+name+" does not exist",
			"bring WireGuard up (systemctl status wireguard-"+name+"), or set \"interface\" in the configuration to the right name (ip link)")
	case ifc == nil && err != nil:
		d.add("interface", StatusFail, err.Error(), "run doctor as root (reading the interface needs CAP_NET_ADMIN)")
	case !ifc.Up:
		d.add("interface", StatusFail, name+" is down", "ip link set "+name+" up")
	case len(ifc.Addrs) == 0:
		d.add("interface", StatusFail, name+" has no address", "give it its tunnel address: ip addr add fdXX::N/64 dev "+name)
	default:
		var as []string
		for _, p := range ifc.Addrs {
			as = append(as, p.String())
		}
		d.add("interface", StatusOK, name+" is up: "+strings.Join(as, ", "), "")
	}
}

func (d *doctor) checkWireGuard() {
	ifc := d.ifc
	if ifc == nil {
		d.add("wireguard", StatusSkip, "no interface", "")
		return
	}
	if errors.Is(d.ifcErr, wg.ErrNotWireGuard) {
		d.add("wireguard", StatusFail, d.ifcErr.Error(), "point \"interface\" at the WireGuard interface of the mesh (wg show interfaces)")
		return
	}
	if len(ifc.Peers) == 0 {
		d.add("wireguard", StatusFail, ifc.Name+" has no WireGuard peers", "add the mesh's peers (networking.wireguard.interfaces."+ifc.Name+".peers, or wg set)")
		return
	}
	now := d.env.Now()
	recent := 0
	for _, p := range ifc.Peers {
		if age := p.HandshakeAge(now); age >= 0 && age < 3*time.Minute {
			recent++
		}
	}
	detail := fmt.Sprintf("%s device, %d peers, %d with a handshake in the last 3 minutes", ifc.DeviceType, len(ifc.Peers), recent)
	switch {
	case recent == 0:
		d.add("wireguard", StatusFail, detail, "no peer answers: check endpoints and the firewall (wg show "+ifc.Name+"; UDP port "+strconv.Itoa(ifc.ListenPort)+")")
	case recent < len(ifc.Peers):
		d.add("wireguard", StatusWarn, detail, "some peers are silent: wg show "+ifc.Name+" latest-handshakes")
	default:
		d.add("wireguard", StatusOK, detail, "")
	}
}

func (d *doctor) checkAgent(err error) {
	if d.facts == nil {
		d.add("agent", StatusFail, fmt.Sprint(err), "start it: systemctl start data-mesher (or dm-agent run); its log says why it stopped: journalctl -u data-mesher")
		return
	}
	s := d.facts.Status
	d.add("agent", StatusOK, fmt.Sprintf("running %s for %s, %d gossip members", s.Version, time.Duration(s.Uptime).Round(time.Second), s.Members), "")
}

func (d *doctor) bindAddr() (netip.Addr, bool) {
	if d.cfg.BindAddress != "" {
		a, err := netip.ParseAddr(d.cfg.BindAddress)
		return a, err == nil
	}
	if d.facts != nil {
		if a, err := netip.ParseAddr(d.facts.Status.Bind); err == nil {
			return a, true
		}
	}
	if d.ifc != nil && len(d.ifc.Addrs) > 0 {
		for _, p := range d.ifc.Addrs {
			if p.Addr().Is6() {
				return p.Addr(), true
			}
		}
		return d.ifc.Addrs[0].Addr(), true
	}
	return netip.Addr{}, false
}

func (d *doctor) checkPorts() {
	bind, ok := d.bindAddr()
	if !ok {
		d.add("ports", StatusSkip, "no tunnel address known", "")
		return
	}
	want := []struct {
		what, proto string
		port        int
	}{{"gossip", "tcp", d.cfg.Ports.Gossip}, {"http", "tcp", d.cfg.Ports.HTTP}, {"dns", "udp", d.cfg.Ports.DNS}}
	var missing, held []string
	for _, w := range want {
		addr := netip.AddrPortFrom(bind, uint16(w.port)).String()
		if d.facts != nil && slices.Contains(d.facts.Status.Listening, addr) {
			continue
		}
		missing = append(missing, w.what+" "+addr)
		if who := d.env.PortHolder(w.proto, w.port); who != "" {
			held = append(held, fmt.Sprintf("%s/%d is held by %s", w.proto, w.port, who))
		}
	}
	switch {
	case len(missing) == 0:
		d.add("ports", StatusOK, fmt.Sprintf("gossip %d, peer endpoint %d, DNS %d on %s", d.cfg.Ports.Gossip, d.cfg.Ports.HTTP, d.cfg.Ports.DNS, bind), "")
	case len(held) > 0:
		d.add("ports", StatusFail, "not bound: "+strings.Join(missing, ", ")+"; "+strings.Join(held, "; "),
			"stop the other program or move it off the tunnel address (a resolver can listen on 127.0.0.1 only), then restart the agent")
	default:
		d.add("ports", StatusFail, "not bound: "+strings.Join(missing, ", "), "start the agent (see the agent check)")
	}
}

// ownFQDN is a name this node should answer for itself.
func (d *doctor) ownFQDN() string {
	if d.facts == nil {
		return ""
	}
	for _, n := range d.facts.Status.Networks {
		for _, j := range d.cfg.JoinedNetworks() {
			if j.Label == n.Label && n.Domain != "" && len(j.Hostnames) > 0 {
				return j.Hostnames[0] + "." + n.Domain
			}
		}
	}
	return ""
}

func (d *doctor) checkDNS() {
	bind, ok := d.bindAddr()
	if !ok {
		d.add("dns", StatusSkip, "no tunnel address known", "")
		return
	}
	server := netip.AddrPortFrom(bind, uint16(d.cfg.Ports.DNS))
	name := d.ownFQDN()
	if name == "" {
		d.add("dns", StatusSkip, "this node claims no name (or the agent is not running) to ask for", "set \"hostnames\" in the configuration")
		return
	}
	rcode, addrs, err := d.env.QueryDNS(server, name)
	switch {
	case err != nil:
		d.add("dns", StatusFail, fmt.Sprintf("asking %s for %s: %v", server, name, err), "see the ports and agent checks")
	case rcode != dns.RcodeSuccess || len(addrs) == 0:
		d.add("dns", StatusFail, fmt.Sprintf("%s answers %s for %s, with no address", server, dns.RcodeToString[rcode], name),
			"see the names check: the name may be held by another node, or not yet attested")
	default:
		var as []string
		for _, a := range addrs {
			as = append(as, a.String())
		}
		d.add("dns", StatusOK, fmt.Sprintf("%s answers %s: %s", server, name, strings.Join(as, ", ")), "")
	}
}

func (d *doctor) checkState() {
	path := d.cfg.StatePath()
	if d.key.IsZero() {
		d.add("state", StatusSkip, "no key to check the state file's MAC", "")
		return
	}
	n, err := d.env.StateFile(path, d.key)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.add("state", StatusWarn, path+" does not exist yet", "it is written once the agent has run and received records")
	case err != nil:
		d.add("state", StatusFail, err.Error(), "restart the agent: it moves a corrupt file aside and recovers from its peers")
	default:
		d.add("state", StatusOK, fmt.Sprintf("%s: %d records, MAC verified", path, n), "")
	}
}

func (d *doctor) checkSettings() {
	if d.facts == nil {
		d.add("settings", StatusSkip, "the agent is not running", "")
		return
	}
	var missing, ok []string
	for _, n := range d.facts.Status.Networks {
		if n.HasSettings {
			ok = append(ok, fmt.Sprintf("%s (domain %s)", n.Label, n.Domain))
		} else {
			missing = append(missing, n.Label)
		}
	}
	if len(missing) > 0 {
		d.add("settings", StatusFail, "no signed settings yet for: "+strings.Join(missing, ", "),
			"the network's admin publishes them (dm-agent network create / dm-agent settings), or add a bootstrap peer that has them")
		return
	}
	d.add("settings", StatusOK, "signed settings for "+strings.Join(ok, ", "), "")
}

func (d *doctor) checkAttestors() {
	if d.facts == nil {
		d.add("attestors", StatusSkip, "the agent is not running", "")
		return
	}
	var bad, good []string
	for _, a := range d.facts.Attestors {
		line := a.Network + ": " + a.What + ": " + a.Detail
		if a.OK {
			good = append(good, line)
		} else {
			bad = append(bad, line)
		}
	}
	switch {
	case len(bad) > 0 && len(good) == 0:
		d.add("attestors", StatusFail, strings.Join(bad, "; "), "new claims stay inactive until an attestor answers: check the TSA URLs' reachability, or add witnesses to the settings (dm-agent settings --witness)")
	case len(bad) > 0:
		d.add("attestors", StatusWarn, strings.Join(bad, "; "), "some attestors do not answer; others do")
	case len(good) == 0:
		d.add("attestors", StatusSkip, "no network has settings yet", "")
	default:
		d.add("attestors", StatusOK, strings.Join(good, "; "), "")
	}
}

func (d *doctor) checkClock() {
	if d.facts == nil || len(d.facts.Skew) == 0 {
		d.add("clock", StatusSkip, "no peer to compare clocks with", "")
		return
	}
	var worst time.Duration
	var worstPeer string
	for _, s := range d.facts.Skew {
		if s.Err != "" {
			continue
		}
		if v := time.Duration(s.Skew); v.Abs() > worst.Abs() {
			worst, worstPeer = v, s.Peer
		}
	}
	detail := fmt.Sprintf("largest difference %v (peer %s) among %d peers", worst.Round(time.Millisecond), worstPeer, len(d.facts.Skew))
	max := time.Duration(d.cfg.MaxSkew)
	switch {
	case worst.Abs() >= max:
		d.add("clock", StatusFail, detail, fmt.Sprintf("records dated more than %v ahead are refused: run NTP on every node (timedatectl set-ntp true)", max))
	case worst.Abs() > 5*time.Second:
		d.add("clock", StatusWarn, detail, "enable NTP (timedatectl set-ntp true)")
	default:
		d.add("clock", StatusOK, detail, "")
	}
}

func (d *doctor) checkReachability() {
	if d.facts == nil {
		d.add("reachability", StatusSkip, "the agent is not running", "")
		return
	}
	pass, fail := 0, []string{}
	for _, c := range d.facts.Challenges {
		if c.OK {
			pass++
		} else {
			fail = append(fail, c.Addr+": "+c.Error)
		}
	}
	detail := fmt.Sprintf("%d addresses pass the challenge, %d fail", pass, len(fail))
	switch {
	case len(fail) > 0 && pass == 0:
		d.add("reachability", StatusFail, detail+": "+strings.Join(fail, "; "), "no host answers over the tunnel: check WireGuard allowed IPs and that peers run the agent (their port "+strconv.Itoa(d.cfg.Ports.HTTP)+")")
	case len(fail) > 0:
		d.add("reachability", StatusWarn, detail+": "+strings.Join(fail, "; "), "those hosts' names stay out of this node's DNS until they answer")
	case pass == 0:
		d.add("reachability", StatusWarn, "no other host checked yet", "wait for the mesh to sync; see the agent and wireguard checks")
	default:
		d.add("reachability", StatusOK, detail, "")
	}
}

func (d *doctor) checkSplitDNS() {
	running, servers, domains, err := d.env.Resolved(d.cfg.Interface)
	if err != nil {
		d.add("split-dns", StatusWarn, "asking systemd-resolved: "+err.Error(), "")
		return
	}
	if !running {
		d.add("split-dns", StatusSkip, "systemd-resolved is not in use: query the agent directly, or route the mesh domains to it", "")
		return
	}
	var want []string
	if d.facts != nil {
		for _, n := range d.facts.Status.Networks {
			if n.Domain != "" {
				want = append(want, "~"+n.Domain)
			}
		}
	}
	bind, _ := d.bindAddr()
	var missing []string
	for _, w := range want {
		if !slices.Contains(domains, w) && !slices.Contains(domains, strings.TrimPrefix(w, "~")) {
			missing = append(missing, w)
		}
	}
	// The agent answers on the tunnel address and on dns.listen.
	ours := []netip.Addr{bind}
	for _, l := range d.cfg.DNS.Listen {
		if ap, err := netip.ParseAddrPort(l); err == nil {
			ours = append(ours, ap.Addr())
		}
	}
	var server netip.Addr
	for _, s := range servers {
		if a, ok := resolvedServerAddr(s); ok && slices.Contains(ours, a) {
			server = a
			break
		}
	}
	switch {
	case len(want) == 0:
		d.add("split-dns", StatusSkip, "no network domain known yet", "")
	case len(missing) == 0 && server.IsLoopback():
		// resolved sends a link's queries with IP_UNICAST_IF set to the
		// link; the kernel does not deliver those to 127.0.0.0/8.
		d.add("split-dns", StatusWarn, fmt.Sprintf("resolved sends %s to %s, a loopback address: queries for a link may never reach it", strings.Join(want, " "), server),
			fmt.Sprintf("resolvectl dns %s %s (the tunnel address)", d.cfg.Interface, bind))
	case len(missing) > 0 || !server.IsValid():
		d.add("split-dns", StatusFail, fmt.Sprintf("resolved on %s: servers %v, domains %v; missing %v", d.cfg.Interface, servers, domains, missing),
			fmt.Sprintf("resolvectl dns %s %s && resolvectl domain %s %s (on NixOS: splitDNS, on by default with systemd-resolved)", d.cfg.Interface, bind, d.cfg.Interface, strings.Join(want, " ")))
	default:
		d.add("split-dns", StatusOK, fmt.Sprintf("resolved routes %s to %s", strings.Join(want, " "), bind), "")
	}
}

func (d *doctor) checkNames() {
	if d.facts == nil {
		d.add("names", StatusSkip, "the agent is not running", "")
		return
	}
	var won, problems []string
	for _, n := range d.facts.OwnNames {
		switch {
		case n.Won:
			won = append(won, n.Name+" ("+n.Network+")")
		case n.Holder != "":
			problems = append(problems, fmt.Sprintf("%s (%s) is held by %s since %s", n.Name, n.Network, n.Holder, n.Since.Format(time.RFC3339)))
		case n.Pending != "":
			problems = append(problems, n.Name+" ("+n.Network+"): "+n.Pending)
		default:
			problems = append(problems, n.Name+" ("+n.Network+") is not held by anyone yet")
		}
	}
	switch {
	case len(problems) > 0:
		d.add("names", StatusWarn, strings.Join(problems, "; "),
			"a name held by another node stays theirs (earliest attested claim wins): pick another name, or ask the admin for an override (dm-agent settings --override)")
	case len(won) == 0:
		d.add("names", StatusSkip, "this node claims no name", "set \"hostnames\" in the configuration")
	default:
		d.add("names", StatusOK, "this node holds "+strings.Join(won, ", "), "")
	}
}

// WriteDoctor prints the table for humans, or JSON.
func WriteDoctor(w io.Writer, results []CheckResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.ToUpper(string(r.Status)), r.Detail)
		if r.Remedy != "" && (r.Status == StatusFail || r.Status == StatusWarn) {
			fmt.Fprintf(tw, "\t\t→ %s\n", r.Remedy)
		}
	}
	return tw.Flush()
}

// Failed reports whether any check failed.
func Failed(results []CheckResult) bool {
	return slices.ContainsFunc(results, func(r CheckResult) bool { return r.Status == StatusFail })
}

func queryDNS(server netip.AddrPort, name string) (int, []netip.Addr, error) {
	c := &dns.Client{Timeout: 2 * time.Second}
	var addrs []netip.Addr
	rcode := dns.RcodeSuccess
	for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), qt)
		m, _, err := c.Exchange(q, server.String())
		if err != nil {
			return 0, nil, err
		}
		if m.Rcode != dns.RcodeSuccess {
			rcode = m.Rcode
		}
		for _, rr := range m.Answer {
			switch r := rr.(type) {
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(r.AAAA)
				addrs = append(addrs, a)
			case *dns.A:
				a, _ := netip.AddrFromSlice(r.A)
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	return rcode, addrs, nil
}

func stateFileRecords(path string, key crdt.PrivateKey) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	entries, _, err := DecodeState(b, key)
	return len(entries), err
}

// resolvedServerAddr reads the address of a DNS server as resolvectl
// prints it: 192.0.2.1, 192.0.2.1:5353, fd00::1, [fd00::1]:5353, each
// perhaps with %ifindex or #server-name.
func resolvedServerAddr(s string) (netip.Addr, bool) {
	s, _, _ = strings.Cut(s, "#")
	if i := strings.IndexByte(s, '%'); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j >= 0 {
			s = s[:i] + s[i+j:]
		} else {
			s = s[:i]
		}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a, err == nil
}

// resolvedLink asks resolvectl about the interface.
func resolvedLink(iface string) (bool, []string, []string, error) {
	if _, err := os.Stat("/run/systemd/resolve"); err != nil {
		return false, nil, nil, nil
	}
	if _, err := exec.LookPath("resolvectl"); err != nil {
		return false, nil, nil, nil
	}
	field := func(what string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "resolvectl", what, iface).Output()
		if err != nil {
			return nil, fmt.Errorf("resolvectl %s %s: %w", what, iface, err)
		}
		_, list, _ := strings.Cut(string(out), ":")
		return strings.Fields(list), nil
	}
	servers, err := field("dns")
	if err != nil {
		return true, nil, nil, err
	}
	domains, err := field("domain")
	return true, servers, domains, err
}

// portHolder finds the process bound to port, from /proc.
func portHolder(proto string, port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/" + proto, "/proc/net/" + proto + "6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			// TCP: only listening sockets (state 0A).
			if err != nil || int(p) != port || (proto == "tcp" && fs[3] != "0A") {
				continue
			}
			inodes["socket:["+fs[9]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		target, err := os.Readlink(fd)
		if err != nil || !inodes[target] {
			continue
		}
		pid := strings.Split(fd, "/")[2]
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		return fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), pid)
	}
	return "another process"
}

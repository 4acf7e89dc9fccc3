package doctor

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/wg"
	"github.com/miekg/dns"
)

// Checks are doctor's checks, in the order of its table.
var Checks = []Check{
	{"config", checkConfig},
	{"key", checkKey},
	{"interface", checkInterface},
	{"wireguard", checkWireGuard},
	{"agent", checkAgent},
	{"ports", checkPorts},
	{"dns", checkDNS},
	{"state", checkState},
	{"settings", checkSettings},
	{"attestors", checkAttestors},
	{"clock", checkClock},
	{"reachability", checkReachability},
	{"split-dns", checkSplitDNS},
	{"names", checkNames},
}

func checkConfig(n *Node) Verdict {
	return ok("%s: %d network(s), interface %s", n.Env.ConfigPath, len(n.Config.Networks), n.Config.Interface)
}

func checkKey(n *Node) Verdict {
	path := n.Config.KeyPath()
	switch {
	case errors.Is(n.KeyFileErr, agent.ErrKeyPermissions):
		return Verdict{Fail, n.KeyFileErr.Error(), "chmod 600 " + path + " (and chown it to the agent's user)"}
	case n.KeyFileErr != nil:
		return Verdict{Fail, n.KeyFileErr.Error(), "create it: dm-agent keygen --out " + path}
	case n.KeyErr != nil:
		return Verdict{Fail, n.KeyErr.Error(), "replace it with an unencrypted ed25519 key: dm-agent keygen --out " + path}
	}
	return ok("%s: %s", path, n.Key.Public().AuthorizedKey())
}

func checkInterface(n *Node) Verdict {
	name := n.Config.Interface
	ifc, err := n.Iface, n.IfaceErr
	switch {
	case errors.Is(err, wg.ErrNotFound):
		return Verdict{Fail, "interface " + name + " does not exist",
			"bring WireGuard up (systemctl status wireguard-" + name + "), or set \"interface\" in the configuration to the right name (ip link)"}
	case ifc == nil && err != nil:
		return Verdict{Fail, err.Error(), "run doctor as root (reading the interface needs CAP_NET_ADMIN)"}
	case !ifc.Up:
		return Verdict{Fail, name + " is down", "ip link set " + name + " up"}
	case len(ifc.Addrs) == 0:
		return Verdict{Fail, name + " has no address", "give it its tunnel address: ip addr add fdXX::N/64 dev " + name}
	}
	var as []string
	for _, p := range ifc.Addrs {
		as = append(as, p.String())
	}
	return ok("%s is up: %s", name, strings.Join(as, ", "))
}

func checkWireGuard(n *Node) Verdict {
	ifc := n.Iface
	if ifc == nil {
		return skip("no interface")
	}
	if errors.Is(n.IfaceErr, wg.ErrNotWireGuard) {
		return Verdict{Fail, n.IfaceErr.Error(), "point \"interface\" at the WireGuard interface of the mesh (wg show interfaces)"}
	}
	if len(ifc.Peers) == 0 {
		return Verdict{Fail, ifc.Name + " has no WireGuard peers", "add the mesh's peers (networking.wireguard.interfaces." + ifc.Name + ".peers, or wg set)"}
	}
	now := n.Env.Now()
	recent := 0
	for _, p := range ifc.Peers {
		if age := p.HandshakeAge(now); age >= 0 && age < 3*time.Minute {
			recent++
		}
	}
	detail := fmt.Sprintf("%s device, %d peers, %d with a handshake in the last 3 minutes", ifc.DeviceType, len(ifc.Peers), recent)
	switch {
	case recent == 0:
		return Verdict{Fail, detail, "no peer answers: check endpoints and the firewall (wg show " + ifc.Name + "; UDP port " + strconv.Itoa(ifc.ListenPort) + ")"}
	case recent < len(ifc.Peers):
		return Verdict{Warn, detail, "some peers are silent: wg show " + ifc.Name + " latest-handshakes"}
	}
	return ok("%s", detail)
}

func checkAgent(n *Node) Verdict {
	if n.Facts == nil {
		return Verdict{Fail, fmt.Sprint(n.FactsErr), "start it: systemctl start data-mesher (or dm-agent run); its log says why it stopped: journalctl -u data-mesher"}
	}
	s := n.Facts.Status
	uptime := (time.Duration(s.Uptime * float64(time.Second))).Round(time.Second)
	return ok("running %s for %s, %d gossip members", s.Version, uptime, s.Members)
}

// bindAddr is the tunnel address the agent uses (or would use).
func (n *Node) bindAddr() (netip.Addr, bool) {
	if n.Config.BindAddress != "" {
		a, err := netip.ParseAddr(n.Config.BindAddress)
		return a, err == nil
	}
	if n.Facts != nil {
		if a, err := netip.ParseAddr(n.Facts.Status.Bind); err == nil {
			return a, true
		}
	}
	if n.Iface != nil && len(n.Iface.Addrs) > 0 {
		for _, p := range n.Iface.Addrs {
			if p.Addr().Is6() {
				return p.Addr(), true
			}
		}
		return n.Iface.Addrs[0].Addr(), true
	}
	return netip.Addr{}, false
}

func checkPorts(n *Node) Verdict {
	bind, found := n.bindAddr()
	if !found {
		return skip("no tunnel address known")
	}
	ports := n.Config.Ports
	want := []struct {
		what, proto string
		port        int
	}{{"gossip", "tcp", ports.Gossip}, {"http", "tcp", ports.HTTP}, {"dns", "udp", ports.DNS}}
	var missing, held []string
	for _, w := range want {
		addr := netip.AddrPortFrom(bind, uint16(w.port)).String()
		if n.Facts != nil && slices.Contains(n.Facts.Status.Listening, addr) {
			continue
		}
		missing = append(missing, w.what+" "+addr)
		if who := n.Env.PortHolder(w.proto, w.port); who != "" {
			held = append(held, fmt.Sprintf("%s/%d is held by %s", w.proto, w.port, who))
		}
	}
	switch {
	case len(missing) == 0:
		return ok("gossip %d, peer endpoint %d, DNS %d on %s", ports.Gossip, ports.HTTP, ports.DNS, bind)
	case len(held) > 0:
		return Verdict{Fail, "not bound: " + strings.Join(missing, ", ") + "; " + strings.Join(held, "; "),
			"stop the other program or move it off the tunnel address (a resolver can listen on 127.0.0.1 only), then restart the agent"}
	}
	return Verdict{Fail, "not bound: " + strings.Join(missing, ", "), "start the agent (see the agent check)"}
}

// ownFQDN is a name this node should answer for itself.
func (n *Node) ownFQDN() string {
	if n.Facts == nil {
		return ""
	}
	for _, s := range n.Facts.Status.Networks {
		for _, j := range n.Config.JoinedNetworks() {
			if j.Label == s.Label && s.Domain != "" && len(j.Hostnames) > 0 {
				return j.Hostnames[0] + "." + s.Domain
			}
		}
	}
	return ""
}

func checkDNS(n *Node) Verdict {
	bind, found := n.bindAddr()
	if !found {
		return skip("no tunnel address known")
	}
	server := netip.AddrPortFrom(bind, uint16(n.Config.Ports.DNS))
	name := n.ownFQDN()
	if name == "" {
		return Verdict{Skip, "this node claims no name (or the agent is not running) to ask for", "set \"hostnames\" in the configuration"}
	}
	rcode, addrs, err := n.Env.QueryDNS(server, name)
	switch {
	case err != nil:
		return Verdict{Fail, fmt.Sprintf("asking %s for %s: %v", server, name, err), "see the ports and agent checks"}
	case rcode != dns.RcodeSuccess || len(addrs) == 0:
		return Verdict{Fail, fmt.Sprintf("%s answers %s for %s, with no address", server, dns.RcodeToString[rcode], name),
			"see the names check: the name may be held by another node, or not yet attested"}
	}
	var as []string
	for _, a := range addrs {
		as = append(as, a.String())
	}
	return ok("%s answers %s: %s", server, name, strings.Join(as, ", "))
}

func checkState(n *Node) Verdict {
	path := n.Config.StatePath()
	if n.Key.IsZero() {
		return skip("no key to check the state file's MAC")
	}
	count, err := n.Env.StateFile(path, n.Key)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Verdict{Warn, path + " does not exist yet", "it is written once the agent has run and received records"}
	case err != nil:
		return Verdict{Fail, err.Error(), "restart the agent: it moves a corrupt file aside and recovers from its peers"}
	}
	return ok("%s: %d records, MAC verified", path, count)
}

func checkSettings(n *Node) Verdict {
	if n.Facts == nil {
		return skip("the agent is not running")
	}
	var missing, have []string
	for _, s := range n.Facts.Status.Networks {
		if s.HasSettings {
			have = append(have, fmt.Sprintf("%s (domain %s)", s.Label, s.Domain))
		} else {
			missing = append(missing, s.Label)
		}
	}
	if len(missing) > 0 {
		return Verdict{Fail, "no signed settings yet for: " + strings.Join(missing, ", "),
			"the network's admin publishes them (dm-agent network create / dm-agent settings), or add a bootstrap peer that has them"}
	}
	return ok("signed settings for %s", strings.Join(have, ", "))
}

func checkAttestors(n *Node) Verdict {
	if n.Facts == nil {
		return skip("the agent is not running")
	}
	var bad, good []string
	for _, a := range n.Facts.Attestors {
		line := a.Network + ": " + a.What + ": " + a.Detail
		if a.OK {
			good = append(good, line)
		} else {
			bad = append(bad, line)
		}
	}
	switch {
	case len(bad) > 0 && len(good) == 0:
		return Verdict{Fail, strings.Join(bad, "; "), "new claims stay inactive until an attestor answers: check the TSA URLs' reachability, or add witnesses to the settings (dm-agent settings --witness)"}
	case len(bad) > 0:
		return Verdict{Warn, strings.Join(bad, "; "), "some attestors do not answer; others do"}
	case len(good) == 0:
		return skip("no network has settings yet")
	}
	return ok("%s", strings.Join(good, "; "))
}

func checkClock(n *Node) Verdict {
	if n.Facts == nil || len(n.Facts.Skew) == 0 {
		return skip("no peer to compare clocks with")
	}
	var worst time.Duration
	var worstPeer string
	for _, s := range n.Facts.Skew {
		if s.Err != "" {
			continue
		}
		if v := time.Duration(s.Skew * float64(time.Second)); v.Abs() > worst.Abs() {
			worst, worstPeer = v, s.Peer
		}
	}
	detail := fmt.Sprintf("largest difference %v (peer %s) among %d peers", worst.Round(time.Millisecond), worstPeer, len(n.Facts.Skew))
	limit := time.Duration(n.Config.MaxSkew)
	switch {
	case worst.Abs() >= limit:
		return Verdict{Fail, detail, fmt.Sprintf("records dated more than %v ahead are refused: run NTP on every node (timedatectl set-ntp true)", limit)}
	case worst.Abs() > 5*time.Second:
		return Verdict{Warn, detail, "enable NTP (timedatectl set-ntp true)"}
	}
	return ok("%s", detail)
}

func checkReachability(n *Node) Verdict {
	if n.Facts == nil {
		return skip("the agent is not running")
	}
	pass, fail := 0, []string{}
	for _, c := range n.Facts.Challenges {
		if c.OK {
			pass++
		} else {
			fail = append(fail, c.Addr+": "+c.Error)
		}
	}
	detail := fmt.Sprintf("%d addresses pass the challenge, %d fail", pass, len(fail))
	switch {
	case len(fail) > 0 && pass == 0:
		return Verdict{Fail, detail + ": " + strings.Join(fail, "; "), "no host answers over the tunnel: check WireGuard allowed IPs and that peers run the agent (their port " + strconv.Itoa(n.Config.Ports.HTTP) + ")"}
	case len(fail) > 0:
		return Verdict{Warn, detail + ": " + strings.Join(fail, "; "), "those hosts' names stay out of this node's DNS until they answer"}
	case pass == 0:
		return Verdict{Warn, "no other host checked yet", "wait for the mesh to sync; see the agent and wireguard checks"}
	}
	return ok("%s", detail)
}

func checkSplitDNS(n *Node) Verdict {
	iface := n.Config.Interface
	running, servers, domains, err := n.Env.Resolved(iface)
	if err != nil {
		return Verdict{Status: Warn, Detail: "asking systemd-resolved: " + err.Error()}
	}
	if !running {
		return skip("systemd-resolved is not in use: query the agent directly, or route the mesh domains to it")
	}
	var want []string
	if n.Facts != nil {
		for _, s := range n.Facts.Status.Networks {
			if s.Domain != "" {
				want = append(want, "~"+s.Domain)
			}
		}
	}
	bind, _ := n.bindAddr()
	var missing []string
	for _, w := range want {
		if !slices.Contains(domains, w) && !slices.Contains(domains, strings.TrimPrefix(w, "~")) {
			missing = append(missing, w)
		}
	}
	// The agent answers on the tunnel address and on dns.listen.
	ours := []netip.Addr{bind}
	for _, l := range n.Config.DNS.Listen {
		if ap, err := netip.ParseAddrPort(l); err == nil {
			ours = append(ours, ap.Addr())
		}
	}
	var server netip.Addr
	for _, s := range servers {
		if a, found := resolvedServerAddr(s); found && slices.Contains(ours, a) {
			server = a
			break
		}
	}
	switch {
	case len(want) == 0:
		return skip("no network domain known yet")
	case len(missing) == 0 && server.IsLoopback():
		// resolved sends a link's queries with IP_UNICAST_IF set to the
		// link; the kernel does not deliver those to 127.0.0.0/8.
		return Verdict{Warn, fmt.Sprintf("resolved sends %s to %s, a loopback address: queries for a link may never reach it", strings.Join(want, " "), server),
			fmt.Sprintf("resolvectl dns %s %s (the tunnel address)", iface, bind)}
	case len(missing) > 0 || !server.IsValid():
		return Verdict{Fail, fmt.Sprintf("resolved on %s: servers %v, domains %v; missing %v", iface, servers, domains, missing),
			fmt.Sprintf("resolvectl dns %s %s && resolvectl domain %s %s (on NixOS: splitDNS, on by default with systemd-resolved)", iface, bind, iface, strings.Join(want, " "))}
	}
	return ok("resolved routes %s to %s", strings.Join(want, " "), bind)
}

func checkNames(n *Node) Verdict {
	if n.Facts == nil {
		return skip("the agent is not running")
	}
	var won, problems []string
	for _, o := range n.Facts.OwnNames {
		switch {
		case o.Won:
			won = append(won, o.Name+" ("+o.Network+")")
		case o.Holder != "":
			problems = append(problems, fmt.Sprintf("%s (%s) is held by %s since %s", o.Name, o.Network, o.Holder, o.Since.Format(time.RFC3339)))
		case o.Pending != "":
			problems = append(problems, o.Name+" ("+o.Network+"): "+o.Pending)
		default:
			problems = append(problems, o.Name+" ("+o.Network+") is not held by anyone yet")
		}
	}
	switch {
	case len(problems) > 0:
		return Verdict{Warn, strings.Join(problems, "; "),
			"a name held by another node stays theirs (earliest attested claim wins): pick another name, or ask the admin for an override (dm-agent settings --override)"}
	case len(won) == 0:
		return Verdict{Skip, "this node claims no name", "set \"hostnames\" in the configuration"}
	}
	return ok("this node holds %s", strings.Join(won, ", "))
}

package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/wg"
	"github.com/miekg/dns"
)

// Env is everything doctor probes on the machine; System returns the real
// probes, and tests replace each one.
type Env struct {
	ConfigPath string
	// Config loads and completes the configuration (flags applied).
	Config func() (*agent.Config, error)
	// CheckKey checks the key file's existence and permissions.
	CheckKey func(path string) error
	// LoadKey reads the key (to check the state file's MAC).
	LoadKey func(path string) (crdt.PrivateKey, error)
	// Interface reads the mesh interface.
	Interface func(name string) (*wg.Interface, error)
	// Facts asks the running agent on its control socket.
	Facts func(socket string) (*control.Facts, error)
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

// System probes this machine. config loads the configuration at
// configPath as the command line does (flags and environment applied).
func System(configPath string, config func() (*agent.Config, error)) Env {
	return Env{
		ConfigPath: configPath,
		Config:     config,
		CheckKey:   agent.CheckKeyFile,
		LoadKey:    agent.LoadKey,
		Interface:  wg.Read,
		Facts:      agentFacts,
		QueryDNS:   queryDNS,
		StateFile:  stateFileRecords,
		Resolved:   resolvedLink,
		PortHolder: portHolder,
		Now:        time.Now,
	}
}

func agentFacts(socket string) (*control.Facts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := control.NewClient(socket).Facts(ctx)
	if err != nil {
		return nil, err
	}
	return &f, nil
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
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	entries, _, err := agent.ReadState(f, key)
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

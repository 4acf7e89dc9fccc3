package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/wg"
	"github.com/miekg/dns"
)

// exampleConfig is README's configuration of two networks.
const exampleConfig = `{
  "interface": "wg0",
  "hostnames": ["mors"],
  "networks": {
    "qubasa.clan": {
      "pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY",
      "priority": 1,
      "bootstrap_peers": ["http://[fd27:bb88:dbef:737b:3799:9318:aa77:ec12]:7331"]
    },
    "clan": {
      "pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV",
      "priority": 1.5
    }
  }
}`

// healthyEnv is a node where everything works; each test breaks one thing.
func healthyEnv() Env {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	key := must(crdt.NewPrivateKeyFromSeed(make([]byte, 32)))
	return Env{
		ConfigPath: "/etc/data-mesher/config.json",
		Config: func() (*agent.Config, error) {
			c, err := agent.ParseConfig([]byte(exampleConfig))
			if err != nil {
				return nil, err
			}
			c.ApplyDefaults()
			return c, c.Validate()
		},
		CheckKey: func(string) error { return nil },
		LoadKey:  func(string) (crdt.PrivateKey, error) { return key, nil },
		Interface: func(name string) (*wg.Interface, error) {
			return &wg.Interface{Name: name, Kind: "wireguard", DeviceType: "Linux kernel", Up: true,
				Addrs: []netip.Prefix{netip.MustParsePrefix("fd00::1/64")},
				Peers: []wg.Peer{{LastHandshake: now.Add(-time.Minute), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::2/128")}}}}, nil
		},
		Facts: func(string) (*control.Facts, error) {
			return &control.Facts{
				Status: control.Status{Version: "test", Bind: "fd00::1", Members: 1, Synced: true,
					Listening: []string{"[fd00::1]:7946", "[fd00::1]:7331", "[fd00::1]:53"},
					Networks:  []control.NetworkStatus{{Label: "clan", Domain: "clan", HasSettings: true}, {Label: "qubasa.clan", Domain: "qubasa.clan", HasSettings: true}}},
				Challenges: []control.Challenge{{Node: "n2", Addr: "[fd00::2]:7331", OK: true}},
				Skew:       []control.PeerSkew{{Peer: "fd00::2", Skew: 0.020}},
				OwnNames:   []control.OwnName{{Network: "clan", Name: "mors", Won: true}},
				Attestors:  []control.AttestorMsg{{Network: "clan", What: "witnesses", OK: true, Detail: "1 of 1 witnesses online"}},
			}, nil
		},
		QueryDNS: func(server netip.AddrPort, name string) (int, []netip.Addr, error) {
			if name == "mors.clan" && server.String() == "[fd00::1]:53" {
				return dns.RcodeSuccess, []netip.Addr{netip.MustParseAddr("fd00::1")}, nil
			}
			return dns.RcodeNameError, nil, nil
		},
		StateFile: func(string, crdt.PrivateKey) (int, error) { return 42, nil },
		Resolved: func(string) (bool, []string, []string, error) {
			return true, []string{"fd00::1"}, []string{"~clan", "~qubasa.clan"}, nil
		},
		PortHolder: func(string, int) string { return "" },
		Now:        func() time.Time { return now },
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func statusOf(results []Result, name string) Result {
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	return Result{Name: name, Status: "missing"}
}

func TestDoctorHealthy(t *testing.T) {
	results := Run(healthyEnv())
	if len(results) != 14 {
		t.Fatalf("%d checks, want 14", len(results))
	}
	for _, r := range results {
		if r.Status != OK {
			t.Errorf("%s: %s %s (%s)", r.Name, r.Status, r.Detail, r.Remedy)
		}
	}
	if Failed(results) {
		t.Fatal("a healthy node fails")
	}
}

// Each broken node names the failure and a concrete remedy.
func TestDoctorBroken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(*Env)
		check  string
		status Status
		detail string
		remedy string
	}{
		{"wrong interface name", func(e *Env) {
			e.Interface = func(n string) (*wg.Interface, error) { return nil, fmt.Errorf("%w: %s", wg.ErrNotFound, n) }
		}, "interface", Fail, "does not exist", "systemctl status wireguard-wg0"},
		{"interface down", func(e *Env) {
			in := e.Interface
			e.Interface = func(n string) (*wg.Interface, error) { i, _ := in(n); i.Up = false; return i, nil }
		}, "interface", Fail, "is down", "ip link set wg0 up"},
		{"key readable by others", func(e *Env) {
			e.CheckKey = func(p string) error { return fmt.Errorf("%w: %s has mode 0644", agent.ErrKeyPermissions, p) }
		}, "key", Fail, "0644", "chmod 600 /var/lib/data-mesher/node.key"},
		{"no key", func(e *Env) {
			e.CheckKey = func(p string) error { return errors.New(p + " does not exist") }
		}, "key", Fail, "does not exist", "dm-agent keygen --out"},
		{"agent stopped", func(e *Env) {
			e.Facts = func(string) (*control.Facts, error) { return nil, control.ErrNoAgent }
		}, "agent", Fail, "no running dm-agent", "systemctl start data-mesher"},
		{"no WireGuard peers", func(e *Env) {
			in := e.Interface
			e.Interface = func(n string) (*wg.Interface, error) { i, _ := in(n); i.Peers = nil; return i, nil }
		}, "wireguard", Fail, "no WireGuard peers", "peers"},
		{"peers silent", func(e *Env) {
			in := e.Interface
			e.Interface = func(n string) (*wg.Interface, error) {
				i, _ := in(n)
				i.Peers[0].LastHandshake = time.Time{}
				return i, nil
			}
		}, "wireguard", Fail, "0 with a handshake", "firewall"},
		{"DNS port taken", func(e *Env) {
			f := e.Facts
			e.Facts = func(s string) (*control.Facts, error) {
				x, _ := f(s)
				x.Status.Listening = x.Status.Listening[:2]
				return x, nil
			}
			e.PortHolder = func(proto string, port int) string {
				if port == 53 {
					return "unbound (pid 4242)"
				}
				return ""
			}
			e.QueryDNS = func(netip.AddrPort, string) (int, []netip.Addr, error) { return dns.RcodeRefused, nil, nil }
		}, "ports", Fail, "udp/53 is held by unbound (pid 4242)", "stop the other program"},
		{"no settings", func(e *Env) {
			f := e.Facts
			e.Facts = func(s string) (*control.Facts, error) {
				x, _ := f(s)
				x.Status.Networks[1].HasSettings = false
				return x, nil
			}
		}, "settings", Fail, "qubasa.clan", "network create"},
		{"name lost", func(e *Env) {
			f := e.Facts
			e.Facts = func(s string) (*control.Facts, error) {
				x, _ := f(s)
				x.OwnNames = []control.OwnName{{Network: "clan", Name: "mors", Holder: "ssh-ed25519 AAAA other", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
				return x, nil
			}
		}, "names", Warn, "mors (clan) is held by ssh-ed25519 AAAA other since 2026-01-02T03:04:05Z", "override"},
		{"clock far off", func(e *Env) {
			f := e.Facts
			e.Facts = func(s string) (*control.Facts, error) {
				x, _ := f(s)
				x.Skew[0].Skew = (10 * time.Minute).Seconds()
				return x, nil
			}
		}, "clock", Fail, "10m0s", "timedatectl set-ntp true"},
		{"split DNS missing", func(e *Env) {
			e.Resolved = func(string) (bool, []string, []string, error) { return true, nil, nil, nil }
		}, "split-dns", Fail, "missing", "resolvectl domain wg0 ~clan ~qubasa.clan"},
		{"split DNS to another server", func(e *Env) {
			e.Resolved = func(string) (bool, []string, []string, error) {
				return true, []string{"fd00::9", "192.0.2.1:53"}, []string{"~clan", "~qubasa.clan"}, nil
			}
		}, "split-dns", Fail, "fd00::9", "resolvectl dns wg0 fd00::1"},
		{"split DNS to a loopback listener", func(e *Env) {
			c := e.Config
			e.Config = func() (*agent.Config, error) {
				x, err := c()
				x.DNS.Listen = []string{"127.0.0.153:53"}
				return x, err
			}
			e.Resolved = func(string) (bool, []string, []string, error) {
				return true, []string{"127.0.0.153"}, []string{"~clan", "~qubasa.clan"}, nil
			}
		}, "split-dns", Warn, "loopback", "resolvectl dns wg0 fd00::1"},
		{"no attestor answers", func(e *Env) {
			f := e.Facts
			e.Facts = func(s string) (*control.Facts, error) {
				x, _ := f(s)
				x.Attestors = []control.AttestorMsg{{Network: "clan", What: "https://tsa.example/tsr", Detail: "connection refused"}}
				return x, nil
			}
		}, "attestors", Fail, "connection refused", "witnesses"},
		{"challenge fails", func(e *Env) {
			f := e.Facts
			e.Facts = func(s string) (*control.Facts, error) {
				x, _ := f(s)
				x.Challenges = []control.Challenge{{Addr: "[fd00::2]:7331", Error: "no answer"}}
				return x, nil
			}
		}, "reachability", Fail, "no answer", "allowed IPs"},
		{"corrupt state", func(e *Env) {
			e.StateFile = func(string, crdt.PrivateKey) (int, error) { return 0, agent.ErrStateCorrupt }
		}, "state", Fail, "corrupt", "moves a corrupt file aside"},
		{"bad config", func(e *Env) {
			e.Config = func() (*agent.Config, error) { return nil, errors.New(`networks."x".pubkey: is required`) }
		}, "config", Fail, `networks."x".pubkey`, "fix the named field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := healthyEnv()
			tc.break_(&env)
			results := Run(env)
			r := statusOf(results, tc.check)
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) || !strings.Contains(r.Remedy, tc.remedy) {
				t.Fatalf("%s: %s %q → %q; want %s mentioning %q, remedy mentioning %q", tc.check, r.Status, r.Detail, r.Remedy, tc.status, tc.detail, tc.remedy)
			}
			if (tc.status == Fail) != Failed(results) {
				t.Fatalf("Failed() = %v", Failed(results))
			}
			var b strings.Builder
			if err := Write(&b, results, false); err != nil || !strings.Contains(b.String(), tc.remedy) {
				t.Fatalf("the table does not show the remedy:\n%s", b.String())
			}
		})
	}
}

func TestResolvedServerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1": "192.0.2.1", "192.0.2.1:5353": "192.0.2.1", "192.0.2.1%3": "192.0.2.1",
		"fd00::1": "fd00::1", "[fd00::1]:53": "fd00::1", "fd00::1%3": "fd00::1", "[fd00::1%wg0]:53": "fd00::1",
		"[fd00::1]:5353%3#dns.example": "fd00::1", "1.1.1.1#cloudflare-dns.com": "1.1.1.1", "bogus": "", "[": "",
	} {
		a, ok := resolvedServerAddr(in)
		if got := map[bool]string{true: a.String(), false: ""}[ok]; got != want {
			t.Errorf("resolvedServerAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// A configuration file that is not there is a different mistake from one
// that is wrong, and the remedy says so.
func TestDoctorMissingConfig(t *testing.T) {
	env := healthyEnv()
	env.Config = func() (*agent.Config, error) {
		return nil, fmt.Errorf("reading configuration: %w", fs.ErrNotExist)
	}
	res := Run(env)
	if res[0].Status != Fail || !strings.Contains(res[0].Remedy, "write it") {
		t.Fatalf("config: %+v", res[0])
	}
	env.Config = func() (*agent.Config, error) { return nil, errors.New(`"interface": must not be empty`) }
	if res := Run(env); !strings.Contains(res[0].Remedy, "fix the named field") {
		t.Fatalf("config: %+v", res[0])
	}
}

// A detail of several lines stays in its column.
func TestWriteAlignsLinesOfADetail(t *testing.T) {
	var b strings.Builder
	err := Write(&b, []Result{{Name: "dns", Status: Warn, Detail: "first\nsecond", Remedy: "do it"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%q", b.String())
	}
	col := strings.Index(lines[1], "first")
	if col < 0 || strings.Index(lines[2], "second") != col || strings.Index(lines[3], "→") != col {
		t.Errorf("not aligned:\n%s", b.String())
	}
}

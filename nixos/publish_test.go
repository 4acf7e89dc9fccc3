package nixos_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/data-mesher/data-mesher/agent"
)

// published is what dm-agent reads a network's publish entries as, one
// "namespace key value=…" or "namespace key file=…" a line.
func published(t *testing.T, c *agent.Config, label string) []string {
	t.Helper()
	for _, j := range c.JoinedNetworks() {
		if j.Label != label {
			continue
		}
		var out []string
		for _, p := range j.Publish {
			e := p.Namespace + " " + p.Key
			if p.ValueFile != "" {
				e += " file=" + p.ValueFile
			} else {
				e += " value=" + p.Value
			}
			out = append(out, e)
		}
		return out
	}
	t.Fatalf("dm-agent does not join %s", label)
	return nil
}

// TestNixPublish checks the entries other NixOS modules publish, as
// dm-agent reads them from config.json (agent.ParseConfig, Validate): a
// value and a value file in one network, entries and services in every
// network, and a service declaring its SRV record as a dns.services entry
// (key _<name>._<protocol>, value "<priority> <weight> <port>"), where a
// network's own service of one name replaces the global one.
func TestNixPublish(t *testing.T) {
	n := newNix(t)
	for _, service := range []string{"data-mesher", "dm-agent"} {
		m := evalMachine(t, n, example(service, `services.`+service+` = {
	  publish = [ { namespace = "host.info"; key = "os"; value = "NixOS"; } ];
	  services.ssh.port = 22;
	  services.git = { port = 9418; priority = 10; weight = 5; };
	  networks.clan.publish = [ { namespace = "git.mirrors"; key = "repos"; valueFile = "/var/lib/git/mirrors.txt"; } ];
	  networks.clan.services.git.port = 9419;
	  networks.clan.services.dns = { port = 53; protocol = "udp"; };
	};`))
		if len(m.FailedAssertions) > 0 {
			t.Fatalf("%s: failed assertions: %v", service, m.FailedAssertions)
		}
		testPublished(t, service, parseConfig(t, m.ConfigFile.Text))
	}
	// Nothing to publish: no publish key at all (the README's example
	// renders the golden file, which has none).
	if strings.Contains(evalMachine(t, n, example("data-mesher", "")).ConfigFile.Text, "publish") {
		t.Error("config.json has publish entries without any")
	}
}

func testPublished(t *testing.T, service string, c *agent.Config) {
	t.Helper()
	for label, want := range map[string][]string{
		"clan": {
			"host.info os value=NixOS",
			"git.mirrors repos file=/var/lib/git/mirrors.txt",
			"dns.services _dns._udp value=0 0 53",
			"dns.services _git._tcp value=0 0 9419",
			"dns.services _ssh._tcp value=0 0 22",
		},
		"qubasa.clan": {
			"host.info os value=NixOS",
			"dns.services _git._tcp value=10 5 9418",
			"dns.services _ssh._tcp value=0 0 22",
		},
	} {
		if got := published(t, c, label); !slices.Equal(got, want) {
			t.Errorf("services.%s: network %s publishes\n  %q\nwant\n  %q", service, label, got, want)
		}
	}
}

// TestNixSSHHostKeys checks the SSH wiring: with sshd on, every one of
// services.openssh.hostKeys is published in ssh.host-keys in every
// joined network, under its key type, from its .pub file (which dm-agent
// reads at run time); the agent's known_hosts (as config.json names it)
// is in programs.ssh.knownHostsFiles, in the state directory, which lets
// every user reach it; without sshd nothing is published, yet the
// machine still trusts the mesh's keys; both can be turned off.
func TestNixSSHHostKeys(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", `services.openssh.enable = true;
	  services.openssh.hostKeys = [
	    { type = "ed25519"; path = "/etc/ssh/ssh_host_ed25519_key"; }
	    { type = "ecdsa"; bits = 384; path = "/persist/ssh/ecdsa"; }
	    { type = "rsa"; bits = 4096; path = "/etc/ssh/ssh_host_rsa_key"; }
	  ];`))
	c := parseConfig(t, m.ConfigFile.Text)
	want := []string{
		"ssh.host-keys ssh-ed25519 file=/etc/ssh/ssh_host_ed25519_key.pub",
		"ssh.host-keys ecdsa-sha2-nistp384 file=/persist/ssh/ecdsa.pub",
		"ssh.host-keys ssh-rsa file=/etc/ssh/ssh_host_rsa_key.pub",
	}
	for _, label := range []string{"clan", "qubasa.clan"} {
		if got := published(t, c, label); !slices.Equal(got, want) {
			t.Errorf("network %s publishes\n  %q\nwant\n  %q", label, got, want)
		}
	}
	if !slices.Equal(m.KnownHostsFiles, []string{c.KnownHostsFile}) || filepath.Dir(c.KnownHostsFile) != c.StateDir {
		t.Errorf("programs.ssh.knownHostsFiles = %v; the agent writes %s (state directory %s)", m.KnownHostsFiles, c.KnownHostsFile, c.StateDir)
	}
	if mode := octal(t, m.Unit.ServiceConfig["StateDirectoryMode"]); mode&0o001 == 0 {
		t.Errorf("StateDirectoryMode %o: other users' ssh cannot reach %s", mode, c.KnownHostsFile)
	}

	// NixOS's default host keys, without sshd: nothing published, the
	// mesh's keys trusted.
	m = evalMachine(t, n, example("data-mesher", ""))
	c = parseConfig(t, m.ConfigFile.Text)
	if got := published(t, c, "clan"); len(got) != 0 || !slices.Equal(m.KnownHostsFiles, []string{"/var/lib/data-mesher/known_hosts"}) {
		t.Errorf("without sshd: publishes %q, known hosts files %v", got, m.KnownHostsFiles)
	}
	m = evalMachine(t, n, example("data-mesher", `services.openssh.enable = true;
	  services.data-mesher.ssh = { publishHostKeys = false; knownHosts = false; };`))
	if got := published(t, parseConfig(t, m.ConfigFile.Text), "clan"); len(got) != 0 || len(m.KnownHostsFiles) != 0 {
		t.Errorf("both off: publishes %q, known hosts files %v", got, m.KnownHostsFiles)
	}
	// The default host keys with sshd; a known_hosts moved by settings is
	// the one ssh reads; "off" is none.
	m = evalMachine(t, n, example("data-mesher", `services.openssh.enable = true;
	  services.data-mesher.settings.known_hosts_file = "/var/lib/data-mesher/mesh_known_hosts";`))
	c = parseConfig(t, m.ConfigFile.Text)
	if got := published(t, c, "clan"); !slices.Equal(got, []string{"ssh.host-keys ssh-rsa file=/etc/ssh/ssh_host_rsa_key.pub",
		"ssh.host-keys ssh-ed25519 file=/etc/ssh/ssh_host_ed25519_key.pub"}) ||
		!slices.Equal(m.KnownHostsFiles, []string{"/var/lib/data-mesher/mesh_known_hosts"}) || c.KnownHostsFile != m.KnownHostsFiles[0] {
		t.Errorf("default host keys: publishes %q; known hosts files %v, agent's %s", got, m.KnownHostsFiles, c.KnownHostsFile)
	}
	m = evalMachine(t, n, example("data-mesher", `services.data-mesher.settings.known_hosts_file = "off";`))
	if len(m.KnownHostsFiles) != 0 {
		t.Errorf("known_hosts_file off, yet ssh reads %v", m.KnownHostsFiles)
	}
}

// TestNixPublishRefuses gives the publish and services options what the
// agent would refuse, or what would make two entries fight over one key.
func TestNixPublishRefuses(t *testing.T) {
	n := newNix(t)
	for _, c := range []struct{ name, def, want string }{
		{"value and file", `services.data-mesher.networks.clan.publish = [ { namespace = "a"; key = "k"; value = "v"; valueFile = "/f"; } ];`,
			`services.data-mesher.networks."clan": the entry a k (publish, 0) needs exactly one of value and valueFile.`},
		{"neither", `services.data-mesher.publish = [ { namespace = "a"; key = "k"; } ];`,
			`services.data-mesher.networks."clan": the entry a k (publish, 0) needs exactly one of value and valueFile.`},
		{"service name", `services.data-mesher.services._ssh.port = 22;`,
			`services.data-mesher.networks."clan".services: "_ssh" is not a service name`},
		{"one key twice", `services.data-mesher.publish = [ { namespace = "dns.services"; key = "_ssh._tcp"; value = "22"; } ];
		  services.data-mesher.services.ssh.port = 22;`,
			`services.data-mesher.networks."clan" publishes dns.services _ssh._tcp more than once`},
		{"two host keys of a type", `services.openssh.enable = true;
		  services.openssh.hostKeys = [ { type = "ed25519"; path = "/a"; } { type = "ed25519"; path = "/b"; } ];`,
			`services.data-mesher.networks."clan" publishes ssh.host-keys ssh-ed25519 more than once`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := evalMachine(t, n, example("data-mesher", c.def))
			if !slices.ContainsFunc(m.FailedAssertions, func(f string) bool { return strings.Contains(f, c.want) }) {
				t.Errorf("failed assertions %q, want one saying %q", m.FailedAssertions, c.want)
			}
		})
	}
	for _, c := range []struct{ name, def, want string }{
		{"namespace", `services.data-mesher.publish = [ { namespace = "DNS Services"; key = "k"; value = "v"; } ];`,
			"is not of type `namespace name"},
		{"relative value file", `services.data-mesher.publish = [ { namespace = "a"; key = "k"; valueFile = "mirrors.txt"; } ];`,
			"is not of type `null or string matching the pattern /.*'"},
		{"protocol", `services.data-mesher.services.ssh = { port = 22; protocol = "sctp"; };`,
			"A definition for option `services.data-mesher.services.ssh.protocol' is not of type `one of \"tcp\", \"udp\"'"},
		{"port", `services.data-mesher.networks.clan.services.ssh.port = 65536;`,
			"A definition for option `services.data-mesher.networks.clan.services.ssh.port' is not of type `16 bit unsigned integer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if stderr := n.fails(t, moduleExpr(example("data-mesher", c.def))); !strings.Contains(stderr, c.want) {
				t.Errorf("the error does not say %q:\n%s", c.want, stderr)
			}
		})
	}
}

// octal reads a mode the unit gives as text ("0751").
func octal(t *testing.T, v any) uint32 {
	t.Helper()
	m, err := strconv.ParseUint(fmt.Sprint(v), 8, 32)
	if err != nil {
		t.Fatalf("mode %v: %v", v, err)
	}
	return uint32(m)
}

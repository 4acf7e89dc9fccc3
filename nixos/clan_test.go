package nixos_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Public vars of the sample clan (clan vars generate would write them).
const (
	meshKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV data-mesher mesh"
	labKey   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY data-mesher lab"
	gateKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAROw/tVKY0Y4y4g49kk8i0dyjc//t/o7LlqJgNWiS6B gate"
	ghostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHGWs6oAA7X4TgDn8J//9HQXTlOtOQIR6ycf+cY0jtHP ghost"
)

// sampleInventory is the clan of the tests: inventory.instances as clan's
// inventory hands them to the service evaluator (tags resolved). mesh has
// an admin (gate, with solo), signers (gate, ghost) and peers; beta also
// joins lab and claims an extra name in mesh.
const sampleInventory = `{
  mesh.roles = {
    peer.settings = { priority = 1.5; bootstrapPeers = [ "http://[fd27::1]:7331" ]; };
    peer.machines = {
      gate = { };
      beta.settings.extraHostNames = [ "git" "www.beta" ];
      ghost = { };
      solo = { };
    };
    signer.machines = { gate = { }; ghost = { }; };
    admin.settings = { hostTTL = "672h"; aliases = { wiki = "gate"; www = "example.org."; }; };
    admin.machines = { gate = { }; solo = { }; };
  };
  lab.roles.peer.machines.beta.settings = { domain = "lab"; priority = 2; };
}`

// clanDir writes a clan's public vars: the networks' keys, and the node
// keys of the machines given (a signer without one has not run clan vars
// generate yet).
func clanDir(t *testing.T, nodes map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, value string) {
		p := filepath.Join(dir, "vars", rel, "value")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("shared/data-mesher-network-mesh/network.pub", meshKey)
	write("shared/data-mesher-network-lab/network.pub", labKey)
	for m, k := range nodes {
		write("per-machine/"+m+"/data-mesher-node/node.pub", k)
	}
	return dir
}

// clanMachine is what testdata/clan.nix reports for one machine.
type clanMachine struct {
	FailedAssertions []string
	Warnings         []string
	Agent            *struct {
		Interface    string
		OpenFirewall bool
		KeyFile      string
		Hostnames    []string
		Networks     map[string]struct {
			Pubkey         string
			Domain         string
			Priority       float64
			BootstrapPeers []string
			Hostnames      []string
		}
		ConfigFile string
	}
	Generators map[string]struct {
		Share         bool
		Dependencies  []string
		Script        string
		RuntimeInputs []string
		Files         map[string]struct {
			Secret, Deploy bool
			Path           *string
		}
	}
	Units map[string]struct {
		Description               string
		Script                    string
		After, Requires, WantedBy []string
		ServiceConfig             map[string]any
	}
}

type clanReport struct {
	Machines map[string]clanMachine
	Roles    []string
	Manifest struct {
		Name, Readme string
		Categories   []string
	}
	Schema map[string][]string
}

func clanExpr(dir, instances string) string {
	return fmt.Sprintf(`{ libPath, clanPath }: import ./testdata/clan.nix {
	  lib = import libPath; inherit clanPath; directory = %s; machines = [ "outsider" ];
	  instances = %s; }`, strconv.Quote(dir), instances)
}

func evalClan(t *testing.T, n *nix, dir, instances string) (clanReport, string) {
	t.Helper()
	out, stderr := n.eval(t, clanExpr(dir, instances))
	var r clanReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("testdata/clan.nix: %v\n%s", err, out)
	}
	return r, stderr
}

// TestNixClanService evaluates the clan service through clan-core's own
// service evaluator for the sample inventory, and each machine's NixOS
// module with clan's vars schema: no warning from clan-core or anyone,
// every assertion holds, and each machine runs one agent with the networks,
// names, keys and admin units described in the README.
func TestNixClanService(t *testing.T) {
	n := newNix(t).withClan(t)
	dir := clanDir(t, map[string]string{"gate": gateKey, "ghost": ghostKey})
	got, stderr := evalClan(t, n, dir, sampleInventory)
	if strings.Contains(stderr, "=== WARNING ===") || strings.Contains(stderr, "warning") {
		t.Errorf("the evaluation warns:\n%s", stderr)
	}

	if got.Manifest.Name != "dm-agent" || !slices.Equal(got.Roles, []string{"admin", "peer", "signer"}) ||
		!slices.Equal(got.Manifest.Categories, []string{"Network"}) || !strings.Contains(got.Manifest.Readme, "One instance is one network") {
		t.Errorf("manifest %+v, roles %v", got.Manifest, got.Roles)
	}
	// The settings clan's API offers for each role.
	for role, want := range map[string][]string{
		"peer":   {"bootstrapPeers", "domain", "extraHostNames", "interface", "priority"},
		"admin":  {"aliases", "hostTTL", "namespaces"},
		"signer": nil,
	} {
		if !slices.Equal(got.Schema[role], want) {
			t.Errorf("role %s offers settings %v, want %v", role, got.Schema[role], want)
		}
	}

	type net struct {
		pubkey, domain string
		priority       float64
		peers, names   []string
	}
	mesh := func(names ...string) net {
		return net{meshKey, "clan", 1.5, []string{"http://[fd27::1]:7331"}, names}
	}
	want := map[string]map[string]net{
		"gate":  {"mesh": mesh("gate")},
		"ghost": {"mesh": mesh("ghost")},
		"solo":  {"mesh": mesh("solo")},
		"beta":  {"mesh": mesh("beta", "git", "www.beta"), "lab": {labKey, "lab", 2, []string{}, []string{"beta"}}},
	}
	for name, nets := range want {
		m := got.Machines[name]
		if len(m.FailedAssertions) > 0 || len(m.Warnings) > 0 {
			t.Errorf("%s: assertions fail: %v; warnings %v", name, m.FailedAssertions, m.Warnings)
		}
		a := m.Agent
		if a == nil {
			t.Fatalf("%s runs no agent", name)
		}
		if a.Interface != "wg0" || !a.OpenFirewall || a.KeyFile != "/run/secrets/per-machine/"+name+"/data-mesher-node/node.key" {
			t.Errorf("%s: services.dm-agent = %+v", name, a)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(a.Networks)), slices.Sorted(maps.Keys(nets))) {
			t.Errorf("%s joins %v, want %v", name, slices.Sorted(maps.Keys(a.Networks)), slices.Sorted(maps.Keys(nets)))
		}
		for label, w := range nets {
			n := a.Networks[label]
			if n.Pubkey != w.pubkey || n.Domain != w.domain || n.Priority != w.priority || !slices.Equal(n.BootstrapPeers, w.peers) ||
				!slices.Equal(n.Hostnames, w.names) {
				t.Errorf("%s: network %s = %+v, want %+v", name, label, n, w)
			}
		}
		// dm-agent accepts the machine's configuration, with the names
		// and networks as the inventory says.
		c := parseConfig(t, a.ConfigFile)
		for _, j := range c.JoinedNetworks() {
			if w := nets[j.Label]; !slices.Equal(j.Hostnames, w.names) || j.ID.AuthorizedKey()+" data-mesher "+j.Label != w.pubkey {
				t.Errorf("%s: dm-agent reads network %s as %+v", name, j.Label, j)
			}
		}

		gens := m.Generators
		node := gens["data-mesher-node"]
		if node.Share || !strings.Contains(node.Script, `dm-agent keygen --out "$out/node.key" --comment `+name+` > "$out/node.pub"`) ||
			node.Files["node.pub"].Secret || !node.Files["node.key"].Secret || !slices.Equal(node.RuntimeInputs, []string{"data-mesher"}) {
			t.Errorf("%s: node key generator %+v", name, node)
		}
		for _, inst := range []string{"mesh", "lab"} {
			g, defined := gens["data-mesher-network-"+inst]
			if _, member := nets[inst]; defined != member {
				t.Errorf("%s: network key generator for %s: defined %v, member %v", name, inst, defined, member)
				continue
			}
			if !defined {
				continue
			}
			// clan refuses a shared generator defined differently on two
			// machines: the private half is deployed nowhere, and admins
			// copy it with a generator of their own.
			if !g.Share || g.Files["network.key"].Deploy || g.Files["network.pub"].Secret {
				t.Errorf("%s: network key of %s: the private half must not be deployed, the public one not secret: %+v", name, inst, g)
			}
			admin := inst == "mesh" && (name == "gate" || name == "solo")
			a, hasAdminGen := gens["data-mesher-admin-"+inst]
			if hasAdminGen != admin {
				t.Errorf("%s: admin key generator for %s: %v, want %v", name, inst, hasAdminGen, admin)
			} else if admin && (a.Share || !slices.Equal(a.Dependencies, []string{"data-mesher-network-" + inst}) ||
				!strings.Contains(a.Script, `cp "$in"/data-mesher-network-`+inst+`/network.key "$out/network.key"`) || !a.Files["network.key"].Deploy) {
				t.Errorf("%s: admin key generator for %s: %+v", name, inst, a)
			}
		}
		for gname, g := range gens {
			if err := exec.Command("bash", "-n", "-c", g.Script).Run(); err != nil {
				t.Errorf("%s: generator %s script: %v", name, gname, err)
			}
		}
	}

	// As clan-cli checks: a shared generator is defined alike on every
	// machine that has it (files, dependencies, script).
	shared := map[string][2]string{}
	for name, m := range got.Machines {
		for gname, g := range m.Generators {
			if !g.Share {
				continue
			}
			def, _ := json.Marshal(g)
			if prev, ok := shared[gname]; ok && prev[1] != string(def) {
				t.Errorf("shared generator %s differs between %s and %s:\n%s\n%s", gname, prev[0], name, prev[1], def)
			}
			shared[gname] = [2]string{name, string(def)}
		}
	}

	// The admins publish mesh's settings, with the signers (gate, ghost)
	// as witnesses, read from their public vars, and the admins' hostTTL.
	for _, name := range []string{"gate", "solo"} {
		units := got.Machines[name].Units
		pub, ok := units["data-mesher-settings-mesh"]
		if !ok || len(units) != 1 {
			t.Fatalf("admin %s: units %v, want data-mesher-settings-mesh", name, slices.Collect(maps.Keys(units)))
		}
		if err := exec.Command("bash", "-n", "-c", pub.Script).Run(); err != nil {
			t.Errorf("admin %s: the publishing script is not valid shell: %v\n%s", name, err, pub.Script)
		}
		for _, w := range []string{gateKey, ghostKey} {
			if strings.Count(pub.Script, "--witness '"+w+"'") != 2 {
				t.Errorf("admin %s does not name %s as witness on both paths:\n%s", name, w, pub.Script)
			}
		}
		if lc := strs(pub.ServiceConfig["LoadCredential"]); len(lc) != 1 || lc[0] != "network-key:/run/secrets/per-machine/"+name+"/data-mesher-admin-mesh/network.key" {
			t.Errorf("admin %s: LoadCredential %v", name, lc)
		}
		if !slices.Equal(pub.Requires, []string{"data-mesher.service"}) || !slices.Equal(pub.WantedBy, []string{"multi-user.target"}) {
			t.Errorf("admin %s: unit %+v", name, pub)
		}
	}
	testCreatingScript(t, got.Machines["gate"].Units["data-mesher-settings-mesh"].Script, "mesh",
		"--host-ttl 672h --witness "+gateKey+" --witness "+ghostKey)
	for _, name := range []string{"beta", "ghost"} {
		if units := got.Machines[name].Units; len(units) != 0 {
			t.Errorf("%s is no admin, yet runs %v", name, slices.Collect(maps.Keys(units)))
		}
	}
	if m := got.Machines["outsider"]; m.Agent != nil || len(m.Generators) != 0 || len(m.Units) != 0 {
		t.Errorf("a machine in no instance: %+v", m)
	}
}

// TestNixClanSignerWithoutKey checks that a signer whose vars are not
// generated yet is left out of the witnesses with a warning that says what
// to run, and that the network is still published.
func TestNixClanSignerWithoutKey(t *testing.T) {
	n := newNix(t).withClan(t)
	got, stderr := evalClan(t, n, clanDir(t, map[string]string{"gate": gateKey}), sampleInventory)
	if !strings.Contains(stderr, "dm-agent: signer ghost has no node key yet (run `clan vars generate ghost`)") {
		t.Errorf("no warning for the signer without a key:\n%s", stderr)
	}
	if strings.Contains(stderr, "=== WARNING ===") {
		t.Errorf("clan-core warns:\n%s", stderr)
	}
	s := got.Machines["gate"].Units["data-mesher-settings-mesh"].Script
	if strings.Count(s, "--witness") != 2 || !strings.Contains(s, gateKey) {
		t.Errorf("the witnesses are not just gate:\n%s", s)
	}
}

// TestNixClanRefuses gives the clan service inventories it must refuse,
// and checks what clan-core's evaluator, the module system or the
// service's assertions say.
func TestNixClanRefuses(t *testing.T) {
	n := newNix(t).withClan(t)
	dir := clanDir(t, map[string]string{"gate": gateKey, "ghost": ghostKey})
	for _, c := range []struct {
		name, instances string
		// machine whose assertion fails; empty: the evaluation fails.
		machine string
		want    []string
	}{
		{"settings on the signer role", `{ mesh.roles = { peer.machines.gate = { }; signer.settings.domain = "x"; signer.machines.gate = { }; }; }`,
			"", []string{"The option `data-mesher-dm-agent.instances.mesh.roles.signer.machines.gate.settings.domain' does not exist.",
				"Via clan.service module: instances.mesh.roles.signer.settings"}},
		{"settings on one signer", `{ mesh.roles = { peer.machines.gate = { }; signer.machines.gate.settings.interface = "wg1"; }; }`,
			"", []string{"The option `data-mesher-dm-agent.instances.mesh.roles.signer.machines.gate.settings.interface' does not exist."}},
		{"a misspelt peer setting", `{ mesh.roles.peer.machines.gate.settings.bootstrap_peers = [ ]; }`,
			"", []string{"The option `data-mesher-dm-agent.instances.mesh.roles.peer.machines.gate.settings.bootstrap_peers' does not exist.",
				"Did you mean `data-mesher-dm-agent.instances.mesh.roles.peer.machines.gate.settings.bootstrapPeers'"}},
		{"an interface with a command", `{ mesh.roles.peer.settings.interface = "wg0; reboot"; mesh.roles.peer.machines.gate = { }; }`,
			"", []string{"A definition for option `data-mesher-dm-agent.instances.mesh.roles.peer.machines.gate.settings.interface' is not of type `Linux network interface name'"}},
		{"a host TTL that is no duration", `{ mesh.roles = { peer.machines.gate = { }; admin.machines.gate.settings.hostTTL = "4 weeks"; }; }`,
			"", []string{"A definition for option `data-mesher-dm-agent.instances.mesh.roles.admin.machines.gate.settings.hostTTL' is not of type `null or duration"}},
		{"an admin that is no peer", `{ mesh.roles = { peer.machines.beta = { }; admin.machines.gate = { }; }; }`,
			"gate", []string{"dm-agent: machine gate is admin of instance mesh but not a peer",
				"services.dm-agent.networks is empty"}},
		{"peers with different domains", `{ mesh.roles.peer.machines = { gate = { }; beta.settings.domain = "other"; }; }`,
			"gate", []string{"dm-agent: the peers of instance mesh give different domains (other clan)"}},
		{"admins with different host TTLs", `{ mesh.roles = { peer.machines = { gate = { }; solo = { }; }; admin.machines = { gate.settings.hostTTL = "24h"; solo = { }; }; }; }`,
			"gate", []string{"dm-agent: the admins of instance mesh give different hostTTL settings (24h, null)"}},
		{"admins with different namespaces", `{ mesh.roles = { peer.machines = { gate = { }; solo = { }; };
		    admin.machines = { gate.settings.namespaces."dns.services".lifetime = "24h"; solo = { }; }; }; }`,
			"gate", []string{"dm-agent: the admins of instance mesh declare different namespaces"}},
		{"admins pointing an alias two ways", `{ mesh.roles = { peer.machines = { gate = { }; solo = { }; };
		    admin.machines = { gate.settings.aliases.wiki = "gate"; solo.settings.aliases = { wiki = "solo"; www = "solo"; }; }; }; }`,
			"gate", []string{"dm-agent: the admins of instance mesh point alias wiki at different targets (gate, solo)"}},
		{"two interfaces", `{ mesh.roles.peer.machines.beta = { }; lab.roles.peer.machines.beta.settings = { domain = "lab"; interface = "wg1"; }; }`,
			"beta", []string{"dm-agent: one agent serves one WireGuard interface, but the networks of machine beta name several: wg1 wg0."}},
		{"two instances, one domain", `{ mesh.roles.peer.machines.beta = { }; lab.roles.peer.machines.beta = { }; }`,
			"beta", []string{"dm-agent: each network of machine beta needs its own domain; they are: clan clan.",
				`services.dm-agent.networks: "lab" and "mesh" have the same domain clan`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.machine == "" {
				stderr := n.fails(t, clanExpr(dir, c.instances))
				for _, w := range c.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("the error does not say %q:\n%s", w, stderr)
					}
				}
				return
			}
			got, _ := evalClan(t, n, dir, c.instances)
			f := got.Machines[c.machine].FailedAssertions
			if len(f) != len(c.want) {
				t.Errorf("%s: failed assertions %q, want %d", c.machine, f, len(c.want))
			}
			for _, w := range c.want {
				if !slices.ContainsFunc(f, func(m string) bool { return strings.Contains(m, w) }) {
					t.Errorf("%s: no failed assertion says %q: %q", c.machine, w, f)
				}
			}
		})
	}
}

package nixos_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/data-mesher/data-mesher/agent"
)

// machine is what testdata/module.nix reports for one machine.
type machine struct {
	Options          []string
	Undocumented     []string
	FailedAssertions []string
	Warnings         []string
	Settings         json.RawMessage
	ConfigFile       *struct{ Name, Text, Mode string }
	Unit             *struct {
		Description                     string
		WantedBy, Wants, After, BindsTo []string
		ReloadTriggers                  []string
		ServiceConfig                   map[string]any
	}
	// The other units (the admins'), by name.
	Units map[string]struct {
		Description               string
		Script                    string
		After, Requires, WantedBy []string
		ServiceConfig             map[string]any
	}
	Users map[string]struct {
		IsSystemUser bool
		Group        string
	}
	Groups          []string
	KnownHostsFiles []string
	Firewall        map[string]struct {
		AllowedTCPPorts, AllowedUDPPorts []int
	}
	SystemPackages []string
	Package        *struct{ Name string }
}

// moduleExpr is the expression evaluating testdata/module.nix with the
// given arguments (Nix attribute definitions, `config = …;` among them).
func moduleExpr(args string) string {
	return "{ libPath }: import ./testdata/module.nix { lib = import libPath; " + args + " }"
}

// example is the README's configuration for the module's instance, plus
// more definitions.
func example(service, more string) string {
	return fmt.Sprintf("service = %q; config = { lib, ... }: { imports = [ (import ./testdata/example.nix %[1]q) ]; %s };", service, more)
}

func evalMachine(t *testing.T, n *nix, args string) machine {
	t.Helper()
	out, _ := n.eval(t, moduleExpr(args))
	var m machine
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("testdata/module.nix: %v\n%s", err, out)
	}
	return m
}

// matchGolden checks that rendered JSON means the same as
// testdata/example.golden.json (key order and spacing aside).
func matchGolden(t *testing.T, what string, rendered []byte) {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join("testdata", "example.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(rendered, &got); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, rendered)
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatalf("example.golden.json: %v", err)
	}
	gotJSON, _ := json.MarshalIndent(got, "", "  ")
	wantJSON, _ := json.MarshalIndent(want, "", "  ")
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("%s differs from example.golden.json:\ngot  %s\nwant %s", what, gotJSON, wantJSON)
	}
}

// parseConfig reads a rendered config.json as dm-agent does and checks it.
func parseConfig(t *testing.T, text string) *agent.Config {
	t.Helper()
	c, err := agent.ParseConfig([]byte(text))
	if err != nil {
		t.Fatalf("dm-agent rejects the module's configuration: %v\n%s", err, text)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("dm-agent finds the module's configuration invalid: %v\n%s", err, text)
	}
	return c
}

func strs(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
	}
	return out
}

// TestNixExampleRenders evaluates the README's configuration with the real
// module system and compares the config.json it writes with the golden
// file, then checks that dm-agent accepts it and reads it as intended.
func TestNixExampleRenders(t *testing.T) {
	n := newNix(t)
	for _, service := range []string{"data-mesher", "dm-agent"} {
		m := evalMachine(t, n, example(service, ""))
		if len(m.FailedAssertions) > 0 || len(m.Warnings) > 0 {
			t.Errorf("%s: assertions fail: %v; warnings: %v", service, m.FailedAssertions, m.Warnings)
		}
		if m.ConfigFile == nil {
			t.Fatalf("%s: no /etc/data-mesher/config.json", service)
		}
		matchGolden(t, "services."+service+"'s config.json", []byte(m.ConfigFile.Text))
		c := parseConfig(t, m.ConfigFile.Text)
		if c.Interface != "wg0" {
			t.Errorf("interface = %q, want wg0", c.Interface)
		}
		if len(c.DNS.Listen) != 0 {
			t.Errorf("dns.listen = %v, want DNS on the tunnel address only", c.DNS.Listen)
		}
		if len(c.DNS.Forwarders) != 0 {
			t.Errorf("forwarders = %v: the default must not forward (never an open resolver)", c.DNS.Forwarders)
		}
		joined := c.JoinedNetworks()
		if len(joined) != 2 {
			t.Fatalf("joined %d networks, want 2: %+v", len(joined), joined)
		}
		want := []struct {
			label, key, peer string
			prio             float64
		}{
			{"clan", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV", "http://[fd16:aa77:dbef:737b:3799:9316:aa77:dbef]:7331", 2},
			{"qubasa.clan", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY", "http://[fd27:bb88:dbef:737b:3799:9318:aa77:ec12]:7331", 1},
		}
		for i, w := range want {
			j := joined[i]
			if j.Label != w.label || j.Priority != w.prio || !slices.Equal(j.Bootstrap, []string{w.peer}) {
				t.Errorf("network %d = %s prio %v peers %v, want %s prio %v peers [%s]", i, j.Label, j.Priority, j.Bootstrap, w.label, w.prio, w.peer)
			}
			if j.ID.AuthorizedKey() != w.key {
				t.Errorf("network %s: key %s, want %s", j.Label, j.ID.AuthorizedKey(), w.key)
			}
			if !slices.Equal(j.Hostnames, []string{"mors"}) {
				t.Errorf("network %s claims %v, want [mors] (networking.hostName)", j.Label, j.Hostnames)
			}
		}
		if got := c.KeyPath(); got != "/var/lib/data-mesher/node.key" {
			t.Errorf("without keyFile the key lives in the state directory; got %s", got)
		}
	}
}

// TestNixKeyFileAndPerNetworkNames covers the options the example leaves at
// their defaults: a key file passed as a systemd credential, names claimed
// in one network only, the log level and forwarders, and a float priority.
func TestNixKeyFileAndPerNetworkNames(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", `services.data-mesher = {
	  keyFile = "/run/secrets/dm-node";
	  hostnames = [ "mors" "www" ];
	  networks.clan.hostnames = [ "mors" ];
	  networks.clan.priority = lib.mkForce 1.5;
	  logLevel = "debug";
	  dns.forwarders = [ "9.9.9.9:53" ];
	};`))
	c := parseConfig(t, m.ConfigFile.Text)
	t.Setenv("CREDENTIALS_DIRECTORY", "/run/credentials/data-mesher.service")
	if got := c.KeyPath(); got != "/run/credentials/data-mesher.service/node-key" {
		t.Errorf("key path %s, want the systemd credential node-key", got)
	}
	for _, j := range c.JoinedNetworks() {
		want, prio := []string{"mors", "www"}, 1.0
		if j.Label == "clan" {
			want, prio = []string{"mors"}, 1.5
		}
		if !slices.Equal(j.Hostnames, want) || j.Priority != prio {
			t.Errorf("network %s claims %v with priority %v, want %v with %v", j.Label, j.Hostnames, j.Priority, want, prio)
		}
	}
	if c.Log.Level != "debug" || !slices.Equal(c.DNS.Forwarders, []string{"9.9.9.9:53"}) {
		t.Errorf("log level %q forwarders %v", c.Log.Level, c.DNS.Forwarders)
	}
	if lc := strs(m.Unit.ServiceConfig["LoadCredential"]); !slices.Equal(lc, []string{"node-key:/run/secrets/dm-node"}) {
		t.Errorf("LoadCredential = %v, want the key file as credential node-key", lc)
	}
	if pre := strs(m.Unit.ServiceConfig["ExecStartPre"]); len(pre) != 0 {
		t.Errorf("with a keyFile nothing is generated; ExecStartPre = %v", pre)
	}
}

// TestNixSettings checks the module's `settings`: each rendered key is a
// default that a user's value replaces alone (settings.dns.forwarders
// keeps dns.json_file), and unset keys stay out of config.json.
func TestNixSettings(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", `services.data-mesher.settings = {
	  dns.forwarders = [ "9.9.9.9:53" ];
	  log.level = "debug";
	  sync_interval = "5s";
	  networks.clan.priority = 3;
	};`))
	c := parseConfig(t, m.ConfigFile.Text)
	if !slices.Equal(c.DNS.Forwarders, []string{"9.9.9.9:53"}) || c.Log.Level != "debug" || c.Log.Format != "text" ||
		c.DNS.JSONFile != "/var/lib/data-mesher/dns.json" || len(c.JoinedNetworks()) != 2 || c.SyncInterval != agent.Duration(5e9) {
		t.Errorf("settings merged with the user's: %s", m.ConfigFile.Text)
	}
	if j := c.JoinedNetworks()[0]; j.Label != "clan" || j.Priority != 3 || len(j.Bootstrap) != 1 {
		t.Errorf("networks.clan.priority replaced alone? %+v", j)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(m.ConfigFile.Text), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bind_address", "heartbeat", "max_skew"} {
		if _, ok := raw[k]; ok {
			t.Errorf("unset %s is in config.json: %s", k, m.ConfigFile.Text)
		}
	}
}

// configKeys lists the keys of a JSON configuration type as settings.nix
// names its options: nested objects by path (ports.gossip), maps of
// objects as name and entries (networks, networks.<name>.pubkey).
func configKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct:
			keys = append(keys, configKeys(prefix+name+".", ft)...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, prefix+name)
			keys = append(keys, configKeys(prefix+name+".<name>.", ft.Elem())...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, prefix+name)
			keys = append(keys, configKeys(prefix+name+".*.", ft.Elem())...)
		default:
			keys = append(keys, prefix+name)
		}
	}
	return keys
}

// TestNixSettingsMatchAgentConfig checks that settings.nix declares exactly
// the keys dm-agent reads (agent.Config's JSON keys): a key added to the
// agent needs its option, or NixOS users cannot set it; an option the
// agent does not know would make it refuse to start.
func TestNixSettingsMatchAgentConfig(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", ""))
	var declared []string
	for _, o := range m.Options {
		if k, ok := strings.CutPrefix(o, "settings."); ok {
			declared = append(declared, k)
		}
	}
	want := configKeys("", reflect.TypeFor[agent.Config]())
	slices.Sort(declared)
	slices.Sort(want)
	if !slices.Equal(declared, want) {
		t.Errorf("nixos/settings.nix declares\n  %v\nagent.Config has\n  %v", declared, want)
	}
}

// TestNixModuleRefuses gives the module what the real module system must
// refuse, and checks the error it gives: wrong types, misspelt options
// (with nixpkgs' "Did you mean" suggestion), a shell command as interface,
// a key that is not ed25519, two networks with one domain, and a typo in
// the settings file's keys.
func TestNixModuleRefuses(t *testing.T) {
	n := newNix(t)
	const key2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV"
	for _, c := range []struct {
		name, def string
		want      []string
	}{
		{"logLevel verbose", `services.data-mesher.logLevel = "verbose";`, []string{
			"A definition for option `services.data-mesher.logLevel' is not of type `one of \"debug\", \"info\", \"warn\", \"error\"'",
			`"verbose"`}},
		{"ports.dns 70000", `services.data-mesher.ports.dns = 70000;`, []string{
			"A definition for option `services.data-mesher.ports.dns' is not of type `16 bit unsigned integer; between 0 and 65535 (both inclusive)'",
			"70000"}},
		{"ports.gossip -1", `services.data-mesher.ports.gossip = -1;`, []string{
			"A definition for option `services.data-mesher.ports.gossip' is not of type `16 bit unsigned integer; between 0 and 65535 (both inclusive)'"}},
		{"intreface", `services.data-mesher.intreface = "wg0";`, []string{
			"The option `services.data-mesher.intreface' does not exist.",
			"Did you mean `services.data-mesher.interface'"}},
		{"networks.clan.bootstrap_peers", `services.data-mesher.networks.clan.bootstrap_peers = [ ];`, []string{
			"The option `services.data-mesher.networks.clan.bootstrap_peers' does not exist.",
			"Did you mean `services.data-mesher.networks.clan.bootstrapPeers'"}},
		{"serviceConfg", `systemd.services.data-mesher.serviceConfg.User = "root";`, []string{
			"The option `systemd.services.data-mesher.serviceConfg' does not exist.",
			"Did you mean `systemd.services.data-mesher.serviceConfig'"}},
		{"settings.tsa_url", `services.data-mesher.settings.tsa_url = [ "http://tsa" ];`, []string{
			"The option `services.data-mesher.settings.tsa_url' does not exist.",
			"Did you mean `services.data-mesher.settings.tsa_urls'"}},
		{"settings.ports.dns 70000", `services.data-mesher.settings.ports.dns = 70000;`, []string{
			"A definition for option `services.data-mesher.settings.ports.dns' is not of type `null or 16 bit unsigned integer"}},
		{"interface with a command", `services.data-mesher.interface = "wg 0; rm -rf /";`, []string{
			"A definition for option `services.data-mesher.interface' is not of type `Linux network interface name'"}},
		{"interface too long", `services.data-mesher.interface = "wireguard-mesh-0";`, []string{
			"A definition for option `services.data-mesher.interface' is not of type `Linux network interface name'"}},
		{"pubkey rsa", `services.data-mesher.networks.clan.pubkey = lib.mkForce "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ";`, []string{
			"A definition for option `services.data-mesher.networks.clan.pubkey' is not of type `OpenSSH ed25519 public key"}},
		{"pubkey truncated", `services.data-mesher.networks.clan.pubkey = lib.mkForce "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza";`, []string{
			"A definition for option `services.data-mesher.networks.clan.pubkey' is not of type `OpenSSH ed25519 public key"}},
		{"duplicate domain", `services.data-mesher.networks.other = { pubkey = "` + key2 + `"; domain = "qubasa.clan"; };`, []string{
			"Failed assertions:",
			`services.data-mesher.networks: "other" and "qubasa.clan" have the same domain qubasa.clan`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The machine's system is built only when its assertions
			// hold (as NixOS does).
			stderr := n.fails(t, moduleExpr(example("data-mesher", c.def)+" checkAssertions = true;"))
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("the error does not say %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestNixModuleUnit checks the unit the module makes: the options exist
// and are documented, the unit is hardened as promised, bound to the
// WireGuard unit when there is one, the key stays out of the store, split
// DNS routes only the mesh domains, and the firewall opens the ports on
// the mesh interface only.
func TestNixModuleUnit(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", `services.resolved.enable = true;
	  networking.wireguard.interfaces.wg0 = { };`))

	for _, o := range []string{"enable", "interface", "openFirewall", "networks", "package", "hostnames", "keyFile",
		"ports.gossip", "ports.http", "ports.dns", "dns.listen", "dns.forwarders", "splitDNS", "tsaUrls", "logLevel", "settings",
		"networks.<name>.pubkey", "networks.<name>.priority", "networks.<name>.bootstrapPeers", "networks.<name>.domain",
		"publish", "services", "ssh.publishHostKeys", "ssh.knownHosts", "networks.<name>.publish", "networks.<name>.services",
		"networks.<name>.services.<name>.port", "networks.<name>.services.<name>.protocol",
		"networks.<name>.admin.keyFile", "networks.<name>.admin.namespaces", "networks.<name>.admin.namespaces.<name>.writers",
		"networks.<name>.admin.aliases", "networks.<name>.admin.witnesses", "networks.<name>.admin.hostTTL",
		"networks.<name>.admin.createSettings"} {
		if !slices.Contains(m.Options, o) {
			t.Errorf("option services.data-mesher.%s is not declared", o)
		}
	}
	if len(m.Undocumented) > 0 {
		t.Errorf("options without a description: %v", m.Undocumented)
	}
	if len(m.FailedAssertions) > 0 {
		t.Errorf("assertions fail for the example: %v", m.FailedAssertions)
	}

	unit := m.Unit
	sc := unit.ServiceConfig
	for k, v := range map[string]any{
		"Type": "notify", "User": "data-mesher", "Group": "data-mesher", "StateDirectory": "data-mesher",
		"ProtectSystem": "strict", "ProtectHome": true, "PrivateTmp": true, "NoNewPrivileges": true,
		"RestrictSUIDSGID": true, "RemoveIPC": true,
	} {
		if sc[k] != v {
			t.Errorf("%s = %v, want %v", k, sc[k], v)
		}
	}
	if _, ok := sc["DynamicUser"]; ok {
		t.Errorf("DynamicUser = %v: its state directory sits under /var/lib/private (0700), out of other services' reach", sc["DynamicUser"])
	}
	// A static user and group, so that other services can be given the
	// group; the state directory lets the group in and others through to
	// a file they may read (known_hosts); the umask keeps the group's bits
	// of the directories the agent makes (the files view's, 0750).
	if u := m.Users["data-mesher"]; len(m.Users) != 1 || !u.IsSystemUser || u.Group != "data-mesher" || !slices.Equal(m.Groups, []string{"data-mesher"}) {
		t.Errorf("users %+v, groups %v; want the system user data-mesher in its group", m.Users, m.Groups)
	}
	if mode := octal(t, sc["StateDirectoryMode"]); mode != 0o751 {
		t.Errorf("StateDirectoryMode = %o, want 751", mode)
	}
	if umask := octal(t, sc["UMask"]); 0o750&^umask != 0o750 || 0o777&^umask&0o007 != 0 {
		t.Errorf("UMask = %o: directories made 0750 become %o", umask, 0o750&^umask)
	}
	if strs(sc["WatchdogSec"]) == nil {
		t.Error("no WatchdogSec")
	}
	if len(strs(sc["SystemCallFilter"])) == 0 {
		t.Error("no SystemCallFilter")
	}
	if got := strs(sc["AmbientCapabilities"]); !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"}) {
		t.Errorf("AmbientCapabilities = %v", got)
	}
	if got := strs(sc["CapabilityBoundingSet"]); !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"}) {
		t.Errorf("CapabilityBoundingSet = %v", got)
	}
	if got := strs(sc["RestrictAddressFamilies"]); !slices.Equal(got, []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies = %v", got)
	}
	if got := strs(sc["ExecStart"]); len(got) != 1 || got[0] != stubStore+"data-mesher/bin/dm-agent run --config /etc/data-mesher/config.json" {
		t.Errorf("ExecStart = %v", got)
	}
	// A changed configuration reloads the agent instead of restarting it.
	if !slices.Equal(unit.ReloadTriggers, []string{stubStore + "data-mesher.json"}) || m.ConfigFile.Name != "data-mesher.json" {
		t.Errorf("reloadTriggers %v, config file %s", unit.ReloadTriggers, m.ConfigFile.Name)
	}
	if !slices.Contains(unit.After, "wireguard-wg0.service") || !slices.Equal(unit.BindsTo, []string{"wireguard-wg0.service"}) ||
		!slices.Contains(unit.WantedBy, "wireguard-wg0.service") {
		t.Errorf("with wg0 declared: after %v, bindsTo %v, wantedBy %v; want all on wireguard-wg0.service", unit.After, unit.BindsTo, unit.WantedBy)
	}
	if pre := strs(sc["ExecStartPre"]); len(pre) != 1 || !strings.Contains(pre[0], "keygen --if-missing --out /var/lib/data-mesher/node.key --comment mors") {
		t.Errorf("without keyFile the key is made on first start; ExecStartPre = %v", pre)
	}
	if lc := strs(sc["LoadCredential"]); len(lc) != 0 {
		t.Errorf("LoadCredential = %v without a keyFile", lc)
	}
	post := strs(sc["ExecStartPost"])
	if len(post) != 1 || !strings.HasPrefix(post[0], "+"+stubStore+"data-mesher-resolved\n") {
		t.Fatalf("split DNS: ExecStartPost = %q, want one script run as root", post)
	}
	testResolvedSetup(t, scriptText(t, post[0][1:]), "wg0", "'~clan' '~qubasa.clan'")
	fw := m.Firewall
	if len(fw) != 1 || !slices.Equal(fw["wg0"].AllowedTCPPorts, []int{7946, 7331, 53}) || !slices.Equal(fw["wg0"].AllowedUDPPorts, []int{7946, 53}) {
		t.Errorf("firewall = %+v, want gossip/http/dns on wg0 only", fw)
	}

	// The networkd backend has no wireguard-wg0.service to bind to.
	u := evalMachine(t, n, example("data-mesher", `networking.wireguard = { useNetworkd = true; interfaces.wg0 = { }; };`)).Unit
	if len(u.BindsTo) != 0 || slices.Contains(u.After, "wireguard-wg0.service") || slices.Contains(u.WantedBy, "wireguard-wg0.service") ||
		!slices.Contains(u.After, "systemd-networkd.service") {
		t.Errorf("networkd backend: after %v, bindsTo %v, wantedBy %v", u.After, u.BindsTo, u.WantedBy)
	}
	// No networking.wireguard declaration, no resolved, no firewall.
	m = evalMachine(t, n, example("data-mesher", `services.data-mesher.openFirewall = lib.mkForce false;`))
	if len(m.Unit.BindsTo) != 0 || slices.Contains(m.Unit.After, "wireguard-wg0.service") {
		t.Errorf("without a declared interface: after %v, bindsTo %v", m.Unit.After, m.Unit.BindsTo)
	}
	if post := strs(m.Unit.ServiceConfig["ExecStartPost"]); len(post) != 0 {
		t.Errorf("split DNS off, yet ExecStartPost = %v", post)
	}
	if len(m.Firewall) != 0 {
		t.Errorf("openFirewall = false, yet the firewall opens %+v", m.Firewall)
	}
	// A machine that does not enable the module gets nothing.
	if m := evalMachine(t, n, `config = { };`); m.Unit != nil || m.ConfigFile != nil || len(m.SystemPackages) != 0 {
		t.Errorf("disabled module: unit %+v, config file %+v, packages %v", m.Unit, m.ConfigFile, m.SystemPackages)
	}
}

// TestNixUnitMerge checks that a machine's own unit settings meet the
// module's as in NixOS: lists add up (a second ExecStartPre runs too), and
// a single value the module sets (the hardening) is not silently replaced:
// changing it needs lib.mkForce.
func TestNixUnitMerge(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", `systemd.services.data-mesher.serviceConfig.ExecStartPre = [ "/run/current-system/sw/bin/true" ];
	  systemd.services.data-mesher.serviceConfig.MemoryMax = "256M";`))
	if pre := strs(m.Unit.ServiceConfig["ExecStartPre"]); len(pre) != 2 || !slices.Contains(pre, "/run/current-system/sw/bin/true") {
		t.Errorf("ExecStartPre = %v, want the module's and the machine's", pre)
	}
	if m.Unit.ServiceConfig["MemoryMax"] != "256M" {
		t.Errorf("MemoryMax = %v", m.Unit.ServiceConfig["MemoryMax"])
	}
	stderr := n.fails(t, moduleExpr(example("data-mesher", `systemd.services.data-mesher.serviceConfig.ProtectSystem = "full";`)))
	if !strings.Contains(stderr, "The option `systemd.services.data-mesher.serviceConfig.ProtectSystem' has conflicting definition values") {
		t.Errorf("weakening ProtectSystem without mkForce: %s", stderr)
	}
	m = evalMachine(t, n, example("data-mesher", `systemd.services.data-mesher.serviceConfig.ProtectSystem = lib.mkForce "full";`))
	if m.Unit.ServiceConfig["ProtectSystem"] != "full" {
		t.Errorf("ProtectSystem with mkForce = %v", m.Unit.ServiceConfig["ProtectSystem"])
	}
}

// TestNixResolvedScriptQuotes checks that the split-DNS script, which runs
// as root, quotes what it is given (lib.escapeShellArg): an interface name
// with a character the shell treats specially stays one word. (The option
// types already refuse names with spaces, "$" or ";".)
func TestNixResolvedScriptQuotes(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", `services.resolved.enable = true;
	  services.data-mesher.interface = lib.mkForce "wg=0";
	  services.data-mesher.networks.clan.domain = "a-b_c.clan";`))
	post := strs(m.Unit.ServiceConfig["ExecStartPost"])
	if len(post) != 1 {
		t.Fatalf("ExecStartPost = %q", post)
	}
	testResolvedSetup(t, scriptText(t, post[0][1:]), "'wg=0'", "'~a-b_c.clan' '~qubasa.clan'")
}

// testResolvedSetup runs the module's split-DNS script with a stand-in
// dm-agent and resolvectl, and checks what it tells resolved: the agent's
// tunnel address, as IPv4 and as IPv6, and only the mesh domains, on the
// interface (as the script quotes it: iface and domains are how the
// arguments appear in the script).
func testResolvedSetup(t *testing.T, script, iface, domains string) {
	t.Helper()
	needJQ(t)
	if !strings.Contains(script, " dns "+iface+` "$server"`) || !strings.Contains(script, " domain "+iface+" "+domains+"\n") {
		t.Errorf("the script does not pass interface %s and domains %s as quoted words:\n%s", iface, domains, script)
	}
	unquote := func(s string) string {
		var words []string
		for _, w := range strings.Fields(s) {
			words = append(words, strings.Trim(w, "'"))
		}
		return strings.Join(words, " ")
	}
	// An empty address: the agent never answers; the script gives up
	// without touching resolved (and without failing the unit).
	for _, bind := range []struct{ addr, server string }{
		{"100.64.0.7", "100.64.0.7:53"},
		{"fd27:bb88::12", "[fd27:bb88::12]:53"},
		{"", ""},
	} {
		dir := t.TempDir()
		log := filepath.Join(dir, "resolvectl.log")
		body := standIns(t, dir, script, map[string]string{
			"data-mesher/bin/dm-agent": `echo '{"node":"mors","bind":"` + bind.addr + `"}'`,
			"systemd/bin/resolvectl":   `echo "$*" >> ` + log,
			"jq/bin/jq":                `exec jq "$@"`,
			"coreutils/bin/seq":        `exec seq "$@"`,
			"coreutils/bin/sleep":      `exec sleep "$@"`,
		})
		if out, err := exec.Command("bash", "-c", body).CombinedOutput(); err != nil {
			t.Fatalf("split-DNS script: %v\n%s\n%s", err, out, body)
		}
		got, err := os.ReadFile(log)
		if bind.addr == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the agent never answered, yet resolvectl was called: %s", got)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		i := unquote(iface)
		want := "dns " + i + " " + bind.server + "\ndomain " + i + " " + unquote(domains) + "\ndefault-route " + i + " false\n"
		if string(got) != want {
			t.Errorf("bind %s: resolvectl was called with\n%s\nwant\n%s", bind.addr, got, want)
		}
	}
}

// TestNixModuleForClan checks the module's second instance, dm-agent.nix
// (services.dm-agent, for clan machines, where clan-core declares
// services.data-mesher for its own data-mesher): the same unit, and
// beside clan-core's data-mesher a clear assertion instead of a unit clash.
func TestNixModuleForClan(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("dm-agent", ""))
	if got := strs(m.Unit.ServiceConfig["ExecStart"]); len(got) != 1 || !strings.HasSuffix(got[0], "/bin/dm-agent run --config /etc/data-mesher/config.json") {
		t.Errorf("ExecStart = %v", got)
	}
	m = evalMachine(t, n, example("dm-agent", "")+" clanDataMesher = true;")
	if f := m.FailedAssertions; len(f) != 1 || !strings.Contains(f[0], "services.dm-agent and services.data-mesher (clan-core's data-mesher) cannot both run") {
		t.Errorf("beside clan-core's data-mesher: failed assertions %v", f)
	}
}

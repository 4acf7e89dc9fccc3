package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The NixOS module renders its options with nixos/render.nix; these tests
// evaluate that file with the real Nix evaluator (no nixpkgs needed) and
// check that dm-agent accepts the result and reads it as the options say.

// nixInstantiate finds nix-instantiate. CI installs it; a developer
// machine without Nix skips these tests.
func nixInstantiate(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nix-instantiate")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nix-instantiate is not installed (scripts/test installs nix-bin): %v", err)
		}
		t.Skip("nix-instantiate is not installed")
	}
	return p
}

// nixCommand runs nix-instantiate without a Nix store or daemon (the
// dummy store evaluates pure expressions) and with private state, so it
// works for any user and leaves nothing behind.
func nixCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(nixInstantiate(t), append([]string{"--store", "dummy://"}, args...)...)
	cmd.Env = nixEnv(t)
	return cmd
}

// nixEnv is an environment in which Nix's tools keep their state in a
// private temporary home.
func nixEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "NIX_STATE_DIR="+filepath.Join(home, "state"),
		"NIX_LOG_DIR="+filepath.Join(home, "log"), "NIX_CONF_DIR="+home)
}

func nixEval(t *testing.T, args ...string) []byte {
	t.Helper()
	out, _ := nixEvalStderr(t, args...)
	return out
}

// nixEvalStderr also returns what the evaluation printed on stderr
// (warnings).
func nixEvalStderr(t *testing.T, args ...string) ([]byte, string) {
	t.Helper()
	cmd := nixCommand(t, append([]string{"--eval", "--strict", "--json"}, args...)...)
	cmd.Dir = filepath.Join("..", "nixos")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate %v: %v\n%s", args, err, stderr.String())
	}
	return out, stderr.String()
}

// matchGolden checks that rendered JSON means the same as
// nixos/example.golden.json (key order and spacing aside).
func matchGolden(t *testing.T, what string, rendered []byte) {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join("..", "nixos", "example.golden.json"))
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

// TestNixFilesParse parses every Nix file of the repository: a syntax error
// in the module, the clan service, the VM test or the flake fails here
// rather than on a user's machine.
func TestNixFilesParse(t *testing.T) {
	nixInstantiate(t)
	files, err := filepath.Glob(filepath.Join("..", "nixos", "*.nix"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "flake.nix"))
	for _, want := range []string{"module.nix", "clan-service.nix", "test.nix", "render.nix", "flake.nix"} {
		if !slices.ContainsFunc(files, func(f string) bool { return filepath.Base(f) == want }) {
			t.Errorf("%s is missing", want)
		}
	}
	for _, f := range files {
		out, err := nixCommand(t, "--parse", f).CombinedOutput()
		if err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
}

// TestNixExampleRenders renders the documented example and compares it with
// the golden file, then checks that dm-agent reads it as intended.
func TestNixExampleRenders(t *testing.T) {
	out := nixEval(t, "render-example.nix")
	matchGolden(t, "render.nix output", out)

	c, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("dm-agent rejects the module's configuration: %v", err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("dm-agent finds the module's configuration invalid: %v", err)
	}
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
	type net struct {
		label, key, peer string
		prio             float64
	}
	want2 := []net{
		{"clan", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV", "http://[fd16:aa77:dbef:737b:3799:9316:aa77:dbef]:7331", 2},
		{"qubasa.clan", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY", "http://[fd27:bb88:dbef:737b:3799:9318:aa77:ec12]:7331", 1},
	}
	for i, w := range want2 {
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

// TestNixKeyFileAndPerNetworkNames covers the options the example leaves at
// their defaults: a key file passed as a systemd credential, names claimed
// in one network only, and extra settings.
func TestNixKeyFileAndPerNetworkNames(t *testing.T) {
	expr := `let base = import ./example.nix; in import ./render.nix { cfg = base // {
	  keyFile = "/run/secrets/dm-node";
	  hostnames = [ "mors" "www" ];
	  networks = base.networks // { clan = base.networks.clan // { hostnames = [ "mors" ]; }; };
	  logLevel = "debug";
	  dns = base.dns // { forwarders = [ "9.9.9.9:53" ]; };
	}; }`
	out := nixEval(t, "--expr", expr)
	c, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("dm-agent rejects the configuration: %v\n%s", err, out)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("invalid: %v\n%s", err, out)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "/run/credentials/data-mesher.service")
	if got := c.KeyPath(); got != "/run/credentials/data-mesher.service/node-key" {
		t.Errorf("key path %s, want the systemd credential node-key", got)
	}
	for _, j := range c.JoinedNetworks() {
		want := []string{"mors", "www"}
		if j.Label == "clan" {
			want = []string{"mors"}
		}
		if !slices.Equal(j.Hostnames, want) {
			t.Errorf("network %s claims %v, want %v", j.Label, j.Hostnames, want)
		}
	}
	if c.Log.Level != "debug" || !slices.Equal(c.DNS.Forwarders, []string{"9.9.9.9:53"}) {
		t.Errorf("log level %q forwarders %v", c.Log.Level, c.DNS.Forwarders)
	}
}

// moduleSmoke is what nixos/module-smoke.nix reports: the config section
// module.nix produces for the example's options, and the options it declares.
type moduleSmoke struct {
	Config struct {
		Assertions []struct {
			Assertion bool
			Message   string
		}
		Networking struct {
			Firewall struct {
				Interfaces map[string]struct {
					AllowedTCPPorts []int
					AllowedUDPPorts []int
				}
			}
		}
		Services struct {
			DataMesher struct {
				Settings json.RawMessage
			} `json:"data-mesher"`
			DMAgent struct {
				Settings json.RawMessage
			} `json:"dm-agent"`
		}
		Systemd struct {
			Services struct {
				DataMesher struct {
					After, BindsTo, WantedBy []string
					ServiceConfig            map[string]any
				} `json:"data-mesher"`
			}
		}
	}
	Options, NetworkOptions, Undocumented, SettingsNotDefault []string
	UserSettings                                              json.RawMessage
}

func evalModule(t *testing.T, args string) moduleSmoke {
	t.Helper()
	out := nixEval(t, "--expr", "import ./module-smoke.nix "+args)
	var m moduleSmoke
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("module-smoke.nix: %v\n%s", err, out)
	}
	return m
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

// TestNixModuleUnit evaluates module.nix's config section (with a stub lib;
// the module system itself needs nixpkgs) and checks the unit the issue
// asks for: the example's options exist, the unit is hardened as promised,
// bound to the WireGuard unit when there is one, the key stays out of the
// store, split DNS routes only the mesh domains, and the firewall opens the
// ports on the mesh interface only.
func TestNixModuleUnit(t *testing.T) {
	m := evalModule(t, "{ }")

	for _, o := range []string{"enable", "interface", "openFirewall", "networks", "package", "hostnames", "keyFile", "ports", "dns", "splitDNS", "tsaUrls", "logLevel", "settings"} {
		if !slices.Contains(m.Options, o) {
			t.Errorf("option services.data-mesher.%s is not declared", o)
		}
	}
	for _, o := range []string{"pubkey", "priority", "bootstrapPeers"} {
		if !slices.Contains(m.NetworkOptions, o) {
			t.Errorf("option networks.<name>.%s is not declared", o)
		}
	}
	if len(m.Undocumented) > 0 {
		t.Errorf("options without a description: %v", m.Undocumented)
	}
	for _, a := range m.Config.Assertions {
		if !a.Assertion {
			t.Errorf("assertion fails for the example: %s", a.Message)
		}
	}

	// The settings the module writes are the ones render.nix gives (and the
	// golden file holds), each leaf a default that `settings` can replace
	// alone.
	matchGolden(t, "the module's settings", m.Config.Services.DataMesher.Settings)
	if len(m.SettingsNotDefault) > 0 {
		t.Errorf("rendered settings that are not mkDefault leaves: %v", m.SettingsNotDefault)
	}
	// Merged with a user's settings.dns.forwarders and settings.log.level,
	// the rest of dns and log stays as the options render it.
	uc, err := ParseConfig(m.UserSettings)
	if err != nil {
		t.Fatalf("dm-agent rejects the settings merged with the user's: %v\n%s", err, m.UserSettings)
	}
	if !slices.Equal(uc.DNS.Forwarders, []string{"9.9.9.9:53"}) || uc.Log.Level != "debug" ||
		uc.DNS.JSONFile != "/var/lib/data-mesher/dns.json" || uc.Log.Format != "text" || len(uc.JoinedNetworks()) != 2 {
		t.Errorf("settings merged with the user's: %s", m.UserSettings)
	}

	unit := m.Config.Systemd.Services.DataMesher
	sc := unit.ServiceConfig
	for k, v := range map[string]any{
		"Type": "notify", "DynamicUser": true, "StateDirectory": "data-mesher",
		"ProtectSystem": "strict", "NoNewPrivileges": true,
	} {
		if sc[k] != v {
			t.Errorf("%s = %v, want %v", k, sc[k], v)
		}
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
	if got := strs(sc["ExecStart"]); len(got) != 1 || !strings.HasSuffix(got[0], "/bin/dm-agent run --config /etc/data-mesher/config.json") {
		t.Errorf("ExecStart = %v", got)
	}
	if !slices.Contains(unit.After, "wireguard-wg0.service") || !slices.Equal(unit.BindsTo, []string{"wireguard-wg0.service"}) ||
		!slices.Contains(unit.WantedBy, "wireguard-wg0.service") {
		t.Errorf("with wg0 declared: after %v, bindsTo %v, wantedBy %v; want all on wireguard-wg0.service", unit.After, unit.BindsTo, unit.WantedBy)
	}
	// The networkd backend has no wireguard-wg0.service to bind to.
	if u := evalModule(t, "{ networkd = true; }").Config.Systemd.Services.DataMesher; len(u.BindsTo) != 0 ||
		slices.Contains(u.After, "wireguard-wg0.service") || slices.Contains(u.WantedBy, "wireguard-wg0.service") ||
		!slices.Contains(u.After, "systemd-networkd.service") {
		t.Errorf("networkd backend: after %v, bindsTo %v, wantedBy %v", u.After, u.BindsTo, u.WantedBy)
	}
	if pre := strs(sc["ExecStartPre"]); len(pre) != 1 || !strings.Contains(pre[0], "keygen --if-missing --out /var/lib/data-mesher/node.key") {
		t.Errorf("without keyFile the key is made on first start; ExecStartPre = %v", pre)
	}
	if lc := strs(sc["LoadCredential"]); len(lc) != 0 {
		t.Errorf("LoadCredential = %v without a keyFile", lc)
	}
	post := strs(sc["ExecStartPost"])
	if len(post) != 1 || !strings.HasPrefix(post[0], "+/nix/store/") {
		t.Fatalf("split DNS: ExecStartPost = %q, want one script run as root", post)
	}
	testResolvedSetup(t, post[0][1:])
	fw := m.Config.Networking.Firewall.Interfaces
	if len(fw) != 1 || !slices.Equal(fw["wg0"].AllowedTCPPorts, []int{7946, 7331, 53}) || !slices.Equal(fw["wg0"].AllowedUDPPorts, []int{7946, 53}) {
		t.Errorf("firewall = %+v, want gossip/http/dns on wg0 only", fw)
	}

	// A key file, no networking.wireguard declaration, no resolved.
	m = evalModule(t, `{ wireguard = false; keyFile = "/run/secrets/dm-node"; splitDNS = false; }`)
	unit = m.Config.Systemd.Services.DataMesher
	sc = unit.ServiceConfig
	if lc := strs(sc["LoadCredential"]); !slices.Equal(lc, []string{"node-key:/run/secrets/dm-node"}) {
		t.Errorf("LoadCredential = %v, want the key file as credential node-key", lc)
	}
	if pre := strs(sc["ExecStartPre"]); len(pre) != 0 {
		t.Errorf("with a keyFile nothing is generated; ExecStartPre = %v", pre)
	}
	if len(unit.BindsTo) != 0 || slices.Contains(unit.After, "wireguard-wg0.service") {
		t.Errorf("without a declared interface: after %v, bindsTo %v", unit.After, unit.BindsTo)
	}
	if post := strs(sc["ExecStartPost"]); len(post) != 0 {
		t.Errorf("split DNS off, yet ExecStartPost = %v", post)
	}
	var settings Config
	if err := json.Unmarshal(m.Config.Services.DataMesher.Settings, &settings); err != nil {
		t.Fatal(err)
	}
	if settings.KeyFile != "node-key" {
		t.Errorf("key_file %q, want the credential node-key", settings.KeyFile)
	}
}

// TestNixModuleForClan checks the module's second instance, dm-agent.nix
// (services.dm-agent, for clan machines, where clan-core declares
// services.data-mesher for its own data-mesher): the same options give the
// same configuration and unit, and running it beside clan-core's
// data-mesher fails with a clear assertion instead of a unit clash.
func TestNixModuleForClan(t *testing.T) {
	m := evalModule(t, `{ service = "dm-agent"; }`)
	for _, a := range m.Config.Assertions {
		if !a.Assertion {
			t.Errorf("assertion fails for the example: %s", a.Message)
		}
	}
	if !slices.Contains(m.Options, "networks") || len(m.Undocumented) > 0 {
		t.Errorf("options %v, undocumented %v", m.Options, m.Undocumented)
	}
	matchGolden(t, "services.dm-agent's settings", m.Config.Services.DMAgent.Settings)
	if got := strs(m.Config.Systemd.Services.DataMesher.ServiceConfig["ExecStart"]); len(got) != 1 || !strings.HasSuffix(got[0], "/bin/dm-agent run --config /etc/data-mesher/config.json") {
		t.Errorf("ExecStart = %v", got)
	}

	m = evalModule(t, `{ service = "dm-agent"; upstream = true; }`)
	var failed []string
	for _, a := range m.Config.Assertions {
		if !a.Assertion {
			failed = append(failed, a.Message)
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0], "services.dm-agent and services.data-mesher") {
		t.Errorf("beside clan-core's data-mesher: failed assertions %v", failed)
	}
	// The NixOS instance has no such assertion: there services.data-mesher
	// is this module.
	if m := evalModule(t, "{ }"); len(m.Config.Assertions) != 1 {
		t.Errorf("services.data-mesher: assertions %+v", m.Config.Assertions)
	}
}

// needJQ skips a test whose script needs jq where it is missing (CI
// installs it, so there it fails instead).
func needJQ(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("jq is not installed (scripts/test installs it): %v", err)
		}
		t.Skip("jq is not installed")
	}
}

// stubStore is the store path prefix of the stub lib's packages.
const stubStore = "/nix/store/00000000000000000000000000000000-"

// standIns replaces each program a rendered script calls from the stub
// store (stubStore+path) with a shell script in dir running the given
// body, and fails if the script still calls something from the store.
func standIns(t *testing.T, dir, script string, fakes map[string]string) string {
	t.Helper()
	for path, fake := range fakes {
		bin := filepath.Join(dir, strings.ReplaceAll(path, "/", "_"))
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+fake+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		script = strings.ReplaceAll(script, stubStore+path, bin)
	}
	if strings.Contains(script, "/nix/store/") {
		t.Fatalf("the script calls a program the test does not stand in for:\n%s", script)
	}
	return script
}

// testResolvedSetup runs the module's split-DNS script (as the stub
// lib's writeShellScript renders it: a store path, then the text) with a
// stand-in dm-agent and resolvectl, and checks what it tells resolved: the
// agent's tunnel address, as IPv4 and as IPv6, and only the mesh domains.
func testResolvedSetup(t *testing.T, script string) {
	t.Helper()
	needJQ(t)
	_, text, ok := strings.Cut(script, "\n")
	if !ok {
		t.Fatalf("not a stub script: %q", script)
	}
	// An empty addr: the agent never answers; the script gives up without
	// touching resolved (and without failing the unit).
	for _, bind := range []struct{ addr, server string }{
		{"100.64.0.7", "100.64.0.7:53"},
		{"fd27:bb88::12", "[fd27:bb88::12]:53"},
		{"", ""},
	} {
		dir := t.TempDir()
		log := filepath.Join(dir, "resolvectl.log")
		body := standIns(t, dir, text, map[string]string{
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
		want := "dns wg0 " + bind.server + "\ndomain wg0 ~clan ~qubasa.clan\ndefault-route wg0 false\n"
		if string(got) != want {
			t.Errorf("bind %s: resolvectl was called with\n%s\nwant\n%s", bind.addr, got, want)
		}
	}
}

// clanMachine is the NixOS module clan-smoke.nix reports for one machine.
type clanMachine struct {
	Assertions []struct {
		Assertion bool
		Message   string
	}
	Services struct {
		DMAgent struct {
			ImportedBy   []string
			Enable       bool
			Interface    string
			OpenFirewall bool
			KeyFile      string
			Networks     map[string]struct {
				Pubkey         string
				Domain         string
				Priority       float64
				BootstrapPeers []string
			}
		} `json:"dm-agent"`
	}
	Clan struct {
		Core struct {
			Vars struct {
				Generators map[string]struct {
					Share        bool
					Script       string
					Dependencies []string
					Files        map[string]map[string]any
				}
			}
		}
	}
	Systemd struct {
		Services map[string]struct {
			Script        string
			ServiceConfig map[string]any
		}
	}
}

func (m clanMachine) failed() []string {
	var out []string
	for _, a := range m.Assertions {
		if !a.Assertion {
			out = append(out, a.Message)
		}
	}
	return out
}

// TestNixClanService evaluates, for each machine of a made-up inventory,
// the perInstance modules of its roles merged as NixOS would (clan-smoke.nix
// with stub-lib.nix's small module system; clan-core itself is not
// available here) and checks the networks each machine joins, the keys,
// and the admin's publishing unit.
func TestNixClanService(t *testing.T) {
	dir := t.TempDir()
	signer := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY gate"
	pubDir := filepath.Join(dir, "vars", "per-machine", "gate", "data-mesher-node", "node.pub")
	if err := os.MkdirAll(pubDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pubDir, "value"), []byte(signer+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr := nixEvalStderr(t, "clan-smoke.nix", "--argstr", "clanDir", dir)
	var got struct {
		Manifest struct {
			Name, Readme string
			Categories   []string
		}
		Roles      []string
		Interfaces map[string][]string
		Machines   map[string]clanMachine
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("clan-smoke.nix: %v\n%s", err, out)
	}
	if got.Manifest.Name != "dm-agent" || !slices.Equal(got.Roles, []string{"admin", "peer", "signer"}) ||
		!slices.Equal(got.Manifest.Categories, []string{"Network"}) || !strings.Contains(got.Manifest.Readme, "One instance is one network") {
		t.Errorf("manifest %+v, roles %v", got.Manifest, got.Roles)
	}
	if !slices.Equal(got.Interfaces["peer"], []string{"bootstrapPeers", "domain", "interface", "priority"}) ||
		len(got.Interfaces["admin"]) != 0 || len(got.Interfaces["signer"]) != 0 {
		t.Errorf("role settings %v: the network's settings belong to the peer role only", got.Interfaces)
	}

	type net struct {
		pubkey, domain string
		priority       float64
		peers          []string
	}
	mesh := net{"ssh-ed25519 network-mesh", "clan", 1.5, []string{"http://[fd27::1]:7331"}}
	lab := net{"ssh-ed25519 network-lab", "lab", 2, []string{}}
	// gate: admin, signer and peer of mesh; beta: peer of mesh and lab;
	// solo: admin of mesh only (joins with the peer role's settings).
	for name, want := range map[string]map[string]net{
		"gate": {"mesh": mesh},
		"beta": {"mesh": mesh, "lab": lab},
		"solo": {"mesh": mesh},
	} {
		m := got.Machines[name]
		if f := m.failed(); len(f) > 0 {
			t.Errorf("%s: assertions fail: %v", name, f)
		}
		dm := m.Services.DMAgent
		if !slices.Equal(dm.ImportedBy, []string{"agent-module"}) {
			t.Errorf("%s: the agent's module imported %d times, want once", name, len(dm.ImportedBy))
		}
		if !dm.Enable || dm.Interface != "wg0" || !dm.OpenFirewall || dm.KeyFile != "/run/secrets/vars/data-mesher-node/node.key" {
			t.Errorf("%s: services.dm-agent = %+v", name, dm)
		}
		if len(dm.Networks) != len(want) {
			t.Errorf("%s joins %d networks, want %d", name, len(dm.Networks), len(want))
		}
		for label, w := range want {
			n, ok := dm.Networks[label]
			if !ok || n.Pubkey != w.pubkey || n.Domain != w.domain || n.Priority != w.priority || !slices.Equal(n.BootstrapPeers, w.peers) {
				t.Errorf("%s: network %s = %+v, want %+v", name, label, n, w)
			}
		}
		gens := m.Clan.Core.Vars.Generators
		node := gens["data-mesher-node"]
		if node.Share || !strings.Contains(node.Script, "dm-agent keygen --out \"$out/node.key\" --comment '"+name+"'") || node.Files["node.pub"]["secret"] != false {
			t.Errorf("%s: node key generator %+v", name, node)
		}
		for _, inst := range []string{"mesh", "lab"} {
			// The deployment's stand-in names every generator's files;
			// the service itself defines (shares) only its instances'.
			g := gens["data-mesher-network-"+inst]
			_, member := want[inst]
			if g.Share != member {
				t.Errorf("%s: network key generator for %s: defined %v, member %v", name, inst, g.Share, member)
				continue
			}
			if !member {
				continue
			}
			// clan refuses a shared generator defined differently on two
			// machines: the private half is deployed nowhere, and admins
			// copy it with a generator of their own.
			if g.Files["network.key"]["deploy"] != false || g.Files["network.pub"]["secret"] != false {
				t.Errorf("%s: network key of %s: the private half must not be deployed, the public one not secret: %+v", name, inst, g)
			}
			admin := inst == "mesh" && (name == "gate" || name == "solo")
			a := gens["data-mesher-admin-"+inst]
			if hasAdminGen := a.Script != ""; hasAdminGen != admin {
				t.Errorf("%s: admin key generator for %s: %v, want %v", name, inst, hasAdminGen, admin)
			} else if admin && (a.Share || !slices.Equal(a.Dependencies, []string{"data-mesher-network-" + inst}) ||
				!strings.Contains(a.Script, `cp "$in/data-mesher-network-`+inst+`/network.key" "$out/network.key"`) || a.Files["network.key"]["deploy"] == false) {
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
	type genDef struct {
		machine, def string
	}
	shared := map[string]genDef{}
	for name, m := range got.Machines {
		for gname, g := range m.Clan.Core.Vars.Generators {
			if !g.Share {
				continue
			}
			files := map[string]map[string]any{}
			for f, attrs := range g.Files {
				files[f] = map[string]any{"deploy": attrs["deploy"], "secret": attrs["secret"]}
			}
			def, _ := json.Marshal(struct {
				Files        any
				Dependencies []string
				Script       string
			}{files, g.Dependencies, g.Script})
			if prev, ok := shared[gname]; ok && prev.def != string(def) {
				t.Errorf("shared generator %s differs between %s and %s:\n%s\n%s", gname, prev.machine, name, prev.def, def)
			}
			shared[gname] = genDef{name, string(def)}
		}
	}

	// The admins publish mesh's settings; gate names itself (a signer with
	// a key) as witness, the signer ghost has no key yet and is left out
	// with a warning.
	for _, name := range []string{"gate", "solo"} {
		units := got.Machines[name].Systemd.Services
		pub, ok := units["data-mesher-settings-mesh"]
		if !ok || len(units) != 1 {
			t.Fatalf("admin %s: units %v, want data-mesher-settings-mesh", name, slices.Collect(maps.Keys(units)))
		}
		if err := exec.Command("bash", "-n", "-c", pub.Script).Run(); err != nil {
			t.Errorf("admin %s: the publishing script is not valid shell: %v\n%s", name, err, pub.Script)
		}
		if !strings.Contains(pub.Script, "network create --domain clan") || !strings.Contains(pub.Script, "settings --network mesh --show") {
			t.Errorf("admin %s: script neither creates nor keeps the settings:\n%s", name, pub.Script)
		}
		if w := "--witness '" + signer + "'"; strings.Count(pub.Script, w) != 2 || strings.Count(pub.Script, "--witness") != 2 {
			t.Errorf("admin %s does not name exactly the signer gate as witness (%s) on both paths:\n%s", name, w, pub.Script)
		}
		if lc := strs(pub.ServiceConfig["LoadCredential"]); len(lc) != 1 || lc[0] != "network-key:/run/secrets/vars/data-mesher-admin-mesh/network.key" {
			t.Errorf("admin %s: LoadCredential %v", name, lc)
		}
	}
	testPublishScript(t, got.Machines["gate"].Systemd.Services["data-mesher-settings-mesh"].Script, signer)
	if !strings.Contains(stderr, "signer ghost has no node key yet") {
		t.Errorf("no warning for the signer without a key:\n%s", stderr)
	}
	if units := got.Machines["beta"].Systemd.Services; len(units) != 0 {
		t.Errorf("beta is no admin, yet runs %v", units)
	}

	// A machine in no instance runs nothing; conflicting instances fail
	// with a clear assertion.
	if dm := got.Machines["outsider"].Services.DMAgent; dm.Enable || len(dm.ImportedBy) != 0 || len(dm.Networks) != 0 {
		t.Errorf("outsider: services.dm-agent = %+v", dm)
	}
	for name, want := range map[string]string{
		"split": "one agent serves one WireGuard interface",
		"twice": "needs its own domain",
	} {
		if f := got.Machines[name].failed(); len(f) != 1 || !strings.Contains(f[0], want) {
			t.Errorf("%s: failed assertions %v, want one saying %q", name, f, want)
		}
	}
}

// testPublishScript runs the admin's publishing script (as NixOS would:
// bash with -e) against a stand-in dm-agent. A new network gets its
// settings created once: at once when the agent has synced with the mesh
// and found none, after five minutes of polls when it finds no peer. A
// machine that created them before never creates them again, even when its
// agent has not synced them (it fails and retries); existing settings only
// get the witnesses added.
func testPublishScript(t *testing.T, script, signer string) {
	t.Helper()
	needJQ(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls")
	polls := filepath.Join(dir, "polls")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sleep"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := standIns(t, dir, script, map[string]string{
		"data-mesher/bin/dm-agent": `case "$*" in
  status) exit 0 ;;
  "status --json")
    echo >> ` + polls + `
    if [ -e ` + dir + `/alone ]; then echo '{"synced":false}'; else echo '{"synced":true}'; fi ;;
  *--show) [ -e ` + dir + `/has-settings ] ;;
  *) echo "$*" >> ` + log + ` ;;
esac`,
		"jq/bin/jq": `exec jq "$@"`,
	})
	touch := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// run returns the calls other than status, and how often the script
	// asked whether the agent has synced.
	run := func() ([]string, int, error) {
		os.Remove(log)
		os.Remove(polls)
		cmd := exec.Command("bash", "-e", "-c", body)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "STATE_DIRECTORY="+state, "CREDENTIALS_DIRECTORY=/creds")
		out, err := cmd.CombinedOutput()
		calls, _ := os.ReadFile(log)
		p, _ := os.ReadFile(polls)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		return strings.Split(strings.TrimSpace(string(calls)), "\n"), strings.Count(string(p), "\n"), err
	}
	create := "network create --domain clan --admin-key /creds/network-key --publish --witness " + signer

	// Alone: no peer to sync with; created after five minutes of polls.
	touch("alone")
	calls, n, err := run()
	if err != nil || len(calls) != 1 || calls[0] != create || n != 300 {
		t.Fatalf("new network, no peers: calls %q after %d polls, err %v; want one network create after 300", calls, n, err)
	}
	if err := os.Remove(filepath.Join(state, "mesh.created")); err != nil {
		t.Fatalf("no marker of the creation: %v", err)
	}
	// Synced with the mesh, which has no settings: created at once.
	os.Remove(filepath.Join(dir, "alone"))
	calls, n, err = run()
	if err != nil || len(calls) != 1 || calls[0] != create || n != 1 {
		t.Fatalf("new network, synced: calls %q after %d polls, err %v; want one network create at once", calls, n, err)
	}
	// Created here before, settings not (yet) in the agent: never again.
	calls, _, err = run()
	if err == nil || calls[0] != "" {
		t.Errorf("created before, settings not synced: calls %q, err %v; want a failure and no new settings", calls, err)
	}
	touch("has-settings")
	calls, _, err = run()
	if err != nil || len(calls) != 1 || calls[0] != "settings --network mesh --admin-key /creds/network-key --witness "+signer {
		t.Errorf("existing settings: calls %q, err %v; want the witnesses added", calls, err)
	}
}

// TestNixFlake evaluates flake.nix's outputs with a stand-in for nixpkgs
// (flake-smoke.nix) and checks their wiring: the package builds dm-agent
// with Go 1.26 and its version; the NixOS modules set the package to the
// flake's without touching nixpkgs (no overlay: runNixOSTest's pkgs is
// read-only) and count once when imported twice; the clan service and the
// VM test are there; and vendorHash is the NAR hash of `go mod vendor`.
func TestNixFlake(t *testing.T) {
	out := nixEval(t, "flake-smoke.nix")
	type machine struct {
		Defined   map[string][]string
		Package   struct{ Pname, BuiltWith string }
		ExecStart string
	}
	var got struct {
		Package struct {
			Pname, BuiltWith, VendorHash string
			SubPackages, Ldflags         []string
			Meta                         struct{ MainProgram string }
		}
		DefaultIsPackage, DefaultIsDataMesher bool
		NixosDefault, NixosDmAgent            machine
		ClanClass                             string
		ClanRoles                             []string
		VM                                    struct {
			Name  string
			Nodes []string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("flake-smoke.nix: %v\n%s", err, out)
	}
	p := got.Package
	if p.Pname != "data-mesher" || p.BuiltWith != "buildGo126Module" || !slices.Equal(p.SubPackages, []string{"cmd/dm-agent"}) ||
		p.Meta.MainProgram != "dm-agent" || !got.DefaultIsPackage {
		t.Errorf("package: %+v", p)
	}
	if !slices.ContainsFunc(p.Ldflags, func(f string) bool {
		return strings.HasPrefix(f, "-X github.com/data-mesher/data-mesher/agent.Version=")
	}) {
		t.Errorf("ldflags %v do not set agent.Version", p.Ldflags)
	}
	for service, m := range map[string]machine{"data-mesher": got.NixosDefault, "dm-agent": got.NixosDmAgent} {
		if m.Package.Pname != "data-mesher" || m.Package.BuiltWith != "buildGo126Module" {
			t.Errorf("services.%s.package = %+v, want the flake's package", service, m.Package)
		}
		if !strings.HasSuffix(m.ExecStart, "-data-mesher-0.1.0/bin/dm-agent run --config /etc/data-mesher/config.json") {
			t.Errorf("services.%s: ExecStart %q does not run the flake's package", service, m.ExecStart)
		}
		if _, ok := m.Defined["nixpkgs"]; ok {
			t.Errorf("services.%s: the module defines nixpkgs.%v", service, m.Defined["nixpkgs"])
		}
		if !slices.Contains(m.Defined["services"], service) {
			t.Errorf("services.%s: defined %v", service, m.Defined)
		}
	}
	if !got.DefaultIsDataMesher || got.ClanClass != "clan.service" || !slices.Equal(got.ClanRoles, []string{"admin", "peer", "signer"}) {
		t.Errorf("default module is data-mesher: %v; clan service %q with roles %v", got.DefaultIsDataMesher, got.ClanClass, got.ClanRoles)
	}
	if got.VM.Name != "data-mesher" || !slices.Equal(got.VM.Nodes, []string{"alpha", "beta", "gamma"}) {
		t.Errorf("VM test %+v", got.VM)
	}

	// vendorHash: the NAR hash of the vendor tree, as buildGoModule makes
	// it; go.sum changes without it failing the Nix build only later.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command(goBin, "mod", "vendor", "-o", vendor)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	nixHash := filepath.Join(filepath.Dir(nixInstantiate(t)), "nix-hash")
	h := exec.Command(nixHash, "--type", "sha256", vendor)
	h.Env = nixEnv(t)
	hexOut, err := h.Output()
	if err != nil {
		t.Fatalf("nix-hash: %v", err)
	}
	sum, err := hex.DecodeString(strings.TrimSpace(string(hexOut)))
	if err != nil {
		t.Fatalf("nix-hash printed %q: %v", hexOut, err)
	}
	if want := "sha256-" + base64.StdEncoding.EncodeToString(sum); p.VendorHash != want {
		t.Errorf("flake.nix vendorHash = %s, but the vendor tree's NAR hash is %s: update it", p.VendorHash, want)
	}
}

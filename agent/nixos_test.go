package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	bin := nixInstantiate(t)
	home := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--store", "dummy://"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "NIX_STATE_DIR="+filepath.Join(home, "state"),
		"NIX_LOG_DIR="+filepath.Join(home, "log"), "NIX_CONF_DIR="+home)
	return cmd
}

func nixEval(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := nixCommand(t, append([]string{"--eval", "--strict", "--json"}, args...)...)
	cmd.Dir = filepath.Join("..", "nixos")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate %v: %v\n%s", args, err, stderr.String())
	}
	return out
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
	golden, err := os.ReadFile(filepath.Join("..", "nixos", "example.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("rendered configuration is not JSON: %v\n%s", err, out)
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatalf("example.golden.json: %v", err)
	}
	gotJSON, _ := json.MarshalIndent(got, "", "  ")
	wantJSON, _ := json.MarshalIndent(want, "", "  ")
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("render.nix output differs from example.golden.json:\ngot  %s\nwant %s", gotJSON, wantJSON)
	}

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
	if !slices.Equal(c.DNS.Listen, []string{"127.0.0.153:53"}) {
		t.Errorf("dns.listen = %v, want the split-DNS address", c.DNS.Listen)
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

package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

func TestConfigExample(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	nets := c.JoinedNetworks()
	if len(nets) != 2 || nets[0].Label != "clan" || nets[0].Priority != 1.5 || nets[1].Priority != 1 {
		t.Fatalf("networks: %+v", nets)
	}
	if nets[0].Hostnames[0] != "mors" || c.Ports.DNS != 53 || c.Ports.HTTP != 7331 || c.Ports.Gossip != 7946 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.KeyPath() != "/var/lib/data-mesher/node.key" || c.MetricsListen != "127.0.0.1:9103" {
		t.Fatalf("paths: %s %s", c.KeyPath(), c.MetricsListen)
	}
}

// A bad configuration gets a message that names the field and says why.
func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, edit, field string
	}{
		{"unknown field", `"intreface": "wg0",`, `line 2: intreface: unknown key; did you mean "interface"?`},
		{"bad key", `"hostnames": ["mors"], "networks": {"x": {"pubkey": "ssh-rsa AAAAB3NzaC1yc2E"}},`, `networks."x".pubkey`},
		{"missing key", `"networks": {"x": {"priority": 2}},`, `networks."x".pubkey: is required`},
		{"bad hostname", `"hostnames": ["Mors_1"], "x_replace_hostnames": 1,`, `hostnames:`},
		{"bad bootstrap", `"networks": {"x": {"pubkey": "AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY", "bootstrap_peers": ["ftp://x"]}},`, `bootstrap_peers`},
		{"metrics on the network", `"metrics_listen": "0.0.0.0:9103",`, `metrics_listen: "0.0.0.0:9103" must be a loopback`},
		{"port", `"ports": {"dns": 70000},`, `ports.dns: 70000 is not a port`},
		{"same ports", `"ports": {"gossip": 8000, "http": 8000},`, `ports.http: is the same port`},
		{"log level", `"log": {"level": "loud"},`, `log.level: "loud"`},
		{"duration", `"heartbeat": "often",`, `"often" is not a duration`},
		{"forwarder", `"dns": {"forwarders": ["dns.google"]},`, `dns.forwarders`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(exampleConfig, `"interface": "wg0",`, `"interface": "wg0", `+tc.edit, 1)
			if strings.Contains(tc.edit, "x_replace_hostnames") {
				in = strings.Replace(exampleConfig, `"hostnames": ["mors"]`, `"hostnames": ["Mors_1"]`, 1)
			}
			if strings.Contains(tc.edit, `"networks"`) {
				in = `{` + strings.TrimSuffix(tc.edit, ",") + `}`
			}
			c, err := ParseConfig([]byte(in))
			if err == nil {
				c.ApplyDefaults()
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want it to name %q", err, tc.field)
			}
		})
	}
	// All problems at once, not one at a time.
	c, _ := ParseConfig([]byte(`{"interface": "a/b", "ports": {"dns": -1}}`))
	c.ApplyDefaults()
	err := c.Validate()
	for _, want := range []string{"interface", "networks", "ports.dns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := ParseConfig([]byte("{\n  \"interface\": \"wg0\",\n  oops\n}")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("syntax error without a line: %v", err)
	}
}

// Issue 18, items 3 to 5: an error says where (file and line), names the
// field as the file spells it, suggests the key that was meant, and shows
// nothing of Go (no "json:", no struct or type names).
func TestConfigErrorsSayWhereAndWhatWasMeant(t *testing.T) {
	const file = `{
  "interface": "wg0",
  "netwroks": {},
  "networks": {
    "qubasa.clan": {
      "pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY",
      "priority": "1",
      "bootstrapPeers": ["http://[fd27::1]:7331"],
      "hostnames": "mors"
    }
  },
  "pubkey": "x",
  "heartbeat": "often",
  "ports": {"dns": 53.5, "gosip": 1},
  "interface": "wg1"
}`
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("a broken configuration loads")
	}
	got := err.Error()
	for _, want := range []string{
		path + `:3: netwroks: unknown key; did you mean "networks"?`,
		path + `:7: networks."qubasa.clan".priority: is the text "1"; want a number`,
		path + `:8: networks."qubasa.clan".bootstrapPeers: unknown key; did you mean "bootstrap_peers"?`,
		path + `:9: networks."qubasa.clan".hostnames: is the text "mors"; want a list, e.g. ["mors"]`,
		path + `:12: pubkey: unknown key here; it belongs in networks.<name>`,
		path + `:13: heartbeat: "often" is not a duration`,
		path + `:14: ports.dns: 53.5 is not a whole number`,
		path + `:14: ports.gosip: unknown key; did you mean "gossip"?`,
		path + `:15: interface: appears twice (first at ` + path + `:2)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the error does not say\n  %s\ngot:\n%s", want, got)
		}
	}
	for _, leak := range []string{"json: ", "Go struct", "float64", "unmarshal", "NetworkConfig"} {
		if strings.Contains(got, leak) {
			t.Errorf("the error shows Go's internals (%q):\n%s", leak, got)
		}
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("%T is not a *ConfigError", err)
	}
}

// JSON syntax errors say line and column, and what is missing.
func TestConfigSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{\n  \"interface\": \"wg0\",\n}", `line 3, column 1: not valid JSON: a comma before } has nothing after it`},
		{"{\n  \"interface\": \"wg0\"\n  \"hostnames\": []\n}", `line 3, column 3: not valid JSON: found " after a value: a comma (or a closing }) is missing`},
		{"{\n  \"interface\": \"wg0\",", `not valid JSON: the file ends too early`},
		{"{\n  // comment\n}", `line 2, column 3: not valid JSON: found / where a key in double quotes should be`},
		{"  \n", `the file is empty`},
		{`["wg0"]`, `must be a JSON object`},
	} {
		_, err := ParseConfig([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to say %q", tc.in, err, tc.want)
		}
	}
}

// A missing file says so (and wraps fs.ErrNotExist), instead of the
// validation of an empty configuration ("no network is joined").
func TestConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	_, err := LoadConfig(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path+": the configuration file does not exist") {
		t.Fatalf("missing file: %v", err)
	}
}

// Validate's errors say where the bad value was set: the file's line, or
// the flag or variable recorded with SetOrigin.
func TestValidateSaysWhere(t *testing.T) {
	in := strings.Replace(exampleConfig, `"pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV"`,
		`"pubkey": "ssh-rsa AAAAB3NzaC1yc2E"`, 1)
	c, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c.Interface = "a/b"
	c.SetOrigin("interface", "--interface")
	c.ApplyDefaults()
	err = c.Validate()
	for _, want := range []string{
		`line 11: networks."clan".pubkey: bad key: ssh-rsa is not an ed25519 key`,
		`--interface: interface: "a/b" is not an interface name`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\ndoes not say %s", err, want)
		}
	}
	c, err = ParseConfig([]byte("{\n  \"networks\": {\n    \"clan\": {\"priority\": 2}\n  }\n}"))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `line 3: networks."clan".pubkey: is required`) {
		t.Errorf("a missing field is not placed at its network: %v", err)
	}
}

// Keys are refused in the user's words, never with the ssh package's.
func TestConfigKeyErrorsInPlainWords(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"ssh-ed25519 AAAAC3Nza!!!", `the key after "ssh-ed25519 " is damaged or cut short`},
		{"ssh-ed25519", `without the key after it`},
		{"ssh-rsa AAAAB3NzaC1yc2E", `ssh-rsa is not an ed25519 key`},
		{"not a key", `"not a key" is not a key; want "ssh-ed25519 AAAA…"`},
		{"AAAA", `holds 3 bytes, an ed25519 key has 32`},
	} {
		c, err := ParseConfig([]byte(`{"networks": {"x": {"pubkey": "` + tc.key + `"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		c.ApplyDefaults()
		err = c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "ssh:") || strings.Contains(err.Error(), "illegal base64") {
			t.Errorf("%q: %v, want it to say %q and nothing of Go", tc.key, err, tc.want)
		}
	}
}

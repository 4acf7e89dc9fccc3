package agent

import (
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
		{"unknown field", `"intreface": "wg0",`, `unknown field "intreface"`},
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

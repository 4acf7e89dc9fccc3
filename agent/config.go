package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// Config is the agent's configuration: one JSON file (the NixOS module
// renders it), with the common settings also taken from flags and
// environment variables. Every field has a default, written next to it.
type Config struct {
	// Interface is the WireGuard interface of the mesh (default "wg0").
	Interface string `json:"interface"`
	// StateDir holds the state file, dns.json and, by default, the key
	// (default /var/lib/data-mesher).
	StateDir string `json:"state_dir"`
	// KeyFile is the node's private key (default <state_dir>/node.key). A
	// relative path is looked up in $CREDENTIALS_DIRECTORY when systemd
	// passes credentials. It must not be readable by others.
	KeyFile string `json:"key_file"`
	// Hostnames are the names this node claims in every network, unless a
	// network lists its own (default: none).
	Hostnames []string `json:"hostnames"`
	// Networks are the joined networks, by a local label (e.g. the domain).
	Networks map[string]NetworkConfig `json:"networks"`
	// BindAddress is the tunnel address gossip, the peer endpoint and DNS
	// use (default: the interface's first address, IPv6 first).
	BindAddress string `json:"bind_address"`
	Ports       Ports  `json:"ports"`
	DNS         DNS    `json:"dns"`
	// DataDir is where the files view of the namespaces is written: one
	// file per key, readable by the agent's group (default
	// <state_dir>/data; "off": none). README describes its layout.
	DataDir string `json:"data_dir"`
	// KnownHostsFile is where the OpenSSH known_hosts of the mesh's
	// reachable hosts is written, from the ssh.host-keys namespace
	// (default <state_dir>/known_hosts; "off": none).
	KnownHostsFile string `json:"known_hosts_file"`
	// TSAURLs are timestamp authorities asked before the ones the
	// network's settings list (default: none).
	TSAURLs []string `json:"tsa_urls"`
	// ControlSocket is the local socket of the command line (default
	// /run/data-mesher/control.sock).
	ControlSocket string `json:"control_socket"`
	// MetricsListen serves Prometheus metrics; loopback only (default
	// 127.0.0.1:9103; "off" disables them).
	MetricsListen string `json:"metrics_listen"`
	Log           Log    `json:"log"`
	// Heartbeat is how often the host record is re-signed (default: a
	// quarter of the network's host TTL, at most 1 h).
	Heartbeat Duration `json:"heartbeat"`
	// SyncInterval is how often anti-entropy runs (default 2 s).
	SyncInterval Duration `json:"sync_interval"`
	// MaxSkew is how far in the future a record may be dated (default 5 m).
	MaxSkew Duration `json:"max_skew"`
	// ReachabilityTTL is how long a passed reachability challenge counts
	// (default 10 m); it is renewed at half of it. A failure is retried
	// after 250 ms, doubling up to the TTL; a change of WireGuard's routes
	// re-checks the hosts there at once.
	ReachabilityTTL Duration `json:"reachability_ttl"`
	// TSARetry is how soon a claim without a timestamp asks the TSAs again
	// after they failed (default 30 s, doubling to ten times that).
	TSARetry Duration `json:"tsa_retry"`

	// origin says where each field's value was set (file and line, flag,
	// variable), for Validate's errors.
	origin map[string]string
}

// NetworkConfig is one joined network.
type NetworkConfig struct {
	// PubKey is the network's admin key, "ssh-ed25519 AAAA…" (required).
	PubKey string `json:"pubkey"`
	// Priority decides between networks giving the same name: lower wins;
	// a float (default 1).
	Priority *float64 `json:"priority,omitempty"`
	// BootstrapPeers are data.json sources: peers ("http://[fd…]:7331") or
	// static files.
	BootstrapPeers []string `json:"bootstrap_peers"`
	// Hostnames, if set, replace the global hostnames in this network.
	Hostnames []string `json:"hostnames,omitempty"`
	// Publish are entries this node keeps in the network's namespaces:
	// written when missing or changed, and written again before their
	// namespace's lifetime runs out (default: none).
	Publish []Publish `json:"publish,omitempty"`
}

// Publish is one entry this node keeps in a namespace (an lww or fww key,
// or an element of a set). Removing it from the configuration leaves the
// entry until it decays; `dm-agent data delete` removes it at once.
type Publish struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// Value is the value, or ValueFile a file whose content is the value,
	// read at every refresh (so another service can write it).
	Value     string `json:"value,omitempty"`
	ValueFile string `json:"value_file,omitempty"`
}

// Ports are the agent's ports on the tunnel address.
type Ports struct {
	Gossip int `json:"gossip"` // default 7946 (TCP and UDP)
	HTTP   int `json:"http"`   // default 7331: data.json, sync, challenge
	DNS    int `json:"dns"`    // default 53 (TCP and UDP)
}

// DNS configures the DNS server.
type DNS struct {
	// Listen are extra addresses to answer on, e.g. "127.0.0.1:5353" for
	// systemd-resolved split DNS (default: none; the tunnel address and
	// ports.dns are always used).
	Listen []string `json:"listen"`
	// Forwarders receive names outside the mesh ("host:port"). Empty: such
	// names are refused; the agent is not a resolver (default: none).
	Forwarders []string `json:"forwarders"`
	// JSONFile is where dns.json is written ("off": not at all; default
	// <state_dir>/dns.json).
	JSONFile string `json:"json_file"`
}

// Log configures logging.
type Log struct {
	Level  string `json:"level"`  // debug, info, warn, error (default info)
	Format string `json:"format"` // text or json (default text)
}

// Duration is a time.Duration written as "90s", "5m" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "5m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like \"90s\" or \"5m\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("%s is not a duration like \"90s\"", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes "5m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults.
const (
	DefaultInterface     = "wg0"
	DefaultStateDir      = "/var/lib/data-mesher"
	DefaultControlSocket = "/run/data-mesher/control.sock"
	DefaultMetricsListen = "127.0.0.1:9103"
	DefaultDNSPort       = 53
)

// LoadConfig reads a configuration file. Unknown keys are errors (a
// misspelt option must not be silently ignored). Every error is a
// *ConfigError, or several joined, each naming the file and line; a file
// that does not exist gives one that wraps fs.ErrNotExist.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &ConfigError{Where: path, Msg: "the configuration file does not exist", err: err}
	case errors.Is(err, fs.ErrPermission):
		return nil, &ConfigError{Where: path, Msg: "permission denied reading the configuration (run as root, or as the agent's user)", err: err}
	case err != nil:
		return nil, &ConfigError{Where: path, Msg: "reading the configuration: " + err.Error(), err: err}
	}
	return parseConfig(b, path)
}

// ParseConfig decodes a JSON configuration. Its errors say where, by line
// ("line 3: networks.\"clan\".bootstrapPeers: unknown key; did you mean
// \"bootstrap_peers\"?"), all of them at once.
func ParseConfig(b []byte) (*Config, error) { return parseConfig(b, "") }

// ConfigError is one problem of a configuration: where it is (the file and
// line, or the flag or environment variable a value came from), the field
// in the file's own spelling (networks."clan".pubkey), and what is wrong.
type ConfigError struct {
	Where string // "config.json:3", "line 3", "--interface", "$DM_INTERFACE", or ""
	Field string // "" for the file as a whole
	Msg   string
	err   error // what it wraps, if anything (fs.ErrNotExist)
}

func (e *ConfigError) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Where != "" {
		s = e.Where + ": " + s
	}
	return s
}

func (e *ConfigError) Unwrap() error { return e.err }

// SetOrigin records where the value of field came from when it is not the
// file ("--interface", "$DM_INTERFACE"): Validate's errors about it then
// name that place instead of a line of the file.
func (c *Config) SetOrigin(field, where string) {
	if c.origin == nil {
		c.origin = map[string]string{}
	}
	c.origin[field] = where
}

// where is where field (or, failing that, the nearest enclosing field) was
// set: "file:line", "line N", a flag or a variable; "" when unknown (a
// default).
func (c *Config) where(field string) string {
	for f := field; f != ""; f = parentField(f) {
		if w, ok := c.origin[f]; ok {
			return w
		}
	}
	return ""
}

// parentField drops the last segment of a field path; labels are quoted
// and may hold dots (networks."qubasa.clan".pubkey).
func parentField(f string) string {
	last, inQuote := -1, false
	for i := 0; i < len(f); i++ {
		switch {
		case inQuote && f[i] == '\\':
			i++
		case f[i] == '"':
			inQuote = !inQuote
		case f[i] == '.' && !inQuote:
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	return f[:last]
}

// ApplyDefaults fills every unset field with its default.
func (c *Config) ApplyDefaults() {
	if c.Interface == "" {
		c.Interface = DefaultInterface
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.StateDir, "node.key")
	}
	if c.Ports.Gossip == 0 {
		c.Ports.Gossip = mesh.DefaultGossipPort
	}
	if c.Ports.HTTP == 0 {
		c.Ports.HTTP = mesh.DefaultHTTPPort
	}
	if c.Ports.DNS == 0 {
		c.Ports.DNS = DefaultDNSPort
	}
	if c.ControlSocket == "" {
		c.ControlSocket = DefaultControlSocket
	}
	if c.MetricsListen == "" {
		c.MetricsListen = DefaultMetricsListen
	}
	if c.DNS.JSONFile == "" {
		c.DNS.JSONFile = filepath.Join(c.StateDir, "dns.json")
	}
	if c.DataDir == "" {
		c.DataDir = filepath.Join(c.StateDir, "data")
	}
	if c.KnownHostsFile == "" {
		c.KnownHostsFile = filepath.Join(c.StateDir, "known_hosts")
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = Duration(2 * time.Second)
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = Duration(crdt.DefaultMaxSkew)
	}
	if c.ReachabilityTTL == 0 {
		c.ReachabilityTTL = Duration(10 * time.Minute)
	}
	if c.TSARetry == 0 {
		c.TSARetry = Duration(30 * time.Second)
	}
}

// Joined is a parsed network of the configuration.
type Joined struct {
	Label     string
	ID        crdt.PublicKey
	Priority  float64
	Bootstrap []string
	Hostnames []string
	Publish   []Publish
}

// JoinedNetworks returns the validated networks, sorted by label.
func (c *Config) JoinedNetworks() []Joined {
	var out []Joined
	for label, n := range c.Networks {
		id, err := crdt.ParsePublicKey(n.PubKey)
		if err != nil {
			continue
		}
		j := Joined{Label: label, ID: id, Priority: 1, Bootstrap: n.BootstrapPeers, Hostnames: c.Hostnames, Publish: n.Publish}
		if n.Priority != nil {
			j.Priority = *n.Priority
		}
		if n.Hostnames != nil {
			j.Hostnames = n.Hostnames
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b Joined) int { return strings.Compare(a.Label, b.Label) })
	return out
}

// KeyPath resolves KeyFile: a relative path is looked up in systemd's
// credentials directory when there is one, else in the state directory.
func (c *Config) KeyPath() string {
	if filepath.IsAbs(c.KeyFile) {
		return c.KeyFile
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		return filepath.Join(d, c.KeyFile)
	}
	return filepath.Join(c.StateDir, c.KeyFile)
}

// StatePath is the state file.
func (c *Config) StatePath() string { return filepath.Join(c.StateDir, "state.bin") }

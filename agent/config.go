package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
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

func parseConfig(b []byte, file string) (*Config, error) {
	p := &configParser{src: b, file: file, origin: map[string]string{}}
	if err := p.syntax(); err != nil {
		return nil, err
	}
	p.dec = json.NewDecoder(bytes.NewReader(b))
	p.dec.UseNumber()
	p.value(reflect.TypeFor[Config](), "", 0)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	c := &Config{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil { // the walk above should have caught it
		return nil, &ConfigError{Where: p.place(0), Msg: err.Error()}
	}
	c.origin = p.origin
	return c, nil
}

// configParser walks a configuration's JSON against the Config type before
// it is decoded, so that each problem is reported with its line, the
// field's path and, for an unknown key, the closest known one.
type configParser struct {
	src    []byte
	file   string
	dec    *json.Decoder
	errs   []error
	origin map[string]string // field path → "file:line"
}

// place is "file:line" (or "line N") of byte offset off.
func (p *configParser) place(off int64) string {
	line := 1 + bytes.Count(p.src[:min(int(off), len(p.src))], []byte("\n"))
	if p.file == "" {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("%s:%d", p.file, line)
}

func (p *configParser) fail(off int64, field, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{Where: p.place(off), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// syntax reports a file that is not JSON, saying where and, for the usual
// slips, what is missing.
func (p *configParser) syntax() error {
	if len(bytes.TrimSpace(p.src)) == 0 {
		return &ConfigError{Where: p.place(0), Msg: "the file is empty; it needs at least {\"networks\": {\"<name>\": {\"pubkey\": \"ssh-ed25519 AAAA…\"}}}"}
	}
	var v any
	err := json.Unmarshal(p.src, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		if _, ok := v.(map[string]any); !ok && err == nil {
			return &ConfigError{Where: p.place(0), Msg: "the configuration must be a JSON object: {\"interface\": \"wg0\", \"networks\": {…}}"}
		}
		return nil
	}
	off := se.Offset
	msg := se.Error()
	if strings.Contains(msg, "invalid character '") {
		off = max(0, off-1) // the offset is just past the bad character
	}
	col := int(off) - bytes.LastIndexByte(p.src[:min(int(off), len(p.src))], '\n')
	where := fmt.Sprintf("%s, column %d", p.place(off), col)
	return &ConfigError{Where: where, Msg: "not valid JSON: " + explainSyntax(msg)}
}

// explainSyntax says in a JSON author's words what encoding/json found.
func explainSyntax(msg string) string {
	ch := ""
	if i := strings.Index(msg, "'"); i >= 0 {
		if j := strings.Index(msg[i+1:], "'"); j >= 0 {
			ch = msg[i+1 : i+1+j]
		}
	}
	switch {
	case strings.Contains(msg, "unexpected end of JSON input"):
		return "the file ends too early: a closing } or ] (or a quote) is missing"
	case strings.Contains(msg, "looking for beginning of object key string"):
		if ch == "}" {
			return "a comma before } has nothing after it (JSON allows no trailing comma)"
		}
		return fmt.Sprintf("found %s where a key in double quotes should be (JSON has no comments and no unquoted keys)", ch)
	case strings.Contains(msg, "after object key:value pair"):
		return fmt.Sprintf("found %s after a value: a comma (or a closing }) is missing before it", ch)
	case strings.Contains(msg, "after object key"):
		return fmt.Sprintf("found %s after a key: a colon is missing", ch)
	case strings.Contains(msg, "after array element"):
		return fmt.Sprintf("found %s in a list: a comma (or a closing ]) is missing before it", ch)
	case strings.Contains(msg, "looking for beginning of value"):
		if ch == "]" {
			return "a comma before ] has nothing after it (JSON allows no trailing comma)"
		}
		return fmt.Sprintf("found %s where a value should be: text in double quotes, a number, true, false, a list […] or an object {…}", ch)
	case strings.Contains(msg, "after top-level value"):
		return fmt.Sprintf("found %s after the end of the configuration's object", ch)
	case strings.Contains(msg, "in string literal"):
		return "a control character (a line break or tab) inside text in quotes; write it as \\n or \\t"
	}
	return msg
}

var durationType = reflect.TypeFor[Duration]()

// value walks one JSON value that should decode into t; path is its field.
func (p *configParser) value(t reflect.Type, path string, keyOff int64) {
	tok, _ := p.dec.Token() // the file is valid JSON: no errors here
	if tok == nil {
		return // null leaves the default, as encoding/json does
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	mismatch := func(want string) {
		p.fail(keyOff, path, "is %s; want %s", describe(tok), want)
		p.skip(tok)
	}
	switch {
	case t == durationType:
		switch v := tok.(type) {
		case string:
			if _, err := time.ParseDuration(v); err != nil {
				p.fail(keyOff, path, "%q is not a duration like \"90s\", \"5m\" or \"24h\"", v)
			}
		case json.Number:
		default:
			mismatch(`a duration like "90s" or "5m"`)
		}
	case t.Kind() == reflect.Struct:
		if tok != json.Delim('{') {
			mismatch("an object {…}")
			return
		}
		fields := structFields(t)
		seen := map[string]int64{}
		for p.dec.More() {
			kt, _ := p.dec.Token()
			key := kt.(string)
			off := p.dec.InputOffset()
			sub := key
			if path != "" {
				sub = path + "." + key
			}
			if first, dup := seen[key]; dup {
				p.fail(off, sub, "appears twice (first at %s); only one can count", p.place(first))
			}
			seen[key] = off
			f, ok := fields[key]
			if !ok {
				p.fail(off, sub, "%s", unknownKey(key, path, fields))
				p.skipValue()
				continue
			}
			p.origin[sub] = p.place(off)
			p.value(f, sub, off)
		}
		p.dec.Token() // }
	case t.Kind() == reflect.Map:
		if tok != json.Delim('{') {
			mismatch("an object {…}, e.g. {\"clan\": {\"pubkey\": \"ssh-ed25519 AAAA…\"}}")
			return
		}
		for p.dec.More() {
			kt, _ := p.dec.Token()
			off := p.dec.InputOffset()
			sub := fmt.Sprintf("%s.%q", path, kt.(string))
			p.origin[sub] = p.place(off)
			p.value(t.Elem(), sub, off)
		}
		p.dec.Token()
	case t.Kind() == reflect.Slice:
		if tok != json.Delim('[') {
			if s, ok := tok.(string); ok {
				mismatch(fmt.Sprintf("a list, e.g. [%q]", s))
			} else {
				mismatch("a list […]")
			}
			return
		}
		for i := 0; p.dec.More(); i++ {
			p.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i), p.dec.InputOffset())
		}
		p.dec.Token()
	case t.Kind() == reflect.String:
		if _, ok := tok.(string); !ok {
			mismatch("text in double quotes")
		}
	case t.Kind() == reflect.Bool:
		if _, ok := tok.(bool); !ok {
			mismatch("true or false")
		}
	case t.Kind() == reflect.Int:
		n, ok := tok.(json.Number)
		if !ok {
			mismatch("a whole number, without quotes")
		} else if _, err := n.Int64(); err != nil {
			p.fail(keyOff, path, "%s is not a whole number", n)
		}
	case t.Kind() == reflect.Float64:
		if _, ok := tok.(json.Number); !ok {
			mismatch("a number such as 1 or 1.5, without quotes")
		}
	default:
		p.skip(tok)
	}
}

// skipValue consumes the next value whole.
func (p *configParser) skipValue() {
	tok, _ := p.dec.Token()
	p.skip(tok)
}

// skip consumes the rest of a value whose first token was tok.
func (p *configParser) skip(tok json.Token) {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return
	}
	for depth := 1; depth > 0; {
		t, err := p.dec.Token()
		if err != nil {
			return
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// describe names what a JSON token is, for "is X; want Y".
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case string:
		if len(v) > 40 {
			v = v[:37] + "…"
		}
		return fmt.Sprintf("the text %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return fmt.Sprintf("%v", v)
	case json.Delim:
		if v == '{' {
			return "an object {…}"
		}
		return "a list […]"
	}
	return fmt.Sprint(tok)
}

// structFields maps the JSON keys of a struct type to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f.Type
	}
	return out
}

// unknownKey says that key is not known under path, and what was meant:
// the same key in the file's spelling (bootstrapPeers, the NixOS option's
// name, is bootstrap_peers), the closest known key, or where the key
// belongs if it is known elsewhere.
func unknownKey(key, path string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	slices.Sort(known)
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	for _, k := range known {
		if norm(k) == norm(key) {
			if strings.ToLower(key) != key && strings.Contains(k, "_") {
				return fmt.Sprintf("unknown key; did you mean %q? (this file spells keys in snake_case: the NixOS option %s is %s here)", k, key, k)
			}
			return fmt.Sprintf("unknown key; did you mean %q?", k)
		}
	}
	// Close enough to be a slip: one edit in a short key, a third of a
	// long one.
	best, bestD := "", max(1, len(norm(key))/3)+1
	for _, k := range known {
		if d := editDistance(norm(key), norm(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", best)
	}
	if elsewhere := keyHome(key); elsewhere != "" && elsewhere != path {
		return fmt.Sprintf("unknown key here; it belongs in %s", elsewhere)
	}
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	return fmt.Sprintf("unknown key; the keys %s are %s", where, strings.Join(known, ", "))
}

// keyHome finds where key is a field of the configuration
// ("networks.<name>" for pubkey), "" if nowhere.
func keyHome(key string) string {
	var find func(t reflect.Type, path string, depth int) string
	find = func(t reflect.Type, path string, depth int) string {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if depth > 4 {
			return ""
		}
		switch t.Kind() {
		case reflect.Map:
			return find(t.Elem(), path+".<name>", depth+1)
		case reflect.Struct:
			if t == durationType {
				return ""
			}
			fields := structFields(t)
			if _, ok := fields[key]; ok {
				return path
			}
			names := slices.Sorted(maps.Keys(fields))
			for _, n := range names {
				sub := n
				if path != "" {
					sub = path + "." + n
				}
				if h := find(fields[n], sub, depth+1); h != "" {
					return h
				}
			}
		}
		return ""
	}
	return find(reflect.TypeFor[Config](), "", 0)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours ("netwroks") cost 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
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

// Validate checks the configuration and names every bad field and why.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Where: c.where(field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Interface == "" || len(c.Interface) > 15 || strings.ContainsAny(c.Interface, "/ \t") {
		bad("interface", "%q is not an interface name", c.Interface)
	}
	if !filepath.IsAbs(c.StateDir) {
		bad("state_dir", "%q must be an absolute path", c.StateDir)
	}
	if c.KeyFile == "" {
		bad("key_file", "is empty")
	}
	checkNames := func(field string, names []string) {
		for _, h := range names {
			if err := crdt.ValidateHostname(h); err != nil {
				bad(field, "%v (a hostname is relative to the network's domain, e.g. \"mors\")", err)
			}
		}
	}
	checkNames("hostnames", c.Hostnames)
	if len(c.Networks) == 0 {
		bad("networks", "no network is joined: add one with its admin key (networks.<name>.pubkey)")
	}
	seen := map[crdt.PublicKey]string{}
	labels := make([]string, 0, len(c.Networks))
	for l := range c.Networks {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	for _, label := range labels {
		n := c.Networks[label]
		field := fmt.Sprintf("networks.%q", label)
		if n.PubKey == "" {
			bad(field+".pubkey", "is required: the network's admin key, \"ssh-ed25519 AAAA…\"")
		} else if k, err := crdt.ParsePublicKey(n.PubKey); err != nil {
			bad(field+".pubkey", "%v", err)
		} else if other, dup := seen[k]; dup {
			bad(field+".pubkey", "is the same network as networks.%q", other)
		} else {
			seen[k] = label
		}
		if n.Priority != nil && (*n.Priority != *n.Priority || *n.Priority < -1e9 || *n.Priority > 1e9) {
			bad(field+".priority", "%v is not a usable number", *n.Priority)
		}
		for _, u := range n.BootstrapPeers {
			if _, err := mesh.BootstrapURL(u); err != nil {
				bad(field+".bootstrap_peers", "%v", err)
			}
		}
		checkNames(field+".hostnames", n.Hostnames)
		for i, p := range n.Publish {
			pf := fmt.Sprintf("%s.publish[%d]", field, i)
			if err := crdt.ValidateNamespaceName(p.Namespace); err != nil {
				bad(pf+".namespace", "%v", err)
			}
			if p.Key == "" {
				bad(pf+".key", "is required")
			}
			if (p.Value == "") == (p.ValueFile == "") {
				bad(pf, "needs exactly one of value and value_file")
			}
			if p.ValueFile != "" && !filepath.IsAbs(p.ValueFile) {
				bad(pf+".value_file", "%q must be an absolute path", p.ValueFile)
			}
		}
	}
	if c.BindAddress != "" {
		if _, err := netip.ParseAddr(c.BindAddress); err != nil {
			bad("bind_address", "%q is not an IP address", c.BindAddress)
		}
	}
	for _, p := range []struct {
		name string
		port int
	}{{"ports.gossip", c.Ports.Gossip}, {"ports.http", c.Ports.HTTP}, {"ports.dns", c.Ports.DNS}} {
		if p.port < 1 || p.port > 65535 {
			bad(p.name, "%d is not a port", p.port)
		}
	}
	if c.Ports.Gossip == c.Ports.HTTP {
		bad("ports.http", "is the same port as ports.gossip (%d)", c.Ports.Gossip)
	}
	for _, l := range c.DNS.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			bad("dns.listen", "%q is not an address:port like \"127.0.0.1:5353\"", l)
		}
	}
	for _, f := range c.DNS.Forwarders {
		if _, err := netip.ParseAddrPort(f); err != nil {
			bad("dns.forwarders", "%q is not an address:port like \"9.9.9.9:53\"", f)
		}
	}
	for _, u := range c.TSAURLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			bad("tsa_urls", "%q is not an http(s) URL", u)
		}
	}
	if c.MetricsListen != "off" {
		ap, err := netip.ParseAddrPort(c.MetricsListen)
		if err != nil || !ap.Addr().IsLoopback() {
			bad("metrics_listen", "%q must be a loopback address:port (metrics are not for the network) or \"off\"", c.MetricsListen)
		}
	}
	if !filepath.IsAbs(c.ControlSocket) {
		bad("control_socket", "%q must be an absolute path", c.ControlSocket)
	}
	if c.DNS.JSONFile != "off" && !filepath.IsAbs(c.DNS.JSONFile) {
		bad("dns.json_file", "%q must be an absolute path or \"off\"", c.DNS.JSONFile)
	}
	if c.KnownHostsFile != "off" && !filepath.IsAbs(c.KnownHostsFile) {
		bad("known_hosts_file", "%q must be an absolute path or \"off\"", c.KnownHostsFile)
	}
	if c.DataDir != "off" && !filepath.IsAbs(c.DataDir) {
		bad("data_dir", "%q must be an absolute path or \"off\"", c.DataDir)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	if d := time.Duration(c.Heartbeat); d != 0 && d < 10*time.Second {
		bad("heartbeat", "%v is too short (at least 10s)", d)
	}
	if d := time.Duration(c.SyncInterval); d < 100*time.Millisecond {
		bad("sync_interval", "%v is too short (at least 100ms)", d)
	}
	if d := time.Duration(c.MaxSkew); d < time.Second || d > time.Hour {
		bad("max_skew", "%v is outside [1s, 1h]", d)
	}
	if d := time.Duration(c.ReachabilityTTL); d < 5*time.Second || d > 24*time.Hour {
		bad("reachability_ttl", "%v is outside [5s, 24h]", d)
	}
	if d := time.Duration(c.TSARetry); d < time.Second || d > time.Hour {
		bad("tsa_retry", "%v is outside [1s, 1h]", d)
	}
	return errors.Join(errs...)
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

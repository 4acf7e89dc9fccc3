package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

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

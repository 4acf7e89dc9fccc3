package agent

import (
	"fmt"
	"slices"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// live is the configuration the agent runs with now. It is never modified:
// Reload swaps in a new one whole, and every use reads one snapshot
// (a.conf.Load()) for the whole of what it does, so no part ever sees half
// of a reload.
type live struct {
	*Config
	// Nets are Config.Networks, parsed and sorted by label.
	Nets []Joined
}

func newLive(cfg *Config) *live { return &live{Config: cfg, Nets: cfg.JoinedNetworks()} }

// joined reports whether network id is one of the configured networks.
func (l *live) joined(id crdt.PublicKey) bool {
	return slices.ContainsFunc(l.Nets, func(j Joined) bool { return j.ID == id })
}

// network finds a configured network by its label or key.
func (l *live) network(s string) (Joined, error) {
	for _, n := range l.Nets {
		if n.Label == s {
			return n, nil
		}
	}
	id, err := crdt.ParsePublicKey(s)
	if err != nil {
		return Joined{}, fmt.Errorf("network %q is neither a configured label nor a key", s)
	}
	for _, n := range l.Nets {
		if n.ID == id {
			return n, nil
		}
	}
	return Joined{}, fmt.Errorf("network %s is not joined", id.Short())
}

// heartbeat is how often the host record in a network with host TTL ttl
// is re-signed.
func (l *live) heartbeat(ttl time.Duration) time.Duration {
	if d := time.Duration(l.Heartbeat); d > 0 {
		return d
	}
	return min(ttl/4, time.Hour)
}

// Reload applies a new configuration without a restart (SIGHUP): networks
// joined and left, hostnames, priorities, bootstrap sources, timestamp
// authorities and the heartbeat take effect at once. The other settings
// are listed in needRestart and keep the values the agent runs with.
func (a *Agent) Reload(cfg *Config) (needRestart []string, err error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new configuration not applied: %w", err)
	}
	old := a.conf.Load().Config
	for field, changed := range map[string]bool{
		"interface":        cfg.Interface != old.Interface,
		"ports":            cfg.Ports != old.Ports,
		"key_file":         cfg.KeyPath() != old.KeyPath(),
		"state_dir":        cfg.StateDir != old.StateDir,
		"bind_address":     cfg.BindAddress != old.BindAddress,
		"dns":              !slices.Equal(cfg.DNS.Listen, old.DNS.Listen) || !slices.Equal(cfg.DNS.Forwarders, old.DNS.Forwarders) || cfg.DNS.JSONFile != old.DNS.JSONFile,
		"control_socket":   cfg.ControlSocket != old.ControlSocket,
		"metrics_listen":   cfg.MetricsListen != old.MetricsListen,
		"log.format":       cfg.Log.Format != old.Log.Format,
		"sync_interval":    cfg.SyncInterval != old.SyncInterval,
		"max_skew":         cfg.MaxSkew != old.MaxSkew,
		"reachability_ttl": cfg.ReachabilityTTL != old.ReachabilityTTL,
		"tsa_retry":        cfg.TSARetry != old.TSARetry,
		"data_dir":         cfg.DataDir != old.DataDir,
		"known_hosts_file": cfg.KnownHostsFile != old.KnownHostsFile,
	} {
		if changed {
			needRestart = append(needRestart, field)
		}
	}
	slices.Sort(needRestart)
	next := *old
	next.Hostnames, next.Networks, next.TSAURLs, next.Heartbeat, next.Log.Level = cfg.Hostnames, cfg.Networks, cfg.TSAURLs, cfg.Heartbeat, cfg.Log.Level
	a.conf.Store(newLive(&next))
	kick(a.reloaded)
	return needRestart, nil
}

package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Reload applies a new configuration without a restart (SIGHUP): networks
// joined and left, hostnames, priorities, bootstrap sources. Settings that
// need a restart (interface, ports, key, state directory, bind address,
// listeners) are reported as such and kept as they are.
func (a *Agent) Reload(ctx context.Context, cfg *Config) (needRestart []string, err error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new configuration not applied: %w", err)
	}
	old := a.cfg
	for field, changed := range map[string]bool{
		"interface":      cfg.Interface != old.Interface,
		"ports":          cfg.Ports != old.Ports,
		"key_file":       cfg.KeyPath() != old.KeyPath(),
		"state_dir":      cfg.StateDir != old.StateDir,
		"bind_address":   cfg.BindAddress != old.BindAddress,
		"dns":            !slices.Equal(cfg.DNS.Listen, old.DNS.Listen) || !slices.Equal(cfg.DNS.Forwarders, old.DNS.Forwarders),
		"control_socket": cfg.ControlSocket != old.ControlSocket,
		"metrics_listen": cfg.MetricsListen != old.MetricsListen,
	} {
		if changed {
			needRestart = append(needRestart, field)
		}
	}
	slices.Sort(needRestart)
	nets := cfg.JoinedNetworks()
	a.mu.Lock()
	oldNets := a.nets
	a.nets = nets
	a.cfg.Hostnames, a.cfg.Networks, a.cfg.TSAURLs = cfg.Hostnames, cfg.Networks, cfg.TSAURLs
	a.mu.Unlock()
	var fresh []Joined
	a.store.Write(func(st *crdt.State, _ time.Time) []*crdt.Record {
		for _, n := range nets {
			if !slices.ContainsFunc(oldNets, func(o Joined) bool { return o.ID == n.ID }) {
				st.Join(n.ID)
				fresh = append(fresh, n)
			}
		}
		for _, o := range oldNets {
			if !slices.ContainsFunc(nets, func(n Joined) bool { return n.ID == o.ID }) {
				st.Leave(o.ID)
				a.log.Info("left network", "network", o.Label)
			}
		}
		return nil
	})
	a.persist.changed()
	for _, n := range fresh {
		a.log.Info("joined network", "network", n.Label)
		for _, u := range n.Bootstrap {
			go func() {
				if err := a.node.Bootstrap(ctx, u); err != nil {
					a.log.Info("bootstrap of a newly joined network failed; anti-entropy will bring its records", "url", u, "err", err)
				}
			}()
		}
	}
	kick(a.ownKick)
	kick(a.viewKick)
	a.node.SyncNow()
	return needRestart, nil
}

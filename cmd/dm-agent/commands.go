package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/data-mesher/data-mesher/admin"
	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/doctor"
)

func init() {
	flagSetBuilders["run"] = func(fs *flag.FlagSet) { addConfigFlags(fs, true) }
	flagSetBuilders["keygen"] = func(fs *flag.FlagSet) { keygenFlags(fs) }
	flagSetBuilders["network create"] = func(fs *flag.FlagSet) { networkFlags(fs) }
	flagSetBuilders["settings"] = func(fs *flag.FlagSet) { settingsFlags(fs) }
	for _, n := range []string{"status", "hosts", "resolve", "export"} {
		flagSetBuilders[n] = func(fs *flag.FlagSet) { clientFlags(fs, n) }
	}
	flagSetBuilders["doctor"] = func(fs *flag.FlagSet) { doctorFlags(fs) }
}

var runCmd = &command{
	name: "run", summary: "run the daemon", usage: "[options]",
	help: `Runs the agent: loads its state, answers DNS on the tunnel address at
once, joins the mesh, and keeps running until SIGTERM (state flushed) or
SIGINT. SIGHUP reloads the configuration (networks, hostnames, bootstrap
sources; other changes are logged as needing a restart).

Examples:
  dm-agent run --config /etc/data-mesher/config.json
  DM_LOG_LEVEL=debug dm-agent run --interface wg-mesh --hostnames mors`,
	run: func(c *cli, args []string) error {
		fs := newFlags("run", c.stderr)
		cf := addConfigFlags(fs, true)
		if rest, err := parse(fs, args); err != nil || len(rest) > 0 {
			return fmt.Errorf("%w: %v %v", errUsage, err, rest)
		}
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		level := new(slog.LevelVar)
		_ = level.UnmarshalText([]byte(cfg.Log.Level))
		var h slog.Handler = slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level})
		if cfg.Log.Format == "json" {
			h = slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: level})
		}
		log := slog.New(h)
		// A daemon whose state is mostly long-lived: keep the heap's
		// headroom small (GOGC or GOMEMLIMIT override this).
		if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
			debug.SetGCPercent(50)
			go agent.BoundHeap(context.Background(), 10*time.Second)
		}
		a, err := agent.New(cfg, agent.Options{Logger: log, Ready: func() {
			_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
		}})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		go func() {
			for s := range sigs {
				if s != syscall.SIGHUP {
					log.Info("signal received; shutting down", "signal", s.String())
					_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
					cancel()
					return
				}
				_, _ = daemon.SdNotify(false, daemon.SdNotifyReloading)
				newCfg, err := cf.load()
				if err == nil {
					var restart []string
					restart, err = a.Reload(newCfg)
					_ = level.UnmarshalText([]byte(newCfg.Log.Level))
					if len(restart) > 0 {
						log.Warn("configuration reloaded; these changes need a restart", "fields", restart)
					} else if err == nil {
						log.Info("configuration reloaded")
					}
				}
				if err != nil {
					log.Error("configuration not reloaded", "err", err)
				}
				_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
			}
		}()
		if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
			go func() {
				t := time.NewTicker(interval / 2)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
					}
				}
			}()
		}
		log.Info("starting", "version", agent.Version, "node", a.PublicKey().AuthorizedKey())
		return a.Run(ctx)
	},
}

type keygenOpts struct {
	out, comment *string
	ifMissing    *bool
}

func keygenFlags(fs *flag.FlagSet) *keygenOpts {
	return &keygenOpts{
		out:       fs.String("out", "", "key file to create (default: the configuration's key_file)"),
		comment:   fs.String("comment", "", "comment in the public key (e.g. the host name)"),
		ifMissing: fs.Bool("if-missing", false, "keep an existing key (print its public key) instead of failing"),
	}
}

var keygenCmd = &command{
	name: "keygen", summary: "make a node or admin key", usage: "[--out FILE]",
	help: `Creates an ed25519 key in OpenSSH format, readable only by its owner,
and FILE.pub beside it; prints the public key. It never overwrites a key
(--if-missing keeps an existing one, for first-start scripts).

Examples:
  dm-agent keygen --out /var/lib/data-mesher/node.key
  dm-agent keygen --out admin.key --comment "clan admin"`,
	run: func(c *cli, args []string) error {
		fs := newFlags("keygen", c.stderr)
		o := keygenFlags(fs)
		if _, err := parse(fs, args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		path := *o.out
		if path == "" {
			cf := &configFlags{path: defaultConfig}
			if cfg, err := cf.load(); err == nil {
				path = cfg.KeyPath()
			} else {
				return fmt.Errorf("%w: --out is required without a configuration", errUsage)
			}
		}
		if *o.ifMissing {
			if _, err := os.Stat(path); err == nil {
				k, err := agent.LoadKey(path)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.stdout, k.Public().AuthorizedKey())
				return nil
			}
		}
		k, err := agent.WriteKey(path, *o.comment)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, k.Public().AuthorizedKey())
		return nil
	},
}

type networkOpts struct {
	domain, adminKey, out, hostTTL *string
	freeTSA, publish, replace      *bool
	witness, tsaRoot, tsaURL       multi
	cf                             *configFlags
}

func networkFlags(fs *flag.FlagSet) *networkOpts {
	o := &networkOpts{
		domain:   fs.String("domain", "", "the network's DNS domain, e.g. clan (required)"),
		adminKey: fs.String("admin-key", "admin.key", "admin key file; created if it does not exist"),
		out:      fs.String("out", "", "write the signed settings as data.json here (a bootstrap file)"),
		hostTTL:  fs.String("host-ttl", "24h", "how long a host stays without a heartbeat"),
		freeTSA:  fs.Bool("freetsa", false, "trust FreeTSA (freetsa.org) as timestamp authority"),
		publish:  fs.Bool("publish", false, "hand the settings to the local agent (it must have joined the network)"),
		replace:  fs.Bool("replace", false, "with --publish: replace settings the agent already has (drops their bans, overrides, extra records)"),
	}
	fs.Var(&o.witness, "witness", "a witness node's key (repeatable): it countersigns claims; works offline")
	fs.Var(&o.tsaRoot, "tsa-root", "PEM root certificate of a timestamp authority to trust (repeatable)")
	fs.Var(&o.tsaURL, "tsa-url", "URL of that timestamp authority (repeatable)")
	o.cf = addConfigFlags(fs, false)
	return o
}

var networkCreateCmd = &command{
	name: "network create", summary: "create a network: admin key and first settings", usage: "--domain DOMAIN [options]",
	help: `Creates a network: its admin key (the network's identity) and its first
signed settings. Claims become active only once an attestor vouches for
them, so name at least one: witnesses (nodes of the mesh, no internet
needed) or a timestamp authority.

Put the printed "pubkey" into every node's configuration, keep the admin
key safe, and give the settings to the mesh (--publish on a node that
joined the network, or --out to make a bootstrap file). --publish refuses
when the agent already has settings for the network: newer settings would
replace them with their bans, overrides and extra records. Change them
with "dm-agent settings", or start over with --replace.

Examples:
  dm-agent network create --domain clan --admin-key admin.key \
      --witness "ssh-ed25519 AAAA… node1" --out clan-settings.json
  dm-agent network create --domain clan --freetsa --publish`,
	run: func(c *cli, args []string) error {
		fs := newFlags("network create", c.stderr)
		o := networkFlags(fs)
		if _, err := parse(fs, args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *o.domain == "" {
			return fmt.Errorf("%w: --domain is required", errUsage)
		}
		ttl, err := time.ParseDuration(*o.hostTTL)
		if err != nil {
			return fmt.Errorf("%w: --host-ttl: %v", errUsage, err)
		}
		key, err := loadOrCreate(*o.adminKey, "data-mesher admin "+*o.domain, c)
		if err != nil {
			return err
		}
		b, err := admin.NewNetwork(key.Public(), *o.domain, ttl)
		if err != nil {
			return err
		}
		if *o.publish && !*o.replace {
			if err := refuseExisting(o.cf, key.Public().AuthorizedKey()); err != nil {
				return err
			}
		}
		if err := b.Apply(admin.Edit{Witness: o.witness, TSARootFiles: o.tsaRoot, TSAURL: o.tsaURL, FreeTSA: *o.freeTSA}); err != nil {
			return err
		}
		rec, err := b.Sign(key, time.Now())
		if err != nil {
			return err
		}
		s := b.Settings()
		if len(s.Witnesses) == 0 && len(s.TSARoots) == 0 {
			fmt.Fprintln(c.stderr, "warning: no witness and no timestamp authority: no claim can become active until `dm-agent settings` adds one")
		}
		if err := deliver(c, o.cf, rec, *o.out, *o.publish); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "network %s\npubkey: %s\n\nIn each node's configuration:\n  \"networks\": {\"%s\": {\"pubkey\": %q, \"priority\": 1}}\n",
			s.Domain, key.Public().AuthorizedKey(), s.Domain, key.Public().AuthorizedKey())
		return nil
	},
}

// loadOrCreate reads the admin key at path, creating it first if there is
// none.
func loadOrCreate(path, comment string, c *cli) (admin.Key, error) {
	if _, err := os.Stat(path); err == nil {
		return agent.LoadKey(path)
	}
	k, err := agent.WriteKey(path, comment)
	if err == nil {
		fmt.Fprintf(c.stderr, "created admin key %s (keep it safe: it is the network)\n", path)
	}
	return k, err
}

// refuseExisting fails if the running agent already has settings for the
// network: new settings would replace them, and with them the network's
// policy (bans, overrides, extra records).
func refuseExisting(cf *configFlags, network string) error {
	r, err := agentSettings(cf, network, "")
	if err != nil || r == nil {
		return err
	}
	return fmt.Errorf("the agent already has settings for this network (signed at %s): `dm-agent settings` changes them; --replace publishes new ones, dropping their bans, overrides and extra records",
		r.Time().UTC().Format(time.RFC3339))
}

// deliver writes a signed settings record to a file and/or the agent.
func deliver(c *cli, cf *configFlags, rec *admin.Record, out string, publish bool) error {
	if out != "" {
		b, err := admin.DataJSON(rec)
		if err != nil {
			return err
		}
		if err := agent.WriteFileAtomic(out, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "wrote %s\n", out)
	}
	if publish {
		res, err := control.NewClient(cf.socketPath()).Publish(context.Background(), rec)
		if err != nil {
			return err
		}
		if len(res.Rejected) > 0 {
			return fmt.Errorf("the agent refused the settings: %s", strings.Join(res.Rejected, "; "))
		}
		fmt.Fprintf(c.stderr, "published to the local agent (added %d, already known %d, superseded %d)\n", res.Added, res.Known, res.Superseded)
	}
	return nil
}

type settingsOpts struct {
	network, adminKey, from, out, domain, hostTTL, dnsTTL, restricted *string
	freeTSA, show                                                     *bool
	ban, unban, allow, disallow, override, removeOverride             multi
	witness, removeWitness, tsaRoot, tsaURL, removeTSAURL             multi
	extra, removeExtra                                                multi
	cf                                                                *configFlags
}

func settingsFlags(fs *flag.FlagSet) *settingsOpts {
	o := &settingsOpts{
		network:    fs.String("network", "", "network label of the configuration, or its key (required)"),
		adminKey:   fs.String("admin-key", "admin.key", "the network's admin key"),
		from:       fs.String("from", "", "take the current settings from this data.json instead of the agent"),
		out:        fs.String("out", "", "write the new settings as data.json here instead of publishing"),
		domain:     fs.String("domain", "", "change the domain"),
		hostTTL:    fs.String("host-ttl", "", "change the host TTL (e.g. 24h)"),
		dnsTTL:     fs.String("dns-ttl", "", "change the TTL of DNS answers (e.g. 60s)"),
		restricted: fs.String("restricted", "", "true: only allowed nodes may publish; false: anyone"),
		freeTSA:    fs.Bool("freetsa", false, "trust FreeTSA"),
		show:       fs.Bool("show", false, "print the current settings and change nothing"),
	}
	for _, m := range []struct {
		v          *multi
		name, help string
	}{
		{&o.ban, "ban", "ban a node key: its records leave every node"},
		{&o.unban, "unban", "lift a ban"},
		{&o.allow, "allow", "add a key to the allow-list"},
		{&o.disallow, "disallow", "remove a key from the allow-list"},
		{&o.override, "override", "assign a name by decree: name=KEY"},
		{&o.removeOverride, "remove-override", "remove an override: name"},
		{&o.witness, "witness", "add a witness key"},
		{&o.removeWitness, "remove-witness", "remove a witness key"},
		{&o.tsaRoot, "tsa-root", "trust a timestamp authority's PEM root certificate"},
		{&o.tsaURL, "tsa-url", "add a timestamp authority URL"},
		{&o.removeTSAURL, "remove-tsa-url", "remove a timestamp authority URL"},
		{&o.extra, "extra", "add a DNS record: \"name TYPE data [ttl=S]\" (A, AAAA, CNAME, SRV, TXT)"},
		{&o.removeExtra, "remove-extra", "remove DNS records: \"name TYPE\""},
	} {
		fs.Var(m.v, m.name, m.help+" (repeatable)")
	}
	o.cf = addConfigFlags(fs, false)
	return o
}

var settingsCmd = &command{
	name: "settings", summary: "change a network's signed policy (admin)", usage: "--network NAME [edits]",
	help: `Changes a network's settings: reads the current ones from the local agent
(or --from a data.json), applies the edits, signs them with the admin key,
and hands them to the agent, which spreads them to the mesh.

Examples:
  dm-agent settings --network clan --show
  dm-agent settings --network clan --ban "ssh-ed25519 AAAA… laptop"
  dm-agent settings --network clan --witness "ssh-ed25519 AAAA… node2"
  dm-agent settings --network clan --override gate="ssh-ed25519 AAAA…"
  dm-agent settings --network clan --extra "_ssh._tcp.mors SRV 0 0 22 mors" \
      --extra "printer AAAA fd00::99"`,
	run: func(c *cli, args []string) error {
		fs := newFlags("settings", c.stderr)
		o := settingsFlags(fs)
		if _, err := parse(fs, args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *o.network == "" {
			return fmt.Errorf("%w: --network is required", errUsage)
		}
		cur, err := currentSettings(o)
		if err != nil {
			return err
		}
		if *o.show {
			return printSettings(c, cur)
		}
		edit := admin.Edit{Domain: *o.domain, Ban: o.ban, Unban: o.unban, Allow: o.allow, Disallow: o.disallow,
			Override: o.override, RemoveOverride: o.removeOverride, Witness: o.witness, RemoveWitness: o.removeWitness,
			TSARootFiles: o.tsaRoot, FreeTSA: *o.freeTSA, TSAURL: o.tsaURL, RemoveTSAURL: o.removeTSAURL,
			Extra: o.extra, RemoveExtra: o.removeExtra}
		for _, d := range []struct {
			s   string
			dst *time.Duration
		}{{*o.hostTTL, &edit.HostTTL}, {*o.dnsTTL, &edit.DNSTTL}} {
			if d.s != "" {
				v, err := time.ParseDuration(d.s)
				if err != nil {
					return fmt.Errorf("%w: %v", errUsage, err)
				}
				*d.dst = v
			}
		}
		if *o.restricted != "" {
			b := *o.restricted == "true"
			edit.Restricted = &b
		}
		key, err := agent.LoadKey(*o.adminKey)
		if err != nil {
			return err
		}
		b, err := admin.FromSettings(cur)
		if err != nil {
			return err
		}
		if err := b.Apply(edit); err != nil {
			return err
		}
		rec, err := b.Sign(key, time.Now())
		if err != nil {
			return err
		}
		return deliver(c, o.cf, rec, *o.out, *o.out == "")
	},
}

func currentSettings(o *settingsOpts) (*admin.Record, error) {
	if *o.from != "" {
		b, err := os.ReadFile(*o.from)
		if err != nil {
			return nil, err
		}
		r, err := admin.SettingsFromDataJSON(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", *o.from, err)
		}
		return r, nil
	}
	r, err := agentSettings(o.cf, *o.network, " (or use --from FILE)")
	if err == nil && r == nil {
		return nil, fmt.Errorf("the agent has no settings for %s yet: create them with `dm-agent network create`", *o.network)
	}
	return r, err
}

// agentSettings asks the running agent for a network's settings (network:
// its label or key); nil if it has none. dialHint follows an error to reach
// the agent.
func agentSettings(cf *configFlags, network, dialHint string) (*admin.Record, error) {
	r, err := control.NewClient(cf.socketPath()).Settings(context.Background(), network)
	if errors.Is(err, control.ErrNoAgent) {
		return nil, fmt.Errorf("%w%s", err, dialHint)
	}
	return r, err
}

func printSettings(c *cli, r *admin.Record) error {
	b, err := admin.DataJSON(r)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(b)
	return err
}

type clientOpts struct {
	cf      *configFlags
	json    *bool
	network *string
}

func clientFlags(fs *flag.FlagSet, name string) *clientOpts {
	o := &clientOpts{cf: &configFlags{values: map[string]*string{}}}
	def := defaultConfig
	if v := os.Getenv("DM_CONFIG"); v != "" {
		def = v
	}
	fs.StringVar(&o.cf.path, "config", def, "configuration file, to find the control socket ($DM_CONFIG)")
	o.cf.values["control-socket"] = fs.String("control-socket", "", "control socket ($DM_CONTROL_SOCKET)")
	if name != "export" {
		o.json = fs.Bool("json", false, "print JSON")
	}
	if name == "export" {
		o.network = fs.String("network", "", "only this network (label or key)")
	}
	return o
}

// clientArgs parses a client command's flags; it returns them, the other
// arguments, and a client of the running agent.
func clientArgs(c *cli, name string, args []string) (*clientOpts, []string, *control.Client, error) {
	fs := newFlags(name, c.stderr)
	o := clientFlags(fs, name)
	rest, err := parse(fs, args)
	if err != nil {
		return o, nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return o, rest, control.NewClient(o.cf.socketPath()), nil
}

func noArgs(rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, rest)
	}
	return nil
}

func printJSON(c *cli, v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var statusCmd = &command{
	name: "status", summary: "show the running agent's state", usage: "[--json]",
	help: `Shows what the running agent is doing: networks, records, gossip members,
listeners and DNS answers.

Example:
  dm-agent status`,
	run: func(c *cli, args []string) error {
		o, rest, cl, err := clientArgs(c, "status", args)
		if err != nil {
			return err
		}
		if err := noArgs(rest); err != nil {
			return err
		}
		s, err := cl.Status(context.Background())
		if err != nil {
			return err
		}
		if *o.json {
			return printJSON(c, s)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "node\t%s\nversion\t%s, up %s\ninterface\t%s (bind %s)\nlistening\t%s\ngossip\t%d members, synced %v\nDNS\t%d names, %d fast answers, %v\n",
			s.Node, s.Version, time.Duration(s.Uptime*float64(time.Second)).Round(time.Second), s.Interface, s.Bind, strings.Join(s.Listening, ", "),
			s.Members, s.Synced, s.DNS.Names, s.DNS.Fast, s.DNS.Queries)
		for _, n := range s.Networks {
			settings := "no settings yet"
			if n.HasSettings {
				settings = fmt.Sprintf("domain %s, settings of %s, %d attestors", n.Domain, n.Updated.Format(time.RFC3339), n.Attestors)
			}
			fmt.Fprintf(tw, "network %s\tpriority %g, %s; %d records, %d hosts; our names %v; witness %v\n",
				n.Label, n.Priority, settings, n.Records, n.Hosts, n.Names, n.Witness)
		}
		return tw.Flush()
	},
}

var hostsCmd = &command{
	name: "hosts", summary: "list the mesh's hosts and their names", usage: "[--json]",
	help: `Lists every host of the joined networks: addresses, heartbeat, whether it
passes the reachability challenge here, the names it holds and the ones it
claims but does not hold.

Example:
  dm-agent hosts`,
	run: func(c *cli, args []string) error {
		o, rest, cl, err := clientArgs(c, "hosts", args)
		if err != nil {
			return err
		}
		if err := noArgs(rest); err != nil {
			return err
		}
		hs, err := cl.Hosts(context.Background())
		if err != nil {
			return err
		}
		if *o.json {
			return printJSON(c, hs)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NETWORK\tNODE\tADDRESSES\tHEARTBEAT\tREACHABLE\tNAMES")
		for _, h := range hs {
			reach := "yes"
			if h.Self {
				reach = "self"
			} else if !h.Reachable {
				reach = "no"
				if h.Challenge != "" {
					reach = "no: " + h.Challenge
				}
			}
			names := strings.Join(h.Names, ",")
			if len(h.Lost) > 0 {
				names += " (claims but lost: " + strings.Join(h.Lost, ",") + ")"
			}
			node := h.Short
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\n", h.Network, node, strings.Join(h.Addresses, ","),
				time.Since(h.Heartbeat).Round(time.Second), reach, names)
		}
		return tw.Flush()
	},
}

var resolveCmd = &command{
	name: "resolve", summary: "explain how a name resolves here", usage: "NAME [--json]",
	help: `Shows what this node answers for NAME and why: the holder, its addresses,
and how every claim on the name stands (attested when and by whom, host
live, reachable from here).

Example:
  dm-agent resolve mors.clan`,
	run: func(c *cli, args []string) error {
		o, rest, cl, err := clientArgs(c, "resolve", args)
		if err != nil {
			return err
		}
		if len(rest) != 1 {
			return fmt.Errorf("%w: want one NAME", errUsage)
		}
		r, err := cl.Resolve(context.Background(), rest[0])
		if err != nil {
			return err
		}
		if *o.json {
			return printJSON(c, r)
		}
		if r.Found {
			fmt.Fprintf(c.stdout, "%s → %s %s\n", r.Name, strings.Join(r.Addrs, " "), strings.Join(r.Extra, "; "))
			if r.Holder != "" {
				fmt.Fprintf(c.stdout, "held by %s\n", r.Holder)
			}
		} else {
			fmt.Fprintf(c.stdout, "%s does not resolve here\n", r.Name)
		}
		fmt.Fprintf(c.stdout, "why: %s\n", r.Why)
		for _, cl := range r.Contest {
			state := "inactive"
			if cl.Active {
				state = "active"
			}
			when := "not attested"
			if cl.Attested {
				when = "attested " + cl.Time.Format(time.RFC3339) + " by " + cl.By
			}
			fmt.Fprintf(c.stdout, "  claim by %s: %s, %s, host live %v, reachable %v\n", cl.Node, state, when, cl.HostLive, cl.Reachable)
		}
		return nil
	},
}

var exportCmd = &command{
	name: "export", summary: "print data.json of the joined networks", usage: "[--network NAME]",
	help: `Prints the signed records of the joined networks as data.json: a backup,
or a bootstrap file any web server can serve.

Example:
  dm-agent export --network clan > /srv/www/clan/data.json`,
	run: func(c *cli, args []string) error {
		o, rest, cl, err := clientArgs(c, "export", args)
		if err != nil {
			return err
		}
		if err := noArgs(rest); err != nil {
			return err
		}
		data, err := cl.Export(context.Background(), *o.network)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(data)
		return err
	},
}

type doctorOpts struct {
	cf   *configFlags
	json *bool
}

func doctorFlags(fs *flag.FlagSet) *doctorOpts {
	return &doctorOpts{cf: addConfigFlags(fs, true), json: fs.Bool("json", false, "print JSON")}
}

var doctorCmd = &command{
	name: "doctor", summary: "check everything and say what to fix", usage: "[--json]",
	help: `Checks the configuration, the key, the WireGuard interface and peers, the
running agent and its ports, DNS on the tunnel address, the state file, the
networks' settings and attestors, clocks, reachability, split DNS, and this
node's names; prints each with a status and what to do. Exits 1 when a
check fails. Run it as root (reading WireGuard needs CAP_NET_ADMIN).

Examples:
  sudo dm-agent doctor
  sudo dm-agent doctor --json | jq '.[] | select(.status != "ok")'`,
	run: func(c *cli, args []string) error {
		fs := newFlags("doctor", c.stderr)
		o := doctorFlags(fs)
		if _, err := parse(fs, args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		results := doctor.Run(doctor.System(o.cf.path, o.cf.load))
		if err := doctor.Write(c.stdout, results, *o.json); err != nil {
			return err
		}
		if doctor.Failed(results) {
			return errFailed
		}
		return nil
	},
}

var versionCmd = &command{
	name: "version", summary: "print the version", usage: "",
	help: "Prints the version of dm-agent.",
	run: func(c *cli, args []string) error {
		fmt.Fprintf(c.stdout, "dm-agent %s (data format %s)\n", agent.Version, agent.DataFormat)
		return nil
	},
}

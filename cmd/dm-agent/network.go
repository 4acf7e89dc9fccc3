package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/admin"
	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// networkResult is the --json output of network create and of a
// settings edit.
type networkResult struct {
	Domain    string                 `json:"domain"`
	ID        string                 `json:"id"`
	Updated   time.Time              `json:"settings_updated"`
	Out       string                 `json:"out,omitempty"`
	Published *control.PublishResult `json:"published,omitempty"`
}

// durationFlag is a duration flag whose error says what a duration is.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	// 24h, not 24h0m0s.
	s := f.d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
func (f durationFlag) Type() string { return "duration" }
func (f durationFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a duration like 24h, 90m or 60s")
	}
	*f.d = d
	return nil
}

// boolWord is a flag that takes true or false (--restricted=false), and
// nothing else.
type boolWord struct{ v **bool }

func (f boolWord) String() string {
	if *f.v == nil {
		return ""
	}
	return fmt.Sprint(**f.v)
}
func (f boolWord) Type() string { return "bool" }
func (f boolWord) Set(v string) error {
	switch v {
	case "true", "yes", "on":
		b := true
		*f.v = &b
	case "false", "no", "off":
		b := false
		*f.v = &b
	default:
		return fmt.Errorf("want true or false")
	}
	return nil
}

func networkCreateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "create --domain DOMAIN [--out FILE | --publish] [options]",
		Short: "create a network: admin key and first settings",
		Long: `Creates a network: its admin key (the network's identity) and its first
signed settings. Claims become active only once an attestor vouches for
them, so name at least one: witnesses (nodes of the mesh, no internet
needed) or a timestamp authority.

Put the printed "pubkey" into every node's configuration, keep the admin
key safe, and give the settings to the mesh (--publish on a node that
joined the network, or --out to make a bootstrap file).

--publish refuses when the agent already has settings for the network:
new settings would replace them, and with them their bans, overrides and
extra records. Change them with "dm-agent settings", or start over with
--replace. --replace in turn is refused while the agent has not synced
with a peer since it started (the mesh may hold settings it has not seen
yet); --force overrides that.`,
		Example: `  dm-agent network create --domain clan --admin-key admin.key \
      --witness "ssh-ed25519 AAAA… node1" --out clan-settings.json
  dm-agent network create --domain clan --freetsa --publish \
      --namespace "dns.services writers=owner policy=lww"`,
		Args: noArgs(nil),
	}
	var domain, adminKey, out string
	var freeTSA, publish, replace, force, asJSON bool
	var witness, tsaRoot, tsaURL, namespaces []string
	hostTTL := 24 * time.Hour
	f := c.Flags()
	f.StringVar(&domain, "domain", "", "the network's DNS `DOMAIN`, e.g. clan (required)")
	f.StringVar(&adminKey, "admin-key", "admin.key", "admin key `FILE`; created if it does not exist")
	f.StringVar(&out, "out", "", "write the signed settings to `FILE` as data.json (a bootstrap file)")
	f.Var(durationFlag{&hostTTL}, "host-ttl", "how long a host stays without a heartbeat (`DURATION`)")
	f.BoolVar(&freeTSA, "freetsa", false, "trust FreeTSA (freetsa.org) as timestamp authority")
	f.BoolVar(&publish, "publish", false, "hand the settings to the local agent (it must have joined the network)")
	f.BoolVar(&replace, "replace", false, "with --publish: replace settings the agent already has (drops their bans, overrides, extra records)")
	f.BoolVar(&force, "force", false, "with --replace: publish even though the agent has not synced with a peer since it started")
	f.BoolVar(&asJSON, "json", false, "print JSON: domain, id, settings_updated, out, published")
	f.StringArrayVar(&witness, "witness", nil, "a witness node's `KEY` (repeatable): it countersigns claims; works offline")
	f.StringArrayVar(&tsaRoot, "tsa-root", nil, "PEM root certificate `FILE` of a timestamp authority to trust (repeatable)")
	f.StringArrayVar(&tsaURL, "tsa-url", nil, "`URL` of that timestamp authority (repeatable)")
	f.StringArrayVar(&namespaces, "namespace", nil, "declare a namespace (repeatable): `\"SPEC\"` as for dm-agent settings --namespace")
	cf := addConfig(c, true)
	cf.addWait()
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		if domain == "" {
			return usageErr(c, "--domain is required: the network's DNS domain, e.g. --domain clan")
		}
		if replace && !publish {
			return usageErr(c, "--replace goes with --publish")
		}
		if force && !replace {
			return usageErr(c, "--force goes with --publish --replace")
		}
		key, err := loadOrCreateAdminKey(adminKey, "data-mesher admin "+domain, c)
		if err != nil {
			return err
		}
		b, err := admin.NewNetwork(key.Public(), domain, hostTTL)
		if err != nil {
			return err
		}
		if publish {
			cl := cf.client()
			id := key.Public().AuthorizedKey()
			if replace {
				if err := requireSynced(ctx, cl, domain, force, "replace the settings of"); err != nil {
					return err
				}
			} else if err := refuseExisting(ctx, cl, id); err != nil {
				return err
			}
		}
		if err := b.Apply(admin.Edit{Witness: witness, TSARootFiles: tsaRoot, TSAURL: tsaURL, FreeTSA: freeTSA, Namespace: namespaces}); err != nil {
			return err
		}
		rec, err := b.Sign(key, time.Now())
		if err != nil {
			return err
		}
		s := b.Settings()
		if len(s.Witnesses) == 0 && len(s.TSARoots) == 0 {
			fmt.Fprintln(c.ErrOrStderr(), "warning: no witness and no timestamp authority: no claim can become active until `dm-agent settings` adds one")
		}
		res := networkResult{Domain: s.Domain, ID: key.Public().AuthorizedKey(), Updated: rec.Settings().Updated.UTC(), Out: out}
		if res.Published, err = deliver(c, cf, []*admin.Record{rec}, out, publish); err != nil {
			return err
		}
		if asJSON {
			return printJSON(c.OutOrStdout(), res)
		}
		fmt.Fprintf(c.OutOrStdout(), "network %s\npubkey: %s\n\nIn each node's configuration:\n  \"networks\": {\"%s\": {\"pubkey\": %q, \"priority\": 1}}\n",
			s.Domain, res.ID, s.Domain, res.ID)
		return nil
	}
	return c
}

// loadOrCreateAdminKey reads the admin key at path, creating it first if
// there is none.
func loadOrCreateAdminKey(path, comment string, c *cobra.Command) (admin.Key, error) {
	if _, err := os.Stat(path); err == nil {
		return loadAdminKey(path)
	}
	k, err := agent.WriteKey(path, comment)
	if err == nil {
		fmt.Fprintf(c.ErrOrStderr(), "created admin key %s (keep it safe: it is the network)\n", path)
	}
	return k, err
}

// loadAdminKey reads an admin key, with errors about an admin key.
func loadAdminKey(path string) (admin.Key, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return admin.Key{}, fmt.Errorf("admin key %s does not exist: name the network's admin key with --admin-key FILE (network create made it)", path)
	}
	k, err := agent.LoadKey(path)
	if err != nil {
		return k, fmt.Errorf("admin key: %s", strings.Replace(err.Error(), "node key ", "", 1))
	}
	return k, nil
}

// refuseExisting fails if the running agent already has settings for the
// network: new settings would replace them, and with them the network's
// policy (bans, overrides, extra records).
func refuseExisting(ctx context.Context, cl *control.Client, network string) error {
	r, err := cl.Settings(ctx, network)
	if err != nil {
		return networkError(ctx, cl, network, err)
	}
	if r == nil {
		return nil
	}
	return fmt.Errorf("the agent already has settings for this network (signed %s): `dm-agent settings` changes them; --replace publishes new ones, dropping their bans, overrides and extra records",
		r.Settings().Updated.UTC().Format(time.RFC3339))
}

// requireSynced refuses to publish settings built without the mesh's
// newest copy: while the local agent has not synced with a peer since it
// started, its copy may be older than the mesh's (it restarted, or set a
// damaged state file aside and salvaged an older one), and settings
// signed now would replace the newer ones on every node. force overrides
// it.
func requireSynced(ctx context.Context, cl *control.Client, network string, force bool, doing string) error {
	if force {
		return nil
	}
	s, err := cl.Status(ctx)
	if err != nil {
		return agentError(err)
	}
	if s.Synced {
		return nil
	}
	why := "the local agent has not synced with a peer since it started"
	if s.Waiting != "" {
		why += " (it is waiting for " + s.Waiting + ")"
	}
	return fmt.Errorf(`refusing to %s network %s: %s.
Its copy of the settings may be older than the mesh's (after a restart, or
a damaged state file set aside), and settings signed now would replace the
newer ones on every node: bans, overrides and extra records made since
would be lost everywhere.
Wait until "dm-agent status" says it has synced (it needs a peer or a
bootstrap source that answers; "dm-agent doctor" says why not), or add
--force if you know this copy is the newest (a network of one node)`, doing, network, why)
}

// deliver writes signed records of one network (settings first, then
// entries) to a file and/or hands them to the agent.
func deliver(c *cobra.Command, cf *configFlags, recs []*admin.Record, out string, publish bool) (*control.PublishResult, error) {
	if out != "" {
		b, err := admin.DataJSON(recs...)
		if err != nil {
			return nil, err
		}
		if err := agent.WriteFileAtomic(out, b, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(c.ErrOrStderr(), "wrote %s\n", out)
	}
	if !publish {
		return nil, nil
	}
	res, err := cf.client().Publish(c.Context(), recs...)
	if err != nil {
		return nil, agentError(err)
	}
	if len(res.Rejected) > 0 {
		return nil, fmt.Errorf("the agent refused them: %s", strings.Join(res.Rejected, "; "))
	}
	fmt.Fprintf(c.ErrOrStderr(), "published to the local agent (added %d, already known %d, superseded %d)\n", res.Added, res.Known, res.Superseded)
	return &res, nil
}

var _ pflag.Value = durationFlag{}

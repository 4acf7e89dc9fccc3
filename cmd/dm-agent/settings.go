package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/admin"
	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// settingsView is a network's settings as `settings --show --json` prints
// them: data.json's field names, keys in the "ssh-ed25519 AAAA…" form,
// durations in seconds.
type settingsView struct {
	Network      string         `json:"network"`
	Updated      time.Time      `json:"updated"`
	Domain       string         `json:"domain"`
	HostTTL      float64        `json:"host_ttl"`
	DNSTTL       float64        `json:"dns_ttl"`
	Restricted   bool           `json:"restricted"`
	AllowedNodes []string       `json:"allowed_nodes,omitempty"`
	Banned       []string       `json:"banned,omitempty"`
	Overrides    []overrideView `json:"overrides,omitempty"`
	Witnesses    []string       `json:"witnesses,omitempty"`
	TSARoots     []tsaRootView  `json:"tsa_roots,omitempty"`
	TSAURLs      []string       `json:"tsa_urls,omitempty"`
	Extra        []extraView    `json:"extra,omitempty"`
	Namespaces   []nsView       `json:"namespaces,omitempty"`
}

type nsView struct {
	Name                string   `json:"name"`
	Writers             string   `json:"writers"`
	WriterKeys          []string `json:"writer_keys,omitempty"`
	Policy              string   `json:"policy"`
	MaxValue            int      `json:"max_value,omitempty"`
	MaxEntriesPerWriter int      `json:"max_entries_per_writer,omitempty"`
	Lifetime            float64  `json:"lifetime,omitempty"`
}

type overrideView struct {
	Name string `json:"name"`
	Node string `json:"node"`
}

type tsaRootView struct {
	Subject string `json:"subject"`
	SHA256  string `json:"sha256"`
}

type extraView struct {
	Name string  `json:"name"`
	Type string  `json:"type"`
	TTL  float64 `json:"ttl,omitempty"`
	Data string  `json:"data"`
}

func viewSettings(r *admin.Record) settingsView {
	s := r.Settings()
	v := settingsView{Network: s.Network.AuthorizedKey(), Updated: s.Updated.UTC(), Domain: s.Domain,
		HostTTL: s.HostTTL.Seconds(), DNSTTL: s.DNSTTL.Seconds(), Restricted: s.Restricted, TSAURLs: s.TSAURLs}
	for _, k := range s.AllowedNodes {
		v.AllowedNodes = append(v.AllowedNodes, k.AuthorizedKey())
	}
	for _, k := range s.Banned {
		v.Banned = append(v.Banned, k.AuthorizedKey())
	}
	for _, o := range s.Overrides {
		v.Overrides = append(v.Overrides, overrideView{o.Name, o.Node.AuthorizedKey()})
	}
	for _, k := range s.Witnesses {
		v.Witnesses = append(v.Witnesses, k.AuthorizedKey())
	}
	for _, der := range s.TSARoots {
		sum := sha256.Sum256(der)
		root := tsaRootView{SHA256: fmt.Sprintf("%x", sum)}
		if cert, err := x509.ParseCertificate(der); err == nil {
			root.Subject = cert.Subject.String()
		}
		v.TSARoots = append(v.TSARoots, root)
	}
	for _, x := range s.Extra {
		v.Extra = append(v.Extra, extraView{x.Name, x.Type.String(), x.TTL.Seconds(), x.Data})
	}
	for _, ns := range s.Namespaces {
		nv := nsView{Name: ns.Name, Writers: ns.Writers.String(), Policy: ns.Policy.String(), MaxValue: ns.MaxValue,
			MaxEntriesPerWriter: ns.MaxEntriesPerWriter, Lifetime: ns.Lifetime.Seconds()}
		for _, k := range ns.WriterKeys {
			nv.WriterKeys = append(nv.WriterKeys, k.AuthorizedKey())
		}
		v.Namespaces = append(v.Namespaces, nv)
	}
	return v
}

// sameContent reports whether two settings say the same, whenever signed.
func sameContent(a, b *admin.Record) bool {
	va, vb := viewSettings(a), viewSettings(b)
	va.Updated, vb.Updated = time.Time{}, time.Time{}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func printSettingsText(w io.Writer, v settingsView) error {
	p := newPainter(w)
	t := &table{p: p}
	t.row(txt("network"), txt(shortKey(v.Network)+" (full key below)"))
	t.row(txt("domain"), txt(v.Domain))
	t.row(txt("signed"), txt(v.Updated.Format(time.RFC3339)))
	t.row(txt("host TTL"), txt(time.Duration(v.HostTTL*float64(time.Second)).String()))
	t.row(txt("DNS TTL"), txt(time.Duration(v.DNSTTL*float64(time.Second)).String()))
	restricted := "no: any key may publish its own host and claims"
	if v.Restricted {
		restricted = "yes: only the allowed keys may publish"
	}
	t.row(txt("restricted"), txt(restricted))
	if len(v.Witnesses) == 0 && len(v.TSARoots) == 0 {
		t.row(txt("attestors"), tint("none: no claim can become active (add --witness or --tsa-root)", yellow))
	}
	for _, u := range v.TSAURLs {
		t.row(txt("TSA URL"), txt(u))
	}
	for _, r := range v.TSARoots {
		t.row(txt("TSA root"), txt(r.Subject+" (sha256 "+r.SHA256[:16]+"…)"))
	}
	for _, x := range v.Extra {
		rec := x.Name + " " + x.Type + " " + x.Data
		if x.TTL > 0 {
			rec += fmt.Sprintf(" ttl=%g", x.TTL)
		}
		t.row(txt("extra"), txt(rec))
	}
	for _, ns := range v.Namespaces {
		t.row(txt("namespace"), txt(fmt.Sprintf("%s: writers %s, policy %s", ns.Name, ns.Writers, ns.Policy)))
	}
	if err := t.write(w); err != nil {
		return err
	}
	list := func(title string, keys []string) {
		if len(keys) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s\n", k)
		}
	}
	list("witnesses", v.Witnesses)
	list("banned", v.Banned)
	list("allowed", v.AllowedNodes)
	var overrides []string
	for _, o := range v.Overrides {
		overrides = append(overrides, o.Name+"="+o.Node)
	}
	list("overrides", overrides)
	fmt.Fprintf(w, "\nnetwork key:\n%s\n", v.Network)
	return nil
}

func settingsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "settings --network NAME [--show | edits…] [options]",
		Short: "show or change a network's signed settings (admin)",
		Long: `Shows or changes a network's settings. An edit reads the current
settings from the local agent (or --from a data.json), applies the edits,
signs the result with the admin key, and hands it to the agent, which
spreads it to the mesh (or writes it --out FILE).

An edit is refused while the local agent has not synced with a peer since
it started: its copy may be older than the mesh's, and settings signed
from it would replace newer ones on every node (their bans, overrides and
extra records lost). Wait until "dm-agent status" says it has synced, or
add --force when you know this copy is the newest. An edit that changes
nothing publishes nothing.`,
		Example: `  dm-agent settings --network clan --show
  dm-agent settings --network clan --ban "ssh-ed25519 AAAA… laptop"
  dm-agent settings --network clan --witness "ssh-ed25519 AAAA… node2"
  dm-agent settings --network clan --override gate="ssh-ed25519 AAAA…"
  dm-agent settings --network clan --extra "_ssh._tcp.mors SRV 0 0 22 mors" \
      --extra "printer AAAA fd00::99"
  dm-agent settings --network clan \
      --namespace "dns.services writers=owner policy=lww" \
      --namespace "ssh.host-keys writers=owner policy=lww"`,
		Args: noArgs(func(string) string { return "name the network with --network NAME" }),
	}
	var network, adminKey, from, out string
	var freeTSA, show, force, asJSON bool
	var restricted *bool
	var e admin.Edit
	var extra []string
	f := c.Flags()
	f.StringVar(&network, "network", "", "the network: its `NAME` in the configuration, or its key (required)")
	f.StringVar(&adminKey, "admin-key", "admin.key", "the network's admin key `FILE`")
	f.StringVar(&from, "from", "", "take the current settings from this data.json `FILE` instead of the agent")
	f.StringVar(&out, "out", "", "write the new settings to `FILE` as data.json instead of publishing them")
	f.BoolVar(&show, "show", false, "print the current settings and change nothing")
	f.BoolVar(&force, "force", false, "edit even though the agent has not synced with a peer since it started")
	f.BoolVar(&asJSON, "json", false, "print JSON (with --show: the settings; else: domain, id, settings_updated, out, published)")
	f.StringVar(&e.Domain, "domain", "", "change the `DOMAIN`")
	f.Var(durationFlag{&e.HostTTL}, "host-ttl", "change the host TTL (`DURATION`, e.g. 24h)")
	f.Var(durationFlag{&e.DNSTTL}, "dns-ttl", "change the TTL of DNS answers (`DURATION`, e.g. 60s)")
	f.Var(boolWord{&restricted}, "restricted", "true: only allowed keys may publish; false: any key (`BOOL`)")
	f.BoolVar(&freeTSA, "freetsa", false, "trust FreeTSA (freetsa.org) as timestamp authority")
	for _, m := range []struct {
		v          *[]string
		name, help string
	}{
		{&e.Ban, "ban", "ban a node `KEY`: its records leave every node"},
		{&e.Unban, "unban", "lift the ban of a `KEY`"},
		{&e.Allow, "allow", "add a `KEY` to the allow-list"},
		{&e.Disallow, "disallow", "remove a `KEY` from the allow-list"},
		{&e.Override, "override", "assign a name by decree: `NAME=KEY`"},
		{&e.RemoveOverride, "remove-override", "remove the override of `NAME`"},
		{&e.Witness, "witness", "add a witness `KEY`"},
		{&e.RemoveWitness, "remove-witness", "remove a witness `KEY`"},
		{&e.TSARootFiles, "tsa-root", "trust a timestamp authority's PEM root certificate `FILE`"},
		{&e.TSAURL, "tsa-url", "add a timestamp authority `URL`"},
		{&e.RemoveTSAURL, "remove-tsa-url", "remove a timestamp authority `URL`"},
		{&extra, "extra", "add a DNS record: `\"NAME TYPE DATA [ttl=S]\"` (A, AAAA, CNAME, SRV, TXT)"},
		{&e.RemoveExtra, "remove-extra", "remove DNS records: `\"NAME TYPE\"`"},
		{&e.Namespace, "namespace", "declare (or redeclare) a namespace: `\"SPEC\"` is NAME writers=W policy=P [keys=K,…] [max-value=N] [max-entries=N] [lifetime=D]"},
		{&e.RemoveNamespace, "remove-namespace", "remove the namespace `NAME` (and its entries)"},
	} {
		f.StringArrayVar(m.v, m.name, nil, m.help+" (repeatable)")
	}
	cf := addConfig(c, true)
	cf.addWait()
	_ = c.RegisterFlagCompletionFunc("network", completeNetworks(cf))
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		if network == "" {
			return usageErr(c, "--network is required: the network's name in the configuration, or its key%s", knownNetworks(ctx, cf))
		}
		edits := 0
		c.Flags().Visit(func(fl *pflag.Flag) {
			switch fl.Name {
			case "network", "admin-key", "from", "out", "show", "force", "json", "config", "control-socket", "wait":
			default:
				edits++
			}
		})
		if show && edits > 0 {
			return usageErr(c, "--show changes nothing; leave out the edits, or --show")
		}
		e.Restricted, e.FreeTSA = restricted, freeTSA
		cl := cf.client()

		// The settings to start from, and what the agent holds now.
		var base, held *admin.Record
		var err error
		if from != "" {
			b, err := os.ReadFile(from)
			if err != nil {
				return err
			}
			if base, err = admin.SettingsFromDataJSON(b); err != nil {
				return fmt.Errorf("%s: %w", from, err)
			}
		}
		if from == "" || (out == "" && !show) {
			held, err = cl.Settings(ctx, network)
			if err != nil {
				if from != "" || !errors.Is(err, control.ErrNoAgent) {
					return networkError(ctx, cl, network, err)
				}
				return fmt.Errorf("%w (or take the settings from a file with --from FILE)", err)
			}
		}
		if from == "" {
			if held == nil {
				return fmt.Errorf("the agent has no settings for %s yet: create them with `dm-agent network create --publish` (or, if the mesh has them, wait until the agent has synced: dm-agent status)", network)
			}
			base = held
		}
		if show {
			if from == "" {
				if s, err := cl.Status(ctx); err == nil && !s.Synced {
					fmt.Fprintln(c.ErrOrStderr(), "note: the agent has not synced with a peer since it started; the mesh may hold newer settings")
				}
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), viewSettings(base))
			}
			return printSettingsText(c.OutOrStdout(), viewSettings(base))
		}

		key, err := loadAdminKey(adminKey)
		if err != nil {
			return err
		}
		b, err := admin.FromSettings(base)
		if err != nil {
			return err
		}
		if err := b.Apply(e); err != nil {
			return err
		}
		records := len(extra) > 0 || len(e.RemoveExtra) > 0
		if records {
			b.DeclareRecords()
		}
		rec, err := b.Sign(key, time.Now())
		if err != nil {
			return err
		}
		publish := out == ""
		var signed []*admin.Record
		if !publish || held == nil || !sameContent(held, rec) {
			signed = append(signed, rec)
		}
		if records {
			entries, err := recordEntries(ctx, cl, network, rec, extra, e.RemoveExtra, key, from != "")
			if err != nil {
				return err
			}
			signed = append(signed, entries...)
		}
		if len(signed) == 0 {
			fmt.Fprintln(c.ErrOrStderr(), "the agent's settings already say that: nothing signed, nothing published")
			if asJSON {
				v := viewSettings(held)
				return printJSON(c.OutOrStdout(), networkResult{Domain: v.Domain, ID: v.Network, Updated: v.Updated})
			}
			return nil
		}
		// Built on the agent's copy, or replacing it: it must be the
		// mesh's newest.
		if from == "" || (publish && held != nil) {
			if err := requireSynced(ctx, cl, network, force, "change the settings of"); err != nil {
				return err
			}
		}
		res := networkResult{Domain: rec.Settings().Domain, ID: rec.Settings().Network.AuthorizedKey(), Updated: rec.Settings().Updated.UTC(), Out: out}
		if res.Published, err = deliver(c, cf, signed, out, publish); err != nil {
			return err
		}
		if asJSON {
			return printJSON(c.OutOrStdout(), res)
		}
		return nil
	}
	return c
}

// recordEntries turns --extra and --remove-extra into dns.records entries:
// a name and type's records are what the agent's namespace holds for it,
// or else what the settings hold (an older network's), plus the new ones.
// Offline (--from) only the settings are known.
func recordEntries(ctx context.Context, cl *control.Client, network string, set *admin.Record, extra, remove []string, key admin.Key, offline bool) ([]*admin.Record, error) {
	held := map[string]*control.DataKey{}
	if !offline {
		l, err := cl.Data(ctx, control.DataQuery{Network: network, Namespace: admin.RecordsNamespace.Name})
		if err != nil && !errors.Is(err, control.ErrNotFound) {
			return nil, agentError(err)
		}
		for i := range l.Keys {
			held[l.Keys[i].Key] = &l.Keys[i]
		}
	}
	current := func(k string) []string {
		dk := held[k]
		if dk == nil {
			return admin.SettingsRecords(set, k)
		}
		if dk.Deleted || len(dk.Items) == 0 || dk.Items[0].Value == nil {
			return nil
		}
		return strings.Split(*dk.Items[0].Value, "\n")
	}
	return admin.RecordEntries(set.Network(), extra, remove, current, key, time.Now())
}

// knownNetworks lists the agent's networks for an error, if it answers.
func knownNetworks(ctx context.Context, cf *configFlags) string {
	s, err := cf.client().Status(ctx)
	if err != nil || len(s.Networks) == 0 {
		return ""
	}
	var labels []string
	for _, n := range s.Networks {
		labels = append(labels, n.Label)
	}
	return " (the agent's networks: " + strings.Join(labels, ", ") + ")"
}

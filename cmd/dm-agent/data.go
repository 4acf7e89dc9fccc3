package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/data-mesher/data-mesher/admin"
	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
)

const dataLong = `The mesh's database: namespaces that the network's admin declares in
its signed settings ("dm-agent settings --namespace"), each with who may
write it and how concurrent writes merge (lww: the last write of a key
wins; fww: the first attested write wins; gset: a grow-only set; orset:
a set with removals; log: each writer's entries in order). Entries are
signed by the node that writes them (or, with --admin-key, by the
network's admin), spread to every node, and verified by each.

Programs can also read the namespaces without this command: the agent
writes every key as a file under its data directory (see README), and
"dm-agent data watch" prints a JSON line per change.`

func dataCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "data",
		Short: "read and write the mesh's namespaces",
		Long:  dataLong,
		Args:  cobra.ArbitraryArgs,
		RunE:  runGroup,
	}
	c.AddCommand(dataListCmd(), dataGetCmd(), dataPutCmd(), dataDeleteCmd(), dataWatchCmd())
	return c
}

// dataFlags are what every data command takes.
type dataFlags struct {
	cf      *configFlags
	network string
	json    bool
}

func addDataFlags(c *cobra.Command, json bool) *dataFlags {
	d := &dataFlags{}
	c.Flags().StringVar(&d.network, "network", "", "the network: its `NAME` in the configuration, or its key (default: the only one)")
	if json {
		c.Flags().BoolVar(&d.json, "json", false, "print JSON (the control API's field names)")
	}
	d.cf = addConfig(c, true)
	d.cf.addWait()
	_ = c.RegisterFlagCompletionFunc("network", completeNetworks(d.cf))
	return d
}

// net is the network to use: --network, or the agent's only one.
func (d *dataFlags) net(c *cobra.Command) (string, error) {
	if d.network != "" {
		return d.network, nil
	}
	s, err := d.cf.client().Status(c.Context())
	if err != nil {
		return "", agentError(err)
	}
	if len(s.Networks) == 1 {
		return s.Networks[0].Label, nil
	}
	return "", usageErr(c, "name the network with --network NAME%s", knownNetworks(c.Context(), d.cf))
}

func exactly(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr(c, "want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

func dataListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "list [NAMESPACE] [options]",
		Short: "list the namespaces, or a namespace's keys",
		Long: `Without NAMESPACE, lists the namespaces the network's settings declare.
With one, lists its keys and what each holds.`,
		Example: `  dm-agent data list
  dm-agent data list ssh.host-keys --json`,
		Args: cobra.MaximumNArgs(1),
	}
	d := addDataFlags(c, true)
	c.RunE = func(c *cobra.Command, args []string) error {
		network, err := d.net(c)
		if err != nil {
			return err
		}
		cl, w := d.cf.client(), c.OutOrStdout()
		if len(args) == 0 {
			ns, err := cl.Namespaces(c.Context(), network)
			if err != nil {
				return networkError(c.Context(), cl, network, err)
			}
			if d.json {
				return printJSON(w, ns)
			}
			if len(ns) == 0 {
				fmt.Fprintf(w, "the settings of %s declare no namespace (dm-agent settings --namespace)\n", network)
				return nil
			}
			t := &table{p: newPainter(w)}
			t.row(txt("NAMESPACE"), txt("WRITERS"), txt("POLICY"), txt("LIMITS"))
			for _, n := range ns {
				limits := fmt.Sprintf("%d B, %d per writer", n.MaxValue, n.MaxEntriesPerWriter)
				if n.Lifetime > 0 {
					limits += ", lives " + time.Duration(n.Lifetime*float64(time.Second)).String()
				}
				t.row(txt(n.Name), txt(n.Writers), txt(n.Policy), txt(limits))
			}
			return t.write(w)
		}
		l, err := cl.Data(c.Context(), control.DataQuery{Network: network, Namespace: args[0]})
		if err != nil {
			return networkError(c.Context(), cl, network, err)
		}
		if d.json {
			return printJSON(w, l)
		}
		t := &table{p: newPainter(w)}
		owners := l.Namespace.Writers == "owner"
		head := []cell{txt("KEY"), txt("WRITER"), txt("VALUE")}
		if owners {
			head = append([]cell{txt("OWNER")}, head...)
		}
		t.row(head...)
		for _, k := range l.Keys {
			for _, it := range k.Items {
				row := []cell{txt(k.Key), txt(shortKey(it.Writer)), txt(shown(it))}
				if owners {
					row = append([]cell{txt(shortKey(k.Owner))}, row...)
				}
				t.row(row...)
			}
		}
		return t.write(w)
	}
	return c
}

// shown is an item's value for a table: its text on one line (cut), or
// what it is.
func shown(it control.DataItem) string {
	switch {
	case it.Deleted:
		return "(deleted)"
	case it.Value == nil:
		return fmt.Sprintf("(%d bytes)", len(it.ValueBase64))
	}
	v := strings.ReplaceAll(strings.TrimRight(*it.Value, "\n"), "\n", "⏎")
	if it.Standing != "" && it.Standing != "holds" {
		v += " [" + it.Standing + "]"
	}
	if len(v) > 48 {
		v = v[:47] + "…"
	}
	return v
}

func dataGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "get NAMESPACE KEY [options]",
		Short: "print what a key holds",
		Long: `Prints what KEY holds: a register's value as it is (the latest write of
an lww key, the holder's of an fww key), a set's elements or a log's
entries one a line. In an owner namespace, KEY is this node's unless
--owner names another writer.

Exits 3 when the key holds nothing (never written, deleted, or an fww key
nobody holds yet), so scripts can tell that from a failure (1).`,
		Example: `  dm-agent data get ssh.host-keys ssh-ed25519 --owner "ssh-ed25519 AAAA…"
  dm-agent data get dns.aliases wiki --json`,
		Args: exactly(2, "NAMESPACE KEY"),
	}
	d := addDataFlags(c, true)
	owner := c.Flags().String("owner", "", "the writer whose key-space holds KEY, in an owner namespace (`KEY`; default this node)")
	c.RunE = func(c *cobra.Command, args []string) error {
		network, err := d.net(c)
		if err != nil {
			return err
		}
		cl := d.cf.client()
		o := *owner
		if o == "" {
			if s, err := cl.Status(c.Context()); err == nil {
				o = s.Node
			}
		}
		l, err := cl.Data(c.Context(), control.DataQuery{Network: network, Namespace: args[0], Key: args[1], Owner: o})
		if err != nil {
			return networkError(c.Context(), cl, network, err)
		}
		if l.Namespace.Writers != "owner" && *owner != "" {
			return usageErr(c, "--owner: %s is not an owner namespace (its writers are %s)", args[0], l.Namespace.Writers)
		}
		held := holds(l)
		if d.json {
			if err := printJSON(c.OutOrStdout(), l); err != nil {
				return err
			}
		} else {
			for _, it := range held {
				if err := writeValue(c.OutOrStdout(), it, len(held) > 1 || isSetOrLog(l.Namespace.Policy)); err != nil {
					return err
				}
			}
		}
		if len(held) == 0 {
			if !d.json {
				fmt.Fprintf(c.ErrOrStderr(), "%s %q holds nothing here\n", args[0], args[1])
			}
			return exitCode(exitNoSuchName)
		}
		return nil
	}
	return c
}

func isSetOrLog(policy string) bool { return policy == "gset" || policy == "orset" || policy == "log" }

// holds is what the listed keys hold: a register's current value (the
// holder of an fww key), every element of a set or entry of a log.
func holds(l control.DataList) []control.DataItem {
	var out []control.DataItem
	for _, k := range l.Keys {
		switch {
		case k.Deleted || len(k.Items) == 0:
		case l.Namespace.Policy == "lww":
			out = append(out, k.Items[0])
		case l.Namespace.Policy == "fww":
			if k.Items[0].Standing == "holds" {
				out = append(out, k.Items[0])
			}
		default:
			out = append(out, k.Items...)
		}
	}
	return out
}

// writeValue prints a value as it is; one of several ends with a newline.
func writeValue(w io.Writer, it control.DataItem, line bool) error {
	v := it.ValueBase64
	if it.Value != nil {
		v = []byte(*it.Value)
	}
	if _, err := w.Write(v); err != nil {
		return err
	}
	if line && (len(v) == 0 || v[len(v)-1] != '\n') {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}

func dataPutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "put NAMESPACE KEY [VALUE | --file FILE] [options]",
		Short: "write a value",
		Long: `Writes VALUE (or the content of --file FILE; "-" reads standard input)
under KEY: the local agent signs the entry with its node key, spreads it
to the mesh, and answers once it is on disk. With --admin-key, the
network's admin signs it (for the namespaces only the admin may write).

A write the namespace does not admit is refused with the reason every
node would give (not-writer, over-limit…), and exits 1.`,
		Example: `  dm-agent data put dns.services _ssh._tcp 22
  dm-agent data put ssh.host-keys ssh-ed25519 \
      --file /etc/ssh/ssh_host_ed25519_key.pub
  dm-agent data put dns.aliases wiki gate --admin-key admin.key`,
		Args: cobra.RangeArgs(2, 3),
	}
	d := addDataFlags(c, true)
	file := c.Flags().String("file", "", "take the value from `FILE` (\"-\": standard input)")
	adminKey := c.Flags().String("admin-key", "", "sign as the network's admin with this key `FILE`")
	c.RunE = func(c *cobra.Command, args []string) error {
		var value []byte
		switch {
		case len(args) == 3 && *file != "":
			return usageErr(c, "give the VALUE or --file, not both")
		case len(args) == 3:
			value = []byte(args[2])
		case *file == "-":
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			if err != nil {
				return err
			}
			value = b
		case *file != "":
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			value = b
		default:
			return usageErr(c, "want the VALUE, or --file FILE")
		}
		return write(c, d, control.DataWrite{Namespace: args[0], Key: args[1], Value: value}, *adminKey)
	}
	return c
}

func dataDeleteCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "delete NAMESPACE KEY [options]",
		Short: "delete a key",
		Long: `Deletes KEY: in an lww or fww namespace, this node's write of it (or,
with --admin-key, the admin's); in an orset, the elements this node holds
of it by --owner (this node by default; only the admin may remove
another writer's). Grow-only sets and logs have no deletes.`,
		Example: `  dm-agent data delete dns.services _ssh._tcp
  dm-agent data delete dns.aliases wiki --admin-key admin.key`,
		Args: exactly(2, "NAMESPACE KEY"),
	}
	d := addDataFlags(c, true)
	owner := c.Flags().String("owner", "", "whose elements an orset delete removes (`KEY`; default this node)")
	adminKey := c.Flags().String("admin-key", "", "sign as the network's admin with this key `FILE`")
	c.RunE = func(c *cobra.Command, args []string) error {
		return write(c, d, control.DataWrite{Namespace: args[0], Key: args[1], Delete: true, Owner: *owner}, *adminKey)
	}
	return c
}

// write has the agent sign and publish w, or signs it with the admin key.
func write(c *cobra.Command, d *dataFlags, w control.DataWrite, adminKey string) error {
	network, err := d.net(c)
	if err != nil {
		return err
	}
	w.Network = network
	cl := d.cf.client()
	var res control.DataWritten
	if adminKey == "" {
		if res, err = cl.Write(c.Context(), w); err != nil {
			return networkError(c.Context(), cl, network, err)
		}
	} else {
		key, err := loadAdminKey(adminKey)
		if err != nil {
			return err
		}
		ns, err := cl.Namespaces(c.Context(), network)
		if err != nil {
			return networkError(c.Context(), cl, network, err)
		}
		i := -1
		for j, n := range ns {
			if n.Name == w.Namespace {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("the settings of %s declare no namespace %q", network, w.Namespace)
		}
		set, err := cl.Settings(c.Context(), network)
		if err != nil || set == nil {
			return fmt.Errorf("the agent has no settings for %s: %v", network, err)
		}
		rec, err := admin.SignEntry(set.Network(), ns[i].Name, ns[i].Policy, w.Key, w.Value, w.Delete, key, time.Now())
		if err != nil {
			return err
		}
		pub, err := cl.Publish(c.Context(), rec)
		if err != nil {
			return agentError(err)
		}
		res = control.DataWritten{Hash: rec.Hash().String(), Added: pub.Added == 1}
		if len(pub.Rejected) > 0 {
			res.Refused = pub.Rejected[0]
		}
	}
	if d.json {
		if err := printJSON(c.OutOrStdout(), res); err != nil {
			return err
		}
	}
	if res.Refused != "" {
		return errors.New("the mesh refuses this write: " + res.Refused)
	}
	if !d.json && !res.Added {
		fmt.Fprintln(c.ErrOrStderr(), "already written: nothing new")
	}
	return nil
}

func dataWatchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "watch NAMESPACE [options]",
		Short: "print a JSON line for every change of a namespace",
		Long: `Prints one JSON object a line for every key of NAMESPACE that changes
from now on, with everything the key holds after the change (no items:
it holds nothing any more): for scripts and services. It runs until
SIGTERM or SIGINT, then exits 0.`,
		Example: `  dm-agent data watch dns.services
  dm-agent data watch ssh.host-keys | while read -r line; do …; done`,
		Args: exactly(1, "NAMESPACE"),
	}
	d := addDataFlags(c, false)
	c.RunE = func(c *cobra.Command, args []string) error {
		network, err := d.net(c)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		w := c.OutOrStdout()
		cl := d.cf.client()
		err = cl.Watch(ctx, network, args[0], func(ch control.DataChange) error { return printLine(w, ch) })
		if err != nil {
			return networkError(context.Background(), cl, network, err)
		}
		return nil
	}
	return c
}

// printLine writes v as one line of JSON.
func printLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

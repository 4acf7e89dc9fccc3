package main

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
)

func statusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status [--json]",
		Short: "show what the running agent is doing",
		Long: `Shows what the running agent is doing: what it waits for (if anything),
its interface and listeners, gossip and whether it has synced with a
peer since it started, DNS, and each joined network.

--json prints the control API's Status: numbers as numbers (uptime in
seconds), keys as "ssh-ed25519 AAAA…".`,
		Example: `  dm-agent status
  dm-agent status --json | jq -r .bind`,
		Args: noArgs(nil),
	}
	asJSON := c.Flags().Bool("json", false, "print JSON (the control API's field names)")
	cf := addConfig(c, true)
	c.RunE = func(c *cobra.Command, _ []string) error {
		s, err := cf.client().Status(c.Context())
		if err != nil {
			return agentError(err)
		}
		if *asJSON {
			return printJSON(c.OutOrStdout(), s)
		}
		return writeStatus(c.OutOrStdout(), s)
	}
	return c
}

// dnsResults name the DNS counters of Status, in the order shown.
var dnsResults = []struct{ key, word string }{
	{"answer", "answered"}, {"nodata", "no data"}, {"nxdomain", "nxdomain"},
	{"refused", "refused"}, {"forwarded", "forwarded"}, {"error", "errors"},
}

func writeStatus(w io.Writer, s control.Status) error {
	p := newPainter(w)
	t := &table{p: p}
	if s.Waiting != "" {
		// The label column is 11 wide: the reason wraps within 80.
		for i, l := range wrap("for "+s.Waiting, 80-11) {
			label := ""
			if i == 0 {
				label = "waiting"
			}
			t.row(txt(label), tint(l, yellow))
		}
	}
	t.row(txt("node"), txt(shortKey(s.Node)+" (full key below)"))
	t.row(txt("version"), txt(fmt.Sprintf("%s, up %s", s.Version, uptime(time.Duration(s.Uptime*float64(time.Second))))))
	bind := s.Bind
	if bind == "" {
		bind = "none yet"
	}
	t.row(txt("interface"), txt(s.Interface+", bind "+bind))
	listening := strings.Join(s.Listening, ", ")
	if listening == "" {
		listening = "nothing yet"
	}
	t.row(txt("listening"), txt(listening))
	members := fmt.Sprintf("%d members, ", s.Members)
	if s.Members == 1 {
		members = "1 member, "
	}
	if s.Synced {
		t.row(txt("gossip"), tint(members+"synced with a peer since start", green))
	} else {
		t.row(txt("gossip"), tint(members+"not synced with a peer since start", yellow))
	}
	var counts []string
	for _, r := range dnsResults {
		if n := s.DNS.Queries[r.key]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, r.word))
		}
	}
	queries := "no queries yet"
	if len(counts) > 0 {
		queries = strings.Join(counts, ", ")
	}
	names := "names"
	if s.DNS.Names == 1 {
		names = "name"
	}
	t.row(txt("dns"), txt(fmt.Sprintf("%d %s; %s", s.DNS.Names, names, queries)))
	t.row(txt("state"), txt(fmt.Sprintf("%d records restored at start", s.Restored)))
	if err := t.write(w); err != nil {
		return err
	}

	if len(s.Networks) > 0 {
		fmt.Fprintln(w)
		nt := &table{p: p}
		nt.row(txt("NETWORK"), txt("DOMAIN"), txt("PRIO"), txt("HOSTS"), txt("RECORDS"), txt("SETTINGS"), txt("OUR NAMES"))
		var notes []string
		for _, n := range s.Networks {
			settings := tint("none yet", yellow)
			domain := n.Domain
			if n.HasSettings {
				settings = txt(when(n.Updated))
			} else {
				domain = "-"
				notes = append(notes, n.Label+": no settings yet: the admin publishes them (dm-agent network create --publish), or a peer has them")
			}
			if n.HasSettings && n.Attestors == 0 {
				notes = append(notes, n.Label+": no attestor: no claim can become active (dm-agent settings --witness KEY)")
			}
			if n.Witness {
				notes = append(notes, n.Label+": this node is a witness: it countersigns claims")
			}
			ours := strings.Join(n.Names, ", ")
			if ours == "" {
				ours = "-"
			}
			nt.row(txt(n.Label), txt(domain), txt(fmt.Sprintf("%g", n.Priority)), txt(fmt.Sprint(n.Hosts)), txt(fmt.Sprint(n.Records)), settings, txt(ours))
		}
		if err := nt.write(w); err != nil {
			return err
		}
		for _, n := range notes {
			for i, l := range wrap(n, 80-4) {
				indent := "    "
				if i == 0 {
					indent = "  "
				}
				fmt.Fprintln(w, indent+l)
			}
		}
	}
	_, err := fmt.Fprintf(w, "\nnode key:\n%s\n", s.Node)
	return err
}

// wrap breaks text into lines of at most width columns, between words.
func wrap(text string, width int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width:
			out = append(out, line)
			line = w
		default:
			line += " " + w
		}
	}
	return append(out, line)
}

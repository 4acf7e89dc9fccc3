package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
)

func resolveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "resolve NAME [--json]",
		Short: "explain how a name resolves here",
		Long: `Shows what this node answers for NAME and why: the holder, its
addresses, and how every claim on the name stands (attested when and by
whom, host live, reachable from here). NAME may leave out the domain
("mors" for mors.clan).

Exits 3 when NAME does not resolve here (like getent's 2), so scripts
can tell "no such name" from a failure (1).`,
		Example: `  dm-agent resolve mors.clan
  dm-agent resolve mors --json | jq -r '.addresses[]'`,
		Args: func(c *cobra.Command, args []string) error {
			switch len(args) {
			case 1:
				return nil
			case 0:
				return usageErr(c, "want the NAME to resolve, e.g. dm-agent resolve mors.clan")
			}
			return usageErr(c, "want one NAME, got %d: %q", len(args), args)
		},
	}
	asJSON := c.Flags().Bool("json", false, "print JSON (the control API's field names)")
	cf := addConfig(c, true)
	cf.addWait()
	c.ValidArgsFunction = completeNames(cf)
	c.RunE = func(c *cobra.Command, args []string) error {
		r, err := cf.client().Resolve(c.Context(), args[0])
		if err != nil {
			return agentError(err)
		}
		if *asJSON {
			err = printJSON(c.OutOrStdout(), r)
		} else {
			err = writeResolution(c.OutOrStdout(), r)
		}
		if err == nil && !r.Found {
			return exitCode(exitNoSuchName)
		}
		return err
	}
	return c
}

func writeResolution(w io.Writer, r control.Resolution) error {
	p := newPainter(w)
	if !r.Found {
		fmt.Fprintf(w, "%s %s: %s\n", r.Name, p.paint(red, "does not resolve here"), r.Why)
	} else {
		answer := strings.Join(r.Addrs, ", ")
		if len(r.Extra) > 0 {
			if answer != "" {
				answer += "; "
			}
			answer += strings.Join(r.Extra, "; ")
		}
		fmt.Fprintf(w, "%s → %s\n", r.Name, p.paint(green, answer))
		if r.Holder != "" {
			fmt.Fprintf(w, "held by %s: %s\n", shortKey(r.Holder), strings.TrimPrefix(r.Why, "held by "))
		} else {
			fmt.Fprintf(w, "%s\n", r.Why)
		}
	}
	if len(r.Contest) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := &table{p: p}
	t.row(txt("CLAIM BY"), txt("ACTIVE"), txt("ATTESTED"), txt("BY"), txt("HOST"), txt("REACHABLE"))
	for _, cl := range r.Contest {
		active := tint("no", yellow)
		if cl.Active {
			active = tint("yes", green)
		}
		attested, by := tint("not yet", yellow), txt("-")
		if cl.Attested {
			attested, by = txt(when(cl.Time)), txt(cl.By)
		}
		host := tint("gone", yellow)
		if cl.HostLive {
			host = txt("live")
		}
		reach := tint("no", red)
		if cl.Reachable {
			reach = tint("yes", green)
		}
		t.row(txt(shortKey(cl.Node)), active, attested, by, host, reach)
	}
	return t.write(w)
}

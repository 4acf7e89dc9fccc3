package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// printJSON writes v as indented JSON: --json output uses the control
// API's types and field names unchanged.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// sameKeyStart is where every ed25519 key's "ssh-ed25519 AAAA…" form
// begins: the key type, twice (as text, then inside the base64).
const sameKeyStart = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"

// shortKey is how tables show a key: the 8 characters of its
// "ssh-ed25519 AAAA…" form that follow the part every ed25519 key shares,
// so the full form is sameKeyStart followed by them (grep finds it in a
// configuration). Anything else is shown as it is.
func shortKey(k string) string {
	if rest, ok := strings.CutPrefix(k, sameKeyStart); ok && len(rest) >= 8 {
		return rest[:8]
	}
	return k
}

// age is a duration in a table cell: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s" // a clock a little ahead
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// uptime is a duration rounded for a status line: 5s, 3m12s, 2h5m, 3d4h.
func uptime(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Hour:
		return d.String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d.Hours() / 24)
	return fmt.Sprintf("%dd%dh", days, int(d.Hours())%24)
}

// when is a time in tables: UTC, to the second (claims a minute apart
// decide a name).
func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// colours of table cells and status words.
type colour string

const (
	plain  colour = ""
	green  colour = "32"
	red    colour = "31"
	yellow colour = "33"
	bold   colour = "1"
)

// painter colours text only on a terminal, and never with NO_COLOR set
// (https://no-color.org) or TERM=dumb.
type painter struct{ on bool }

func newPainter(w io.Writer) painter {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return painter{}
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return painter{on: err == nil}
}

func (p painter) paint(c colour, s string) string {
	if !p.on || c == plain || s == "" {
		return s
	}
	return "\x1b[" + string(c) + "m" + s + "\x1b[0m"
}

// cell is one cell of a table: its text and colour.
type cell struct {
	text string
	c    colour
}

func txt(text string) cell              { return cell{text: text} }
func tint(text string, col colour) cell { return cell{text, col} }

// table lays out rows in columns two spaces apart, measured on the text
// (colour codes take no room), without trailing spaces.
type table struct {
	p    painter
	rows [][]cell
}

func (t *table) row(cells ...cell) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, x := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(x.text))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		line := ""
		for i, x := range r {
			if i == len(r)-1 {
				line += t.p.paint(x.c, x.text)
				break
			}
			line += t.p.paint(x.c, x.text) + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(x.text)+2)
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

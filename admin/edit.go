package admin

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Edit is a change an admin makes to a network's settings; empty fields
// change nothing. Keys are in any form ParsePublicKey reads
// ("ssh-ed25519 AAAA…" or base64); errors name the flag a field came from
// (--ban, --extra…), as the command line spells them.
type Edit struct {
	Domain         string
	HostTTL        time.Duration
	DNSTTL         time.Duration
	Ban, Unban     []string // keys
	Allow          []string // keys added to the allow-list
	Disallow       []string // keys removed from it
	Restricted     *bool
	Override       []string // name=key
	RemoveOverride []string // names
	Witness        []string // keys
	RemoveWitness  []string
	TSARootFiles   []string // PEM files
	FreeTSA        bool     // pin FreeTSA's root and list its URL
	TSAURL         []string
	RemoveTSAURL   []string
	// Extra and RemoveExtra edit the settings' own extra records; the
	// command line writes new records as dns.records entries instead
	// (RecordEntries), and removes from both.
	Extra       []string // "name TYPE data [ttl]"
	RemoveExtra []string // "name TYPE"
	// Namespace declares namespaces, or replaces a declaration of the same
	// name: "NAME writers=W policy=P [keys=K,K…] [max-value=N]
	// [max-entries=N] [lifetime=D]" (ParseNamespace). A namespace whose
	// policy changes starts empty.
	Namespace       []string
	RemoveNamespace []string // names
}

// apply returns s with e applied.
func apply(s crdt.Settings, e Edit) (crdt.Settings, error) {
	keys := func(field string, in []string) ([]crdt.PublicKey, error) {
		var out []crdt.PublicKey
		for _, k := range in {
			p, err := crdt.ParsePublicKey(k)
			if err != nil {
				return nil, fmt.Errorf("--%s %q: %w", field, k, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	remove := func(list, drop []crdt.PublicKey) []crdt.PublicKey {
		return slices.DeleteFunc(slices.Clone(list), func(k crdt.PublicKey) bool { return slices.Contains(drop, k) })
	}
	if e.Domain != "" {
		s.Domain = e.Domain
	}
	if e.HostTTL != 0 {
		s.HostTTL = e.HostTTL
	}
	if e.DNSTTL != 0 {
		s.DNSTTL = e.DNSTTL
	}
	for _, step := range []struct {
		field string
		in    []string
		apply func([]crdt.PublicKey)
	}{
		{"ban", e.Ban, func(k []crdt.PublicKey) { s.Banned = append(s.Banned, k...) }},
		{"unban", e.Unban, func(k []crdt.PublicKey) { s.Banned = remove(s.Banned, k) }},
		{"allow", e.Allow, func(k []crdt.PublicKey) { s.AllowedNodes = append(s.AllowedNodes, k...) }},
		{"disallow", e.Disallow, func(k []crdt.PublicKey) { s.AllowedNodes = remove(s.AllowedNodes, k) }},
		{"witness", e.Witness, func(k []crdt.PublicKey) { s.Witnesses = append(s.Witnesses, k...) }},
		{"remove-witness", e.RemoveWitness, func(k []crdt.PublicKey) { s.Witnesses = remove(s.Witnesses, k) }},
	} {
		k, err := keys(step.field, step.in)
		if err != nil {
			return s, err
		}
		step.apply(k)
	}
	if e.Restricted != nil {
		s.Restricted = *e.Restricted
	}
	for _, o := range e.Override {
		name, key, ok := strings.Cut(o, "=")
		if !ok {
			return s, fmt.Errorf("--override %q: want name=KEY", o)
		}
		k, err := crdt.ParsePublicKey(key)
		if err != nil {
			return s, fmt.Errorf("--override %q: %w", o, err)
		}
		s.Overrides = slices.DeleteFunc(slices.Clone(s.Overrides), func(x crdt.Override) bool { return x.Name == name })
		s.Overrides = append(s.Overrides, crdt.Override{Name: name, Node: k})
	}
	for _, name := range e.RemoveOverride {
		s.Overrides = slices.DeleteFunc(slices.Clone(s.Overrides), func(x crdt.Override) bool { return x.Name == name })
	}
	for _, f := range e.TSARootFiles {
		der, err := readCert(f)
		if err != nil {
			return s, err
		}
		s.TSARoots = append(s.TSARoots, der)
	}
	if e.FreeTSA {
		s.TSARoots = append(s.TSARoots, crdt.FreeTSARoot())
		e.TSAURL = append(e.TSAURL, crdt.FreeTSAURL)
	}
	for _, u := range e.TSAURL {
		if !slices.Contains(s.TSAURLs, u) {
			s.TSAURLs = append(s.TSAURLs, u)
		}
	}
	s.TSAURLs = slices.DeleteFunc(slices.Clone(s.TSAURLs), func(u string) bool { return slices.Contains(e.RemoveTSAURL, u) })
	for _, x := range e.Extra {
		rec, err := parseExtra(x)
		if err != nil {
			return s, err
		}
		s.Extra = append(s.Extra, rec)
	}
	for _, x := range e.RemoveExtra {
		f := strings.Fields(x)
		if len(f) != 2 {
			return s, fmt.Errorf("--remove-extra %q: want \"name TYPE\"", x)
		}
		t, err := crdt.ParseRRType(strings.ToUpper(f[1]))
		if err != nil {
			return s, err
		}
		s.Extra = slices.DeleteFunc(slices.Clone(s.Extra), func(r crdt.ExtraRecord) bool { return r.Name == f[0] && r.Type == t })
	}
	for _, spec := range e.Namespace {
		ns, err := ParseNamespace(spec)
		if err != nil {
			return s, err
		}
		s.Namespaces = append(slices.DeleteFunc(slices.Clone(s.Namespaces), func(x crdt.Namespace) bool { return x.Name == ns.Name }), ns)
	}
	for _, name := range e.RemoveNamespace {
		s.Namespaces = slices.DeleteFunc(slices.Clone(s.Namespaces), func(x crdt.Namespace) bool { return x.Name == name })
	}
	return s, nil
}

// parseExtra reads "name TYPE data… [ttl=SECONDS]".
func parseExtra(x string) (crdt.ExtraRecord, error) {
	f := strings.Fields(x)
	if len(f) < 3 {
		return crdt.ExtraRecord{}, fmt.Errorf("--extra %q: want \"name TYPE data\" (e.g. \"_ssh._tcp.mors SRV 0 0 22 mors\")", x)
	}
	t, err := crdt.ParseRRType(strings.ToUpper(f[1]))
	if err != nil {
		return crdt.ExtraRecord{}, fmt.Errorf("--extra %q: %w", x, err)
	}
	rec := crdt.ExtraRecord{Name: f[0], Type: t}
	data := f[2:]
	if last := data[len(data)-1]; strings.HasPrefix(last, "ttl=") {
		secs, err := strconv.Atoi(strings.TrimPrefix(last, "ttl="))
		if err != nil {
			return rec, fmt.Errorf("--extra %q: bad ttl", x)
		}
		rec.TTL = time.Duration(secs) * time.Second
		data = data[:len(data)-1]
	}
	rec.Data = strings.Join(data, " ")
	return rec, nil
}

func readCert(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TSA root: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("TSA root %s is not a certificate: %w", path, err)
	}
	return b, nil
}

// ParseNamespace reads a namespace declaration: "NAME writers=W policy=P
// [keys=K,K…] [max-value=N] [max-entries=N] [lifetime=D]", W one of admin,
// members, keys, owner; P one of lww, fww, gset, orset, log; D a duration
// (720h). Unset limits take the namespace layer's defaults. A key K is
// "ssh-ed25519 AAAA…" (without a comment) or the raw base64 of the key.
func ParseNamespace(spec string) (crdt.Namespace, error) {
	var f []string
	for _, w := range strings.Fields(spec) {
		// "keys=ssh-ed25519 AAAA…,ssh-ed25519 AAAA…": the space inside a
		// key does not end it.
		if n := len(f); n > 0 && strings.HasSuffix(f[n-1], "ssh-ed25519") {
			f[n-1] += " " + w
			continue
		}
		f = append(f, w)
	}
	if len(f) == 0 {
		return crdt.Namespace{}, fmt.Errorf("--namespace %q: want \"NAME writers=W policy=P …\"", spec)
	}
	ns := crdt.Namespace{Name: f[0]}
	bad := func(format string, args ...any) (crdt.Namespace, error) {
		return crdt.Namespace{}, fmt.Errorf("--namespace %q: %s", spec, fmt.Sprintf(format, args...))
	}
	if err := crdt.ValidateNamespaceName(ns.Name); err != nil {
		return bad("%v", err)
	}
	var haveW, haveP bool
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return bad("%q is not key=value", kv)
		}
		var err error
		switch k {
		case "writers":
			ns.Writers, err = crdt.ParseWriters(v)
			haveW = true
		case "policy":
			ns.Policy, err = crdt.ParsePolicy(v)
			haveP = true
		case "keys":
			for _, key := range strings.Split(v, ",") {
				p, perr := crdt.ParsePublicKey(key)
				if perr != nil {
					return bad("keys: %v", perr)
				}
				ns.WriterKeys = append(ns.WriterKeys, p)
			}
		case "max-value":
			ns.MaxValue, err = strconv.Atoi(v)
		case "max-entries":
			ns.MaxEntriesPerWriter, err = strconv.Atoi(v)
		case "lifetime":
			ns.Lifetime, err = time.ParseDuration(v)
		default:
			return bad("unknown %q (writers, policy, keys, max-value, max-entries, lifetime)", k)
		}
		if err != nil {
			return bad("%s: %v", k, err)
		}
	}
	if !haveW || !haveP {
		return bad("writers= and policy= are required")
	}
	return ns, nil
}

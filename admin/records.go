package admin

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// The admin's DNS records as entries of the dns.records namespace: one
// entry per name and type holds all its records, so two admins editing
// different names at the same moment both keep their edit (the settings
// are one record: the newer edit would erase the other).

// RecordsNamespace is the declaration dns.records needs: the admin writes,
// last writer wins per name and type.
var RecordsNamespace = crdt.Namespace{Name: crdt.NamespaceRecords, Writers: crdt.WritersAdmin, Policy: crdt.PolicyLWW}

// AliasesNamespace is the declaration dns.aliases needs.
var AliasesNamespace = crdt.Namespace{Name: crdt.NamespaceAliases, Writers: crdt.WritersAdmin, Policy: crdt.PolicyLWW}

// DeclareRecords makes the builder's settings declare dns.records (as
// RecordsNamespace) if they do not; it reports whether they changed.
func (b *Builder) DeclareRecords() bool {
	if slices.ContainsFunc(b.s.Namespaces, func(n crdt.Namespace) bool { return n.Name == crdt.NamespaceRecords }) {
		return false
	}
	b.s.Namespaces = append(b.s.Namespaces, RecordsNamespace)
	return true
}

// RecordKey is the dns.records key of a name and type: "NAME TYPE".
func RecordKey(name, typ string) string { return name + " " + strings.ToUpper(typ) }

// RecordEntries turns --extra ("name TYPE data [ttl=S]") and --remove-extra
// ("name TYPE") into dns.records entries of network, signed by the admin:
// an added record joins the records its name and type hold now (current
// gives them, one "data [ttl=S]" a line, from the namespace or else from
// the settings' extra records), a removal deletes the name and type.
func RecordEntries(network crdt.PublicKey, add, remove []string, current func(key string) []string, key Key, now time.Time) ([]*crdt.Record, error) {
	rrsets := map[string][]string{}
	var order []string
	for _, x := range add {
		rec, err := parseExtra(x)
		if err != nil {
			return nil, err
		}
		if _, err := crdt.ParseRecordData(rec.Name, rec.Type, recordLine(rec)); err != nil {
			return nil, fmt.Errorf("--extra %q: %w", x, err)
		}
		k := RecordKey(rec.Name, rec.Type.String())
		if _, seen := rrsets[k]; !seen {
			rrsets[k] = slices.Clone(current(k))
			order = append(order, k)
		}
		if line := recordLine(rec); !slices.Contains(rrsets[k], line) {
			rrsets[k] = append(rrsets[k], line)
		}
	}
	var out []*crdt.Record
	at := now
	next := func() time.Time { at = at.Add(time.Microsecond); return at }
	for _, k := range order {
		r, err := crdt.SignEntry(crdt.Entry{Network: network, Namespace: crdt.NamespaceRecords, Writer: key.Public(), Key: k,
			Time: next(), Policy: crdt.PolicyLWW, Op: crdt.OpPut, Value: []byte(strings.Join(rrsets[k], "\n"))}, key)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	for _, x := range remove {
		f := strings.Fields(x)
		if len(f) != 2 {
			return nil, fmt.Errorf("--remove-extra %q: want \"name TYPE\"", x)
		}
		r, err := crdt.SignEntry(crdt.Entry{Network: network, Namespace: crdt.NamespaceRecords, Writer: key.Public(),
			Key: RecordKey(f[0], f[1]), Time: next(), Policy: crdt.PolicyLWW, Op: crdt.OpDelete}, key)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// recordLine is one record as dns.records holds it.
func recordLine(r crdt.ExtraRecord) string {
	if r.TTL > 0 {
		return fmt.Sprintf("%s ttl=%d", r.Data, int(r.TTL/time.Second))
	}
	return r.Data
}

// SettingsRecords are a settings record's extra records of one name and
// type, as RecordEntries' current wants them (for a network whose records
// are still all in its settings).
func SettingsRecords(rec *Record, key string) []string {
	var out []string
	for _, x := range rec.Settings().Extra {
		if RecordKey(x.Name, x.Type.String()) == key {
			out = append(out, recordLine(x))
		}
	}
	return out
}

// SignEntry signs an entry of the admin's: a put of value under key in the
// namespace named ns of network, whose policy (lww, fww, gset) is policy,
// or a delete (lww, fww). Sets with removals and logs are written through
// an agent, which knows what they hold.
func SignEntry(network crdt.PublicKey, ns, policy, k string, value []byte, del bool, key Key, now time.Time) (*crdt.Record, error) {
	p, err := crdt.ParsePolicy(policy)
	if err != nil {
		return nil, err
	}
	if p == crdt.PolicyORSet || p == crdt.PolicyLog {
		return nil, fmt.Errorf("the admin writes %s namespaces through an agent whose node key may write them (dm-agent data, without --admin-key)", p)
	}
	e := crdt.Entry{Network: network, Namespace: ns, Writer: key.Public(), Key: k, Time: now, Policy: p, Op: crdt.OpPut, Value: value}
	if del {
		e.Op, e.Value = crdt.OpDelete, nil
	}
	return crdt.SignEntry(e, key)
}

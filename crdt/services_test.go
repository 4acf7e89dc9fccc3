package crdt

import (
	"slices"
	"testing"
	"time"
)

func putEntry(t *testing.T, k PrivateKey, network PublicKey, ns, key, value string, at time.Time) *Record {
	t.Helper()
	return must(SignEntry(Entry{Network: network, Namespace: ns, Writer: k.Public(), Key: key, Time: at, Policy: PolicyLWW,
		Op: OpPut, Value: []byte(value)}, k))
}

func delEntry(t *testing.T, k PrivateKey, network PublicKey, ns, key string, at time.Time) *Record {
	t.Helper()
	return must(SignEntry(Entry{Network: network, Namespace: ns, Writer: k.Public(), Key: key, Time: at, Policy: PolicyLWW, Op: OpDelete}, k))
}

func extraOf(v *ResolvedView, fqdn string) []string {
	var out []string
	if n := v.Names[fqdn]; n != nil {
		for _, x := range n.Extra {
			out = append(out, x.Type.String()+" "+x.Data)
		}
	}
	slices.Sort(out)
	return out
}

// The admin's records as entries: one per name and type, so that edits
// of different names never clash; an entry replaces the settings' extra
// records of its name and type (an upgraded network keeps its records
// until an admin edits them, and a delete entry removes them); aliases
// are CNAMEs; and a node's services are SRV records under its names, while
// it is reachable.
func TestServicesInTheView(t *testing.T) {
	admin, node, witness := testKey("admin"), testKey("node"), testKey("witness")
	id := admin.Public()
	set := must(SignSettings(testSettings(admin, epoch, func(s *Settings) {
		s.Witnesses = []PublicKey{witness.Public()}
		s.Extra = []ExtraRecord{{Name: "printer", Type: TypeAAAA, Data: "fd00::99"}, {Name: "old", Type: TypeTXT, Data: "kept"}}
		s.Namespaces = []Namespace{
			{Name: NamespaceRecords, Writers: WritersAdmin, Policy: PolicyLWW},
			{Name: NamespaceAliases, Writers: WritersAdmin, Policy: PolicyLWW},
			{Name: NamespaceServices, Writers: WritersOwner, Policy: PolicyLWW},
		}
	}), admin))
	st := NewState(DefaultOptions(), id)
	now := epoch.Add(time.Minute)
	claim := claimRec(id, node, "mors", epoch)
	mustIngest(t, st, now, set, hostRec(id, node, epoch, "fd00::1"), claim, witnessRec(claim, witness, epoch))
	view := func(reachable bool) *ResolvedView {
		return st.View(ViewConfig{Networks: []JoinedNetwork{{ID: id, Priority: 1}},
			Reachable: func(_, n PublicKey) bool { return reachable || n != node.Public() }}, now)
	}
	// Before any entry: the settings' records.
	if got := extraOf(view(true), "printer.nether"); !slices.Equal(got, []string{"AAAA fd00::99"}) {
		t.Fatalf("before: %v", got)
	}
	mustIngest(t, st, now,
		putEntry(t, admin, id, NamespaceRecords, "printer AAAA", "fd00::98\nfd00::97 ttl=30", now),
		putEntry(t, admin, id, NamespaceRecords, "www CNAME", "mors", now),
		putEntry(t, admin, id, NamespaceRecords, "bad AAAA", "not an address", now),
		putEntry(t, admin, id, NamespaceAliases, "git", "mors", now),
		putEntry(t, node, id, NamespaceServices, "_ssh._tcp", "22", now),
		putEntry(t, node, id, NamespaceServices, "_dns._udp", "10 5 53", now),
	)
	v := view(true)
	for fqdn, want := range map[string][]string{
		"printer.nether":           {"AAAA fd00::97", "AAAA fd00::98"}, // the entry replaces the settings' record
		"old.nether":               {"TXT kept"},                       // not covered by an entry: still served
		"www.nether":               {"CNAME mors.nether."},
		"git.nether":               {"CNAME mors.nether."},
		"_ssh._tcp.mors.nether":    {"SRV 0 0 22 mors.nether."},
		"_dns._udp.mors.nether":    {"SRV 10 5 53 mors.nether."},
		"bad.nether":               nil, // a malformed entry costs only itself
		"_ssh._tcp.printer.nether": nil,
	} {
		if got := extraOf(v, fqdn); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", fqdn, got, want)
		}
	}
	// An unreachable node's services go with its names.
	if got := extraOf(view(false), "_ssh._tcp.mors.nether"); got != nil {
		t.Errorf("the services of an unreachable node: %v", got)
	}
	// A delete entry removes the name's records, the settings' too.
	mustIngest(t, st, now, delEntry(t, admin, id, NamespaceRecords, "printer AAAA", now.Add(time.Second)))
	if got := extraOf(view(true), "printer.nether"); got != nil {
		t.Errorf("after the delete: %v", got)
	}
}

// Two admins (two keys of a keys namespace, or one admin on two machines)
// editing different names at the same moment both keep their edit: each
// name is its own entry, where the settings are one record, newest wins.
func TestConcurrentAdminEditsBothStand(t *testing.T) {
	admin, alice, bob := testKey("admin"), testKey("alice"), testKey("bob")
	id := admin.Public()
	set := must(SignSettings(testSettings(admin, epoch, func(s *Settings) {
		s.Namespaces = []Namespace{{Name: NamespaceAliases, Writers: WritersKeys, WriterKeys: []PublicKey{alice.Public(), bob.Public()}, Policy: PolicyLWW}}
	}), admin))
	now := epoch.Add(time.Minute)
	a := putEntry(t, alice, id, NamespaceAliases, "wiki", "gate", now)
	b := putEntry(t, bob, id, NamespaceAliases, "mail", "gate", now)
	for _, order := range [][]*Record{{set, a, b}, {set, b, a}} {
		st := NewState(DefaultOptions(), id)
		mustIngest(t, st, now, order...)
		v := st.View(ViewConfig{Networks: []JoinedNetwork{{ID: id, Priority: 1}}}, now)
		if extraOf(v, "wiki.nether") == nil || extraOf(v, "mail.nether") == nil {
			t.Fatalf("one edit lost: wiki %v, mail %v", extraOf(v, "wiki.nether"), extraOf(v, "mail.nether"))
		}
	}
}

// A view computed with the one before shares only the entries that did
// not change: the admin's record added at a claimed name, and a service
// under it, go into entries of the new view's own, and the view before
// keeps its answers.
func TestViewSharesNoEntryThatChanged(t *testing.T) {
	admin, node, witness := testKey("admin"), testKey("node"), testKey("witness")
	id := admin.Public()
	set := must(SignSettings(testSettings(admin, epoch, func(s *Settings) {
		s.Witnesses = []PublicKey{witness.Public()}
		s.Namespaces = []Namespace{
			{Name: NamespaceRecords, Writers: WritersAdmin, Policy: PolicyLWW},
			{Name: NamespaceServices, Writers: WritersOwner, Policy: PolicyLWW},
		}
	}), admin))
	st := NewState(DefaultOptions(), id)
	now := epoch.Add(time.Minute)
	claim := claimRec(id, node, "mors", epoch)
	other := testKey("other")
	claim2 := claimRec(id, other, "vega", epoch)
	mustIngest(t, st, now, set, hostRec(id, node, epoch, "fd00::1"), claim, witnessRec(claim, witness, epoch),
		hostRec(id, other, epoch, "fd00::2"), claim2, witnessRec(claim2, witness, epoch))
	cfg := ViewConfig{Networks: []JoinedNetwork{{ID: id, Priority: 1}}}
	before := st.View(cfg, now)
	mustIngest(t, st, now,
		putEntry(t, admin, id, NamespaceRecords, "mors TXT", "hello", now),
		putEntry(t, node, id, NamespaceServices, "_ssh._tcp", "22", now))
	cfg.Previous = before
	v := st.View(cfg, now)
	if got := extraOf(v, "mors.nether"); !slices.Equal(got, []string{"TXT hello"}) {
		t.Fatalf("mors: %v", got)
	}
	if got := extraOf(v, "_ssh._tcp.mors.nether"); !slices.Equal(got, []string{"SRV 0 0 22 mors.nether."}) {
		t.Fatalf("the service: %v", got)
	}
	if v.Names["mors.nether"] == before.Names["mors.nether"] || len(before.Names["mors.nether"].Extra) != 0 {
		t.Fatalf("mors's entry shared with the view before, or changed in it: %+v", before.Names["mors.nether"])
	}
	if v.Names["vega.nether"] != before.Names["vega.nether"] {
		t.Fatal("vega's entry, unchanged, not shared")
	}
	if _, ok := before.Names["_ssh._tcp.mors.nether"]; ok {
		t.Fatal("the service went into the view before")
	}
}

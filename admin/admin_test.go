package admin

import (
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

func testKey(name string) crdt.PrivateKey {
	seed := sha256.Sum256([]byte("admin test " + name))
	k, err := crdt.NewPrivateKeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// A network's settings are built, edited and signed here: each later
// edit is dated after the one it builds on, even with a clock behind it,
// and only the network's own key signs.
func TestBuilderSignsNewerSettings(t *testing.T) {
	admin := testKey("admin")
	b, err := NewNetwork(admin.Public(), "Clan", 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	first, err := b.Sign(admin, now)
	if err != nil || first.Settings().Domain != "clan" || first.Settings().HostTTL != crdt.DefaultHostTTL {
		t.Fatalf("first settings: %v %v", first, err)
	}
	if _, err := b.Sign(testKey("stranger"), now); err == nil || !strings.Contains(err.Error(), "not this network's key") {
		t.Fatalf("signed with another key: %v", err)
	}
	next, _ := FromSettings(first)
	if err := next.Apply(Edit{Ban: []string{testKey("x").Public().AuthorizedKey()}, Namespace: []string{"services writers=owner policy=lww lifetime=720h"}}); err != nil {
		t.Fatal(err)
	}
	second, err := next.Sign(admin, now.Add(-time.Hour)) // this clock is behind
	if err != nil || !second.Settings().Updated.After(first.Settings().Updated) || len(second.Settings().Namespaces) != 1 {
		t.Fatalf("the edit: %v %v", second, err)
	}
	if ns := second.Settings().Namespaces[0]; ns.Writers != crdt.WritersOwner || ns.Policy != crdt.PolicyLWW || ns.Lifetime != 720*time.Hour {
		t.Fatalf("the namespace: %+v", ns)
	}
}

func TestParseNamespaceRefuses(t *testing.T) {
	for spec, says := range map[string]string{
		"":                                   "want",
		"Services writers=owner policy=lww":  "",
		"services policy=lww":                "required",
		"services writers=owner policy=next": "policy",
		"services writers=owner policy=lww ttl=5":    "unknown",
		"services writers=keys policy=lww keys=nope": "keys",
	} {
		_, err := ParseNamespace(spec)
		if err == nil || (says != "" && !strings.Contains(err.Error(), says)) {
			t.Errorf("%q: %v, want an error about %q", spec, err, says)
		}
	}
}

// --extra writes a dns.records entry per name and type that joins the
// records it holds already (from the namespace, or from the settings of a
// network upgraded from before namespaces); --remove-extra deletes one.
func TestRecordEntries(t *testing.T) {
	admin := testKey("admin")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b, _ := NewNetwork(admin.Public(), "clan", 0)
	if err := b.Apply(Edit{Extra: []string{"printer AAAA fd00::99"}}); err != nil {
		t.Fatal(err)
	}
	if !b.DeclareRecords() || b.DeclareRecords() {
		t.Fatal("DeclareRecords declares dns.records once")
	}
	set, err := b.Sign(admin, now)
	if err != nil {
		t.Fatal(err)
	}
	current := func(key string) []string { return SettingsRecords(set, key) }
	entries, err := RecordEntries(admin.Public(), []string{"printer AAAA fd00::98 ttl=30", "www CNAME gate"}, []string{"old TXT"}, current, admin, now)
	if err != nil || len(entries) != 3 {
		t.Fatalf("entries: %v %v", entries, err)
	}
	if v := string(entries[0].Entry().Value); entries[0].Entry().Key != "printer AAAA" || v != "fd00::99\nfd00::98 ttl=30" {
		t.Fatalf("the printer's records: %q %q", entries[0].Entry().Key, v)
	}
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	if res := st.IngestAll(append([]*crdt.Record{set}, entries...), now); len(res.Rejected) > 0 {
		t.Fatal(res.Rejected[0])
	}
	v := st.View(crdt.ViewConfig{Networks: []crdt.JoinedNetwork{{ID: admin.Public(), Priority: 1}}}, now)
	var got []string
	for _, x := range v.Names["printer.clan"].Extra {
		got = append(got, x.Data)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"fd00::98", "fd00::99"}) || v.Names["www.clan"] == nil {
		t.Fatalf("the view: printer %v, www %v", got, v.Names["www.clan"])
	}
	if _, err := RecordEntries(admin.Public(), []string{"printer AAAA not-an-address"}, nil, current, admin, now); err == nil {
		t.Fatal("a bad record became an entry")
	}
}

// Writer keys come as NixOS and .pub files write them, or as raw base64.
func TestParseNamespaceKeysInEitherForm(t *testing.T) {
	a, b := testKey("a").Public(), testKey("b").Public()
	spec := "deploy writers=keys policy=lww keys=" + a.AuthorizedKey() + "," + b.String() + " max-value=64"
	ns, err := ParseNamespace(spec)
	if err != nil || len(ns.WriterKeys) != 2 || ns.WriterKeys[0] != a || ns.WriterKeys[1] != b || ns.MaxValue != 64 {
		t.Fatalf("%q: %+v, %v", spec, ns, err)
	}
	two := "deploy writers=keys policy=lww keys=" + a.AuthorizedKey() + "," + b.AuthorizedKey()
	if ns, err := ParseNamespace(two); err != nil || len(ns.WriterKeys) != 2 || ns.WriterKeys[1] != b {
		t.Fatalf("%q: %+v, %v", two, ns, err)
	}
}

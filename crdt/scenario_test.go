package crdt

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario tests are histories written in a small text language, one step a
// line, so that the histories that matter read like their description:
//
//	# minute actor verb args… [=outcome | !reason]
//	0  admin settings domain=nether ttl=1h witnesses=w
//	0  alice host fd00::1
//	1  alice claim mors
//	2  w     witness alice:mors
//	3  bob   claim mors
//	4  w     witness bob:mors
//	expect mors.nether alice
//
// The minute is the time of the step and the node's clock when it ingests the
// record. Verbs: settings, host, claim, witness (of "actor:name"), forge-settings
// (an admin-signed-looking record signed by the actor), tamper LABEL (flip a byte
// of the last record of that label and deliver it), replay LABEL (deliver an
// earlier record again; a witness's record is labelled "w>alice:mors"), prune, unreachable, priority. Options: net=ADMIN picks
// the network (default: the one of actor "admin"). A trailing "!reason" says
// the step must be refused for that reason, "=superseded" or "=known" that it
// must be accepted without changing anything. "expect FQDN actor|-" checks the
// view at the last step's time; "at MINUTE" moves the clock for the checks.
//
// Namespaces:
//
//	0  admin settings witnesses=w ns=names:members:fww ns=svc:owner:orset:life=1h ns=aliases:keys=alice+bob:lww
//	1  alice put names git fd00::1           # labelled "alice:names/git"
//	2  w     witness alice:names/git
//	3  alice put svc _ssh._tcp 22 as=a1
//	4  alice delete svc _ssh._tcp a1         # an orset delete removes labelled adds
//	5  bob   delete names git                # other policies: a plain delete
//	5  bob   forge-put aliases www x alice   # signed by bob, claiming alice wrote it
//	expect-ns names git alice:fd00::1/holds,bob:x/later
//	expect-ns svc alice/_ssh._tcp -
//
// A namespace is ns=NAME:WRITERS:POLICY[:life=DURATION][:max=N][:value=N],
// WRITERS one of admin, members, owner, keys=A+B. An entry is written under
// the policy its network's last scripted settings declare (policy=P
// overrides; seq=N numbers a log entry; target=ACTOR names whose adds an
// orset delete removes, by default the removed adds' writer).
// "expect-ns NS [OWNER/]KEY SPEC" checks what Items says of the key: SPEC is
// "-" (nothing), "deleted" (an lww delete won), or the items in order as
// writer:value, with /standing for fww.
//
// After the script, every accepted record is delivered again to fresh states
// in several random orders, with duplicates: each must end with the same
// view and the same items, because the winner of a name and the content of
// a namespace are functions of the records alone.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runScenario(t, f)
		})
	}
}

type scenario struct {
	t         *testing.T
	file      string
	line      int
	state     *State
	now       time.Time
	labels    map[string]*Record
	accepted  []*Record
	nets      []JoinedNetwork
	reachable map[PublicKey]bool
	checks    []func(*State, *ResolvedView, string)
	keys      map[PublicKey]string
	// policies: the policy of each namespace in each network's last
	// scripted settings.
	policies map[PublicKey]map[string]Policy
}

func runScenario(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := &scenario{t: t, file: filepath.Base(file), labels: map[string]*Record{}, reachable: map[PublicKey]bool{}, keys: map[PublicKey]string{},
		policies: map[PublicKey]map[string]Policy{}}
	sc.state = NewState(DefaultOptions())
	sc.priority(sc.key("admin").Public(), 1)
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		sc.line++
		text := strings.TrimSpace(lines.Text())
		if i := strings.Index(text, "#"); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		sc.step(strings.Fields(text))
	}
	sc.replay()
}

func (sc *scenario) fatalf(format string, args ...any) {
	sc.t.Helper()
	sc.t.Fatalf("%s:%d: %s", sc.file, sc.line, fmt.Sprintf(format, args...))
}

func (sc *scenario) key(actor string) PrivateKey {
	k := testKey(actor)
	sc.keys[k.Public()] = actor
	return k
}

func (sc *scenario) priority(id PublicKey, p float64) {
	sc.state.Join(id)
	sc.nets = slices.DeleteFunc(sc.nets, func(n JoinedNetwork) bool { return n.ID == id })
	sc.nets = append(sc.nets, JoinedNetwork{ID: id, Priority: p})
}

func (sc *scenario) viewConfig() ViewConfig {
	unreachable := map[PublicKey]bool{}
	for k, v := range sc.reachable {
		unreachable[k] = !v
	}
	return ViewConfig{Networks: sc.nets, Reachable: func(_, node PublicKey) bool { return !unreachable[node] }}
}

func (sc *scenario) step(f []string) {
	switch f[0] {
	case "expect":
		if len(f) != 3 {
			sc.fatalf("expect FQDN actor|-")
		}
		sc.expect(sc.state.View(sc.viewConfig(), sc.now), f[1], f[2], fmt.Sprintf("%s:%d", sc.file, sc.line))
		line := sc.line
		fqdn, want := f[1], f[2]
		sc.checks = append(sc.checks, func(_ *State, v *ResolvedView, where string) {
			sc.expect(v, fqdn, want, fmt.Sprintf("%s (line %d)", where, line))
		})
		return
	case "expect-ns":
		if len(f) != 4 {
			sc.fatalf("expect-ns NS [OWNER/]KEY SPEC")
		}
		network := sc.key("admin").Public()
		sc.expectItems(sc.state, network, f[1], f[2], f[3], fmt.Sprintf("%s:%d", sc.file, sc.line))
		line := sc.line
		ns, key, want := f[1], f[2], f[3]
		sc.checks = append(sc.checks, func(s *State, _ *ResolvedView, where string) {
			sc.expectItems(s, network, ns, key, want, fmt.Sprintf("%s (line %d)", where, line))
		})
		return
	case "at":
		sc.now = sc.minute(f[1])
		sc.checks = nil // earlier checks were about earlier times
		return
	}
	if len(f) < 3 {
		sc.fatalf("want: minute actor verb args…")
	}
	if now := sc.minute(f[0]); !now.Equal(sc.now) {
		sc.now = now
		sc.checks = nil // earlier checks were about an earlier time
	}
	actor, verb, args := f[1], f[2], f[3:]
	want := "=added"
	if n := len(args); n > 0 && (strings.HasPrefix(args[n-1], "!") || strings.HasPrefix(args[n-1], "=")) {
		want, args = args[n-1], args[:n-1]
	}
	network := sc.key("admin").Public()
	var opts []string
	var as, netSuffix string
	created := sc.now
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "net="); ok {
			network = sc.key(v).Public()
			netSuffix = "@" + v
		} else if v, ok := strings.CutPrefix(a, "as="); ok {
			as = v
		} else if v, ok := strings.CutPrefix(a, "created="); ok {
			created = sc.minute(v)
		} else {
			opts = append(opts, a)
		}
	}
	key := sc.key(actor)
	var rec *Record
	var label string
	switch verb {
	case "settings", "forge-settings":
		s := Settings{Network: network, Updated: sc.now, Domain: "nether", HostTTL: time.Hour, DNSTTL: time.Minute}
		sc.settingsOpts(&s, opts)
		if verb == "settings" {
			rec = must(SignSettings(s, key))
			sc.policies[network] = map[string]Policy{}
			for _, ns := range s.Namespaces {
				sc.policies[network][ns.Name] = ns.Policy
			}
		} else {
			s.normalize()
			rec = must(sign(&Record{kind: KindSettings, body: &s}, key))
		}
		label = "settings"
	case "host":
		rec = hostRec(network, key, sc.now, opts...)
		label = actor + ":host" + netSuffix
	case "forge-host": // a host record for opts[0]'s node, signed by actor
		h := Host{Network: network, Node: sc.key(opts[0]).Public(), Heartbeat: sc.now}
		for _, a := range opts[1:] {
			h.Addresses = append(h.Addresses, netip.MustParseAddr(a))
		}
		h.normalize()
		rec = must(sign(&Record{kind: KindHost, body: &h}, key))
	case "claim":
		rec = claimRec(network, key, opts[0], created)
		label = actor + ":" + opts[0] + netSuffix
	case "witness", "forge-witness": // forge-witness LABEL AS: actor signs as if it were AS
		c := sc.labels[opts[0]]
		if c == nil {
			sc.fatalf("no claim %q to witness", opts[0])
		}
		rec = witnessRec(c, key, sc.now)
		if verb == "forge-witness" {
			a := *rec.Attestation()
			w := *a.Witness
			w.Key = sc.key(opts[1]).Public()
			a.Witness = &w
			rec = must(NewAttestation(a))
		}
		label = actor + ">" + opts[0]
	case "put", "forge-put", "delete":
		rec, label = sc.entry(verb, network, key, actor, opts)
	case "tamper":
		orig := sc.labels[opts[0]]
		if orig == nil {
			sc.fatalf("no record %q", opts[0])
		}
		// Move the record's own time forward by a nanosecond (the low byte
		// of Updated, Heartbeat or Created), so that the forgery would win
		// over the original if it were believed.
		raw := slices.Clone(orig.Bytes())
		off := envelopeHeaderSize + 32 + 32 + 7
		if orig.Kind() == KindSettings {
			off = envelopeHeaderSize + 32 + 7
		}
		raw[off]++
		var err error
		rec, err = DecodeRecord(raw)
		if err != nil {
			sc.fatalf("tampered record does not decode (pick another byte): %v", err)
		}
	case "replay":
		rec = sc.labels[opts[0]]
		if rec == nil {
			sc.fatalf("no record %q", opts[0])
		}
	case "prune":
		sc.state.Prune(sc.now)
		return
	case "unreachable", "reachable":
		sc.reachable[key.Public()] = verb == "reachable"
		sc.checks = nil
		return
	case "priority":
		p, err := strconv.ParseFloat(opts[0], 64)
		if err != nil {
			sc.fatalf("priority: %v", err)
		}
		sc.priority(key.Public(), p)
		sc.checks = nil
		return
	default:
		sc.fatalf("unknown verb %q", verb)
	}
	if as != "" {
		label = as
	}
	if label != "" {
		sc.labels[label] = rec
	}
	out, err := sc.state.Ingest(rec, sc.now)
	switch {
	case strings.HasPrefix(want, "!"):
		if err == nil {
			sc.fatalf("%s was accepted (%s), want refusal %s", rec, out, want[1:])
		}
		if got := ReasonOf(err); string(got) != want[1:] {
			sc.fatalf("%s refused for %q (%v), want %s", rec, got, err, want[1:])
		}
	case err != nil:
		sc.fatalf("%s refused: %v", rec, err)
	case "="+out.String() != want:
		sc.fatalf("%s: outcome %s, want %s", rec, out, want[1:])
	default:
		sc.accepted = append(sc.accepted, rec)
	}
}

func (sc *scenario) settingsOpts(s *Settings, opts []string) {
	keys := func(v string) []PublicKey {
		var out []PublicKey
		for _, a := range strings.Split(v, ",") {
			out = append(out, sc.key(a).Public())
		}
		return out
	}
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "domain":
			s.Domain = v
		case "ttl":
			d, err := time.ParseDuration(v)
			if err != nil {
				sc.fatalf("ttl: %v", err)
			}
			s.HostTTL = d
		case "witnesses":
			s.Witnesses = keys(v)
		case "ban":
			s.Banned = keys(v)
		case "allow":
			s.Restricted, s.AllowedNodes = true, keys(v)
		case "override":
			name, actor, _ := strings.Cut(v, ":")
			s.Overrides = append(s.Overrides, Override{Name: name, Node: sc.key(actor).Public()})
		case "cname":
			name, target, _ := strings.Cut(v, ":")
			s.Extra = append(s.Extra, ExtraRecord{Name: name, Type: TypeCNAME, Data: target})
		case "ns":
			s.Namespaces = append(s.Namespaces, sc.namespace(v))
		default:
			sc.fatalf("unknown settings option %q", o)
		}
	}
}

// namespace reads NAME:WRITERS:POLICY[:life=D][:max=N][:value=N].
func (sc *scenario) namespace(v string) Namespace {
	f := strings.Split(v, ":")
	if len(f) < 3 {
		sc.fatalf("ns=NAME:WRITERS:POLICY[:options], not %q", v)
	}
	ns := Namespace{Name: f[0]}
	if keys, ok := strings.CutPrefix(f[1], "keys="); ok {
		ns.Writers = WritersKeys
		for _, a := range strings.Split(keys, "+") {
			ns.WriterKeys = append(ns.WriterKeys, sc.key(a).Public())
		}
	} else {
		ns.Writers = must(ParseWriters(f[1]))
	}
	ns.Policy = must(ParsePolicy(f[2]))
	for _, o := range f[3:] {
		k, val, _ := strings.Cut(o, "=")
		switch k {
		case "life":
			ns.Lifetime = must(time.ParseDuration(val))
		case "max":
			ns.MaxEntriesPerWriter = must(strconv.Atoi(val))
		case "value":
			ns.MaxValue = must(strconv.Atoi(val))
		default:
			sc.fatalf("unknown namespace option %q", o)
		}
	}
	return ns
}

// entry builds the record of a put, forge-put or delete step.
func (sc *scenario) entry(verb string, network PublicKey, key PrivateKey, actor string, opts []string) (*Record, string) {
	var pos []string
	e := Entry{Network: network, Writer: key.Public(), Time: sc.now, Op: OpPut}
	var target string
	for _, o := range opts {
		switch k, v, _ := strings.Cut(o, "="); k {
		case "seq":
			e.Seq = uint64(must(strconv.Atoi(v)))
		case "policy":
			e.Policy = must(ParsePolicy(v))
		case "target":
			target = v
		default:
			pos = append(pos, o)
		}
	}
	if len(pos) < 2 {
		sc.fatalf("%s NS KEY …", verb)
	}
	e.Namespace, e.Key = pos[0], pos[1]
	if e.Policy == 0 {
		e.Policy = sc.policies[network][e.Namespace]
		if e.Policy == 0 {
			e.Policy = PolicyLWW // an undeclared namespace: any policy will do
		}
	}
	label := actor + ":" + e.Namespace + "/" + e.Key
	switch verb {
	case "put":
		if len(pos) > 2 {
			e.Value = []byte(pos[2])
		}
		return must(SignEntry(e, key)), label
	case "forge-put": // forge-put NS KEY VALUE AS: the actor signs what AS would write
		if len(pos) != 4 {
			sc.fatalf("forge-put NS KEY VALUE AS")
		}
		e.Value, e.Writer = []byte(pos[2]), sc.key(pos[3]).Public()
		e.Time = canonicalTime(e.Time)
		return must(sign(&Record{kind: KindEntry, body: &e}, key)), ""
	}
	e.Op = OpDelete
	if e.Policy == PolicyORSet {
		for _, l := range pos[2:] {
			a := sc.labels[l]
			if a == nil || a.Kind() != KindEntry {
				sc.fatalf("no entry %q to delete", l)
			}
			e.Removes = append(e.Removes, a.Hash())
			e.Target = a.Entry().Writer
		}
		if target != "" {
			e.Target = sc.key(target).Public()
		}
	}
	return must(SignEntry(e, key)), label + ":delete"
}

// expectItems checks what Items says of one key (see the syntax above).
func (sc *scenario) expectItems(s *State, network PublicKey, ns, key, want, where string) {
	sc.t.Helper()
	v := s.Items(network, ns, sc.now)
	if v == nil {
		sc.t.Fatalf("%s: namespace %s is not declared", where, ns)
	}
	var owner PublicKey
	if o, k, ok := strings.Cut(key, "/"); ok && v.Namespace.Writers == WritersOwner {
		owner, key = sc.key(o).Public(), k
	}
	got := "-"
	if k := v.Get(owner, key); k != nil {
		var items []string
		for _, it := range k.Items {
			x := sc.keys[it.Writer] + ":" + string(it.Value)
			if it.Standing != "" {
				x += "/" + string(it.Standing)
			}
			items = append(items, x)
		}
		got = strings.Join(items, ",")
		if k.Deleted {
			got = "deleted"
		}
	}
	if got != want {
		sc.t.Fatalf("%s: %s %s holds %s, want %s", where, ns, key, got, want)
	}
}

// describeAllItems is everything every declared namespace holds.
func (sc *scenario) describeAllItems(s *State) string {
	var out []string
	for _, n := range sc.nets {
		for _, ns := range s.Namespaces(n.ID) {
			for _, k := range s.Items(n.ID, ns.Name, sc.now).Keys {
				x := fmt.Sprintf("%s/%s/%s/%s:", sc.keys[n.ID], ns.Name, sc.keys[k.Owner], k.Key)
				for _, it := range k.Items {
					x += fmt.Sprintf(" %s=%q%s", sc.keys[it.Writer], it.Value, it.Standing)
				}
				out = append(out, x)
			}
		}
	}
	return strings.Join(out, "\n")
}

func (sc *scenario) minute(s string) time.Time {
	m, err := strconv.Atoi(s)
	if err != nil {
		sc.fatalf("bad minute %q", s)
	}
	return epoch.Add(time.Duration(m) * time.Minute)
}

func (sc *scenario) expect(v *ResolvedView, fqdn, want, where string) {
	sc.t.Helper()
	e := v.Names[fqdn]
	if want == "-" {
		if e != nil && (len(e.Addrs) > 0 || !e.Node.IsZero()) {
			sc.t.Fatalf("%s: %s resolves to %s %v, want no answer", where, fqdn, sc.keys[e.Node], e.Addrs)
		}
		return
	}
	if e == nil || e.Node.IsZero() {
		sc.t.Fatalf("%s: %s does not resolve, want %s", where, fqdn, want)
	}
	if got := sc.keys[e.Node]; got != want {
		sc.t.Fatalf("%s: %s resolves to %s, want %s", where, fqdn, got, want)
	}
	h := sc.state.Host(e.Network, e.Node)
	if h == nil || !slices.Equal(h.Host().Addresses, e.Addrs) {
		sc.t.Fatalf("%s: %s has addresses %v, not its holder's", where, fqdn, e.Addrs)
	}
}

// replay delivers the accepted records to fresh states in shuffled orders,
// with duplicates, and checks that each ends with the same final view.
func (sc *scenario) replay() {
	want := sc.state.View(sc.viewConfig(), sc.now)
	wantItems := sc.describeAllItems(sc.state)
	for i := range 8 {
		recs := slices.Clone(sc.accepted)
		recs = append(recs, recs[:len(recs)/2]...)
		r := rand.New(rand.NewPCG(uint64(i), 42))
		r.Shuffle(len(recs), func(a, b int) { recs[a], recs[b] = recs[b], recs[a] })
		s := NewState(DefaultOptions())
		for _, n := range sc.nets {
			s.Join(n.ID)
		}
		s.IngestAll(recs, sc.now)
		got := s.View(sc.viewConfig(), sc.now)
		where := fmt.Sprintf("replay %d", i)
		if !sameNames(want, got) {
			sc.t.Fatalf("%s: final view differs from the scripted one:\n got %s\nwant %s", where, describe(got, sc.keys), describe(want, sc.keys))
		}
		if items := sc.describeAllItems(s); items != wantItems {
			sc.t.Fatalf("%s: final namespaces differ from the scripted ones:\n got %s\nwant %s", where, items, wantItems)
		}
		for _, c := range sc.checks {
			c(s, got, where)
		}
	}
}

func sameNames(a, b *ResolvedView) bool {
	if len(a.Names) != len(b.Names) {
		return false
	}
	for k, x := range a.Names {
		y := b.Names[k]
		if y == nil || x.Node != y.Node || x.Network != y.Network || !slices.Equal(x.Addrs, y.Addrs) || !slices.Equal(x.Extra, y.Extra) {
			return false
		}
	}
	return true
}

func describe(v *ResolvedView, keys map[PublicKey]string) string {
	var out []string
	for k, e := range v.Names {
		out = append(out, fmt.Sprintf("%s=%s%v", k, keys[e.Node], e.Addrs))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

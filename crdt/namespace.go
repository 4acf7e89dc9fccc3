package crdt

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// A namespace is a part of a network's database that the admin declares in
// the signed settings: its name, who may write to it, how concurrent writes
// merge, and its limits. Its data are entry records (entry.go), merged by
// the rules of its policy (space.go) and read through Items (items.go).

// Namespace declares one namespace in a network's settings.
type Namespace struct {
	// Name is lower case: letters, digits, '-' and '.', 1–64 bytes,
	// beginning with a letter or digit. Unique within the settings.
	Name string
	// Writers says who may write. The network's admin key may always write.
	Writers Writers
	// WriterKeys are the keys that may write when Writers is WritersKeys
	// (sorted, unique); empty otherwise.
	WriterKeys []PublicKey
	// Policy says how concurrent writes merge.
	Policy Policy
	// MaxValue bounds an entry's value in bytes; 0 means DefaultMaxValue.
	// At most MaxValueLimit.
	MaxValue int
	// MaxEntriesPerWriter bounds the entries one writer holds in the
	// namespace (keys of a register, elements of a set, entries of a log);
	// 0 means DefaultMaxEntriesPerWriter. At most MaxEntriesPerWriterLimit.
	MaxEntriesPerWriter int
	// Lifetime is how long an entry lives after its time; 0 means no
	// lifetime (entries live while their writer may write, see FORMAT.md).
	// An add/remove set needs one, so that its tombstones decay.
	Lifetime time.Duration
}

// Writers says who may write to a namespace.
type Writers uint8

// The writer modes. The numbers are part of the canonical encoding.
const (
	WritersAdmin   Writers = 1 // only the network's admin key
	WritersMembers Writers = 2 // any key the network admits (not banned; allowed, if restricted)
	WritersKeys    Writers = 3 // the keys listed in WriterKeys
	WritersOwner   Writers = 4 // any admitted key, each in its own key-space
)

var writersNames = map[Writers]string{WritersAdmin: "admin", WritersMembers: "members", WritersKeys: "keys", WritersOwner: "owner"}

func (w Writers) String() string {
	if s, ok := writersNames[w]; ok {
		return s
	}
	return fmt.Sprintf("writers(%d)", uint8(w))
}

// ParseWriters reads "admin", "members", "keys" or "owner".
func ParseWriters(s string) (Writers, error) {
	for w, n := range writersNames {
		if n == s {
			return w, nil
		}
	}
	return 0, fmt.Errorf("writers %q: want one of admin, members, keys, owner", s)
}

// MarshalText writes the mode's name.
func (w Writers) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText reads a mode's name.
func (w *Writers) UnmarshalText(b []byte) error {
	v, err := ParseWriters(string(b))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	*w = v
	return nil
}

// Policy says how a namespace merges concurrent writes.
type Policy uint8

// The merge policies. The numbers are part of the canonical encoding.
const (
	PolicyLWW   Policy = 1 // last-writer-wins register per key
	PolicyFWW   Policy = 2 // first-writer-wins per key, by earliest attested time
	PolicyGSet  Policy = 3 // grow-only set per key
	PolicyORSet Policy = 4 // add/remove set per key, with decaying tombstones
	PolicyLog   Policy = 5 // append-only log per writer
)

var policyNames = map[Policy]string{PolicyLWW: "lww", PolicyFWW: "fww", PolicyGSet: "gset", PolicyORSet: "orset", PolicyLog: "log"}

func (p Policy) String() string {
	if s, ok := policyNames[p]; ok {
		return s
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy reads "lww", "fww", "gset", "orset" or "log".
func ParsePolicy(s string) (Policy, error) {
	for p, n := range policyNames {
		if n == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("policy %q: want one of lww, fww, gset, orset, log", s)
}

// MarshalText writes the policy's name.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a policy's name.
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	*p = v
	return nil
}

// allowsDelete reports whether entries of the policy may delete.
func (p Policy) allowsDelete() bool { return p != PolicyGSet && p != PolicyLog }

// Limits of namespaces. The defaults apply where a declaration says 0.
const (
	DefaultMaxValue            = 1024
	MaxValueLimit              = 64 << 10
	DefaultMaxEntriesPerWriter = 256
	MaxEntriesPerWriterLimit   = 4096
	MinLifetime                = time.Minute
	MaxLifetime                = 10 * 365 * 24 * time.Hour
	maxNamespaces              = 256
	maxNamespaceName           = 64
)

// ValueLimit is the effective bound on a value's size.
func (ns *Namespace) ValueLimit() int {
	if ns.MaxValue == 0 {
		return DefaultMaxValue
	}
	return ns.MaxValue
}

// EntryLimit is the effective bound on one writer's entries.
func (ns *Namespace) EntryLimit() int {
	if ns.MaxEntriesPerWriter == 0 {
		return DefaultMaxEntriesPerWriter
	}
	return ns.MaxEntriesPerWriter
}

// Namespace returns the declaration of namespace name, or nil.
func (s *Settings) Namespace(name string) *Namespace {
	i, ok := slices.BinarySearchFunc(s.Namespaces, name, func(ns Namespace, name string) int { return strings.Compare(ns.Name, name) })
	if !ok {
		return nil
	}
	return &s.Namespaces[i]
}

// ValidateNamespaceName checks a namespace's name: lower-case letters,
// digits, '-' and '.', 1–64 bytes, beginning with a letter or digit (so that
// it is a safe file name: never "", "." or "..", never an option).
func ValidateNamespaceName(s string) error {
	if s == "" || len(s) > maxNamespaceName {
		return malformed("namespace name %q: length %d outside [1, %d]", s, len(s), maxNamespaceName)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '.') && i > 0:
		default:
			return malformed("namespace name %q: character %q at %d (lower-case letters, digits, '-' and '.', not first)", s, c, i)
		}
	}
	return nil
}

func (ns *Namespace) normalize() {
	ns.Name = strings.ToLower(ns.Name)
	ns.WriterKeys = sortKeys(ns.WriterKeys)
	if len(ns.WriterKeys) == 0 {
		ns.WriterKeys = nil
	}
}

func normalizeNamespaces(list []Namespace) []Namespace {
	if len(list) == 0 {
		return nil
	}
	list = slices.Clone(list)
	for i := range list {
		list[i].normalize()
	}
	slices.SortStableFunc(list, func(a, b Namespace) int { return strings.Compare(a.Name, b.Name) })
	return list
}

func (ns *Namespace) validate() error {
	if err := ValidateNamespaceName(ns.Name); err != nil {
		return err
	}
	if _, ok := writersNames[ns.Writers]; !ok {
		return malformed("namespace %s: unknown writers %d", ns.Name, ns.Writers)
	}
	if _, ok := policyNames[ns.Policy]; !ok {
		return malformed("namespace %s: unknown policy %d", ns.Name, ns.Policy)
	}
	if ns.Writers == WritersKeys {
		if len(ns.WriterKeys) == 0 {
			return malformed("namespace %s: writers keys without any key", ns.Name)
		}
	} else if len(ns.WriterKeys) > 0 {
		return malformed("namespace %s: writer keys are only for writers keys, not %s", ns.Name, ns.Writers)
	}
	if len(ns.WriterKeys) > maxKeyList {
		return malformed("namespace %s: %d writer keys, at most %d", ns.Name, len(ns.WriterKeys), maxKeyList)
	}
	for i, k := range ns.WriterKeys {
		if k.IsZero() || (i > 0 && ns.WriterKeys[i-1].Compare(k) >= 0) {
			return malformed("namespace %s: writer keys not sorted and unique, or the zero key", ns.Name)
		}
	}
	if ns.Writers == WritersMembers && ns.Policy == PolicyLWW {
		return malformed("namespace %s: with writers members and policy lww any member could overwrite any key; use writers owner, or policy fww", ns.Name)
	}
	if ns.MaxValue < 0 || ns.MaxValue > MaxValueLimit {
		return malformed("namespace %s: max value %d outside [0, %d]", ns.Name, ns.MaxValue, MaxValueLimit)
	}
	if ns.MaxEntriesPerWriter < 0 || ns.MaxEntriesPerWriter > MaxEntriesPerWriterLimit {
		return malformed("namespace %s: max entries per writer %d outside [0, %d]", ns.Name, ns.MaxEntriesPerWriter, MaxEntriesPerWriterLimit)
	}
	if ns.Lifetime != 0 && (ns.Lifetime < MinLifetime || ns.Lifetime > MaxLifetime || ns.Lifetime%time.Second != 0) {
		return malformed("namespace %s: lifetime %v is not 0 or in [%v, %v] in whole seconds", ns.Name, ns.Lifetime, MinLifetime, MaxLifetime)
	}
	if ns.Policy == PolicyORSet && ns.Lifetime == 0 {
		return malformed("namespace %s: policy orset needs a lifetime, so that its tombstones decay", ns.Name)
	}
	return nil
}

func validateNamespaces(list []Namespace) error {
	if len(list) > maxNamespaces {
		return malformed("settings: %d namespaces, at most %d", len(list), maxNamespaces)
	}
	for i := range list {
		if err := list[i].validate(); err != nil {
			return fmt.Errorf("settings: %w", err)
		}
		if i > 0 && list[i-1].Name >= list[i].Name {
			return malformed("settings: namespaces not sorted by name, or %q declared twice", list[i].Name)
		}
	}
	return nil
}

// The namespaces are the last field of the settings body, and absent when
// there are none: settings without namespaces keep the bytes (and hash)
// they had before namespaces existed. An explicit empty list is not
// canonical (the re-encoding check refuses it).
func encodeNamespaces(e *encoder, list []Namespace) {
	if len(list) == 0 {
		return
	}
	e.uvarint(uint64(len(list)))
	for _, ns := range list {
		e.str(ns.Name)
		e.u8(uint8(ns.Writers))
		encodeKeys(e, ns.WriterKeys)
		e.u8(uint8(ns.Policy))
		e.u32(uint32(ns.MaxValue))
		e.u32(uint32(ns.MaxEntriesPerWriter))
		e.i64(int64(ns.Lifetime / time.Second))
	}
}

func decodeNamespaces(d *decoder) []Namespace {
	n := d.count(maxNamespaces, "namespaces")
	if n == 0 {
		return nil
	}
	list := make([]Namespace, n)
	for i := range list {
		list[i] = Namespace{
			Name:                d.str(maxNamespaceName, "namespace name"),
			Writers:             Writers(d.u8("namespace writers")),
			WriterKeys:          decodeKeys(d, "namespace writer keys"),
			Policy:              Policy(d.u8("namespace policy")),
			MaxValue:            int(d.u32("namespace max value")),
			MaxEntriesPerWriter: int(d.u32("namespace max entries per writer")),
			Lifetime:            seconds(d.i64("namespace lifetime")),
		}
		if d.err != nil {
			return nil
		}
	}
	return list
}

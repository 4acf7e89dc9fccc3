package crdt

import (
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Entry is one write to a namespace, signed by its writer: a value put
// under a key, or a delete. What it means depends on the namespace's
// policy, which the entry carries (Policy) so that a record keeps one
// meaning whatever settings a node holds; a node refuses, and drops, entries
// whose policy is not the one its settings declare.
type Entry struct {
	Network   PublicKey
	Namespace string
	Writer    PublicKey // the signer
	// Key is valid UTF-8 without control characters, 1–256 bytes. In an
	// owner namespace the effective key is (Writer, Key).
	Key    string
	Time   time.Time
	Policy Policy // the policy the entry was written under
	Op     Op
	// Seq numbers a writer's entries in a log namespace (log only).
	Seq uint64
	// Value is the data put; empty for deletes.
	Value []byte
	// Target and Removes make an add/remove set's delete (a tombstone): it
	// removes the adds with these hashes whose writer is Target and whose
	// key is Key, dated no later than the tombstone (orset deletes only;
	// Removes sorted, unique, not empty). Only the admin may name another
	// writer as Target.
	Target  PublicKey
	Removes []Hash
}

// Op says what an entry does.
type Op uint8

// The operations. The numbers are part of the canonical encoding.
const (
	OpPut    Op = 1
	OpDelete Op = 2
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// MarshalText writes "put" or "delete".
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads "put" or "delete".
func (o *Op) UnmarshalText(b []byte) error {
	switch string(b) {
	case "put":
		*o = OpPut
	case "delete":
		*o = OpDelete
	default:
		return fmt.Errorf("%w: op %q: want put or delete", ErrMalformed, b)
	}
	return nil
}

// MaxEntryKey bounds an entry's key in bytes.
const MaxEntryKey = 256

// maxRemoves bounds the adds one tombstone lists: more could never fit in a
// writer's limit.
const maxRemoves = MaxEntriesPerWriterLimit

// IsTombstone reports whether e is an add/remove set's delete.
func (e *Entry) IsTombstone() bool { return e.Policy == PolicyORSet && e.Op == OpDelete }

// charged is the writer whose limit the entry counts against: the target of
// a tombstone (whose adds it replaces), else the writer.
func (e *Entry) charged() PublicKey {
	if e.IsTombstone() {
		return e.Target
	}
	return e.Writer
}

// weight is how many places of its writer's limit the entry takes: a
// tombstone takes the places of the adds it lists, so that removing adds
// never frees a place (FORMAT.md, "Limits").
func (e *Entry) weight() int {
	if e.IsTombstone() {
		return len(e.Removes)
	}
	return 1
}

// SignEntry normalizes e (its time, the order of Removes), checks its form
// and signs it with the writer's key. Whether a namespace accepts it is for
// ingestion to say.
func SignEntry(e Entry, writer PrivateKey) (*Record, error) {
	e.Time = canonicalTime(e.Time)
	e.Removes = slices.Clone(e.Removes)
	slices.SortFunc(e.Removes, Hash.Compare)
	e.Removes = slices.Compact(e.Removes)
	if len(e.Removes) == 0 {
		e.Removes = nil
	}
	if len(e.Value) == 0 {
		e.Value = nil
	}
	if writer.Public() != e.Writer {
		return nil, fmt.Errorf("signing entry: key %s is not the writer key %s", writer.Public().Short(), e.Writer.Short())
	}
	return sign(&Record{kind: KindEntry, body: &e}, writer)
}

// validateEntryKey checks an entry's key.
func validateEntryKey(k string) error {
	if k == "" || len(k) > MaxEntryKey {
		return malformed("entry key of %d bytes, want 1–%d", len(k), MaxEntryKey)
	}
	if !utf8.ValidString(k) {
		return malformed("entry key %q is not UTF-8", k)
	}
	for _, r := range k {
		if unicode.IsControl(r) {
			return malformed("entry key %q has a control character", k)
		}
	}
	return nil
}

func (e *Entry) validate() error {
	if e.Network.IsZero() || e.Writer.IsZero() {
		return malformed("entry: zero network or writer key")
	}
	if err := ValidateNamespaceName(e.Namespace); err != nil {
		return fmt.Errorf("entry: %w", err)
	}
	if err := validateEntryKey(e.Key); err != nil {
		return fmt.Errorf("entry: %w", err)
	}
	if e.Time.UnixNano() <= 0 {
		return malformed("entry: time %v is not after 1970", e.Time)
	}
	if _, ok := policyNames[e.Policy]; !ok {
		return malformed("entry: unknown policy %d", e.Policy)
	}
	if e.Op != OpPut && e.Op != OpDelete {
		return malformed("entry: unknown op %d", e.Op)
	}
	if e.Policy != PolicyLog && e.Seq != 0 {
		return malformed("entry: a sequence number outside a log")
	}
	if len(e.Value) > MaxValueLimit {
		return malformed("entry: value of %d bytes, at most %d", len(e.Value), MaxValueLimit)
	}
	if e.Op == OpDelete && len(e.Value) > 0 {
		return malformed("entry: a delete with a value")
	}
	if !e.IsTombstone() {
		if !e.Target.IsZero() || len(e.Removes) > 0 {
			return malformed("entry: a target or removed adds outside an orset delete")
		}
		return nil
	}
	if e.Target.IsZero() {
		return malformed("entry: orset delete without a target")
	}
	if len(e.Removes) == 0 || len(e.Removes) > maxRemoves {
		return malformed("entry: orset delete removes %d adds, want 1–%d", len(e.Removes), maxRemoves)
	}
	for i := 1; i < len(e.Removes); i++ {
		if e.Removes[i-1].Compare(e.Removes[i]) >= 0 {
			return malformed("entry: removed adds not sorted and unique")
		}
	}
	return nil
}

func (e *Entry) encode(enc *encoder) {
	enc.key(e.Network)
	enc.str(e.Namespace)
	enc.key(e.Writer)
	enc.str(e.Key)
	enc.time(e.Time)
	enc.u8(uint8(e.Policy))
	enc.u8(uint8(e.Op))
	if e.Policy == PolicyLog {
		enc.i64(int64(e.Seq))
	}
	enc.bytes(e.Value)
	if e.IsTombstone() {
		enc.key(e.Target)
		enc.uvarint(uint64(len(e.Removes)))
		for _, h := range e.Removes {
			enc.hash(h)
		}
	}
}

func decodeEntry(d *decoder) *Entry {
	e := &Entry{}
	e.Network = d.key("network")
	e.Namespace = d.str(maxNamespaceName, "namespace")
	e.Writer = d.key("writer")
	e.Key = d.str(MaxEntryKey, "key")
	e.Time = d.time("time")
	e.Policy = Policy(d.u8("policy"))
	e.Op = Op(d.u8("op"))
	if e.Policy == PolicyLog {
		e.Seq = uint64(d.i64("seq"))
	}
	if v := d.ownBytes(MaxValueLimit, "value"); len(v) > 0 {
		e.Value = v
	}
	if d.err == nil && e.IsTombstone() {
		e.Target = d.key("target")
		n := d.count(maxRemoves, "removed adds")
		if n*len(Hash{}) > len(d.b) {
			d.fail("removed adds: %d hashes do not fit in %d bytes", n, len(d.b))
			return e
		}
		if n > 0 {
			e.Removes = make([]Hash, n)
			for i := range e.Removes {
				e.Removes[i] = d.hash("removed add")
			}
		}
	}
	return e
}

package crdt

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// A key twice in one object is refused, at every level: encoding/json
// would keep the last one without a word (a second "network" key was
// once read as the only one).
func TestDataJSONRefusesDuplicateKeys(t *testing.T) {
	admin := testKey("admin")
	id := admin.Public().String()
	other := testKey("other").Public().String()
	for name, doc := range map[string]string{
		"format twice":  `{"format":"data-mesher/v1","format":"data-mesher/v1","networks":[]}`,
		"network twice": `{"format":"data-mesher/v1","networks":[{"network":"` + id + `","network":"` + other + `","hosts":[]}]}`,
	} {
		_, err := DecodeDataJSON([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "appears twice") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Inside a record: that record is refused, the others stand.
	doc := `{"format":"data-mesher/v1","networks":[{"network":"` + id + `","hosts":[
		{"node":"` + id + `","node":"` + other + `","heartbeat":"2026-01-01T00:00:00Z","signature":"AA=="},
		{"node":"` + id + `","heartbeat":"2026-01-01T00:00:00Z"}]}]}`
	f, err := DecodeDataJSON([]byte(doc))
	if err != nil || len(f.Networks) != 1 || len(f.Networks[0].Errors) != 2 || !strings.Contains(f.Networks[0].Errors[0].Error(), `"node" appears twice`) {
		t.Fatalf("a record with a key twice: %+v %v", f, err)
	}
}

// endless produces a data.json of one network whose hosts never end: each
// host record is a bogus copy of one template; or, with a huge string, a
// first host whose node is a string that never ends.
type endless struct {
	head, item string
	hugeString bool
	buf        []byte
	items      int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.buf) == 0 {
			switch {
			case e.head != "":
				e.buf, e.head = []byte(e.head), ""
			case e.hugeString:
				e.buf = []byte(strings.Repeat("A", 64<<10))
			default:
				sep := ","
				if e.items == 0 {
					sep = ""
				}
				e.items++
				e.buf = []byte(sep + e.item)
			}
		}
		k := copy(p[n:], e.buf)
		e.buf = e.buf[k:]
		n += k
	}
	return n, nil
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Whatever a data.json holds, reading it costs bounded memory: a string
// that never ends is refused once it passes the value limit, and a stream
// of bogus records that never ends is read record by record (here until
// the caller has seen 400,000 and stops), never held whole.
func TestDataJSONBoundedMemory(t *testing.T) {
	id := testKey("admin").Public().String()
	head := `{"format":"data-mesher/v1","networks":[{"network":"` + id + `","hosts":[`

	huge := &endless{head: head + `{"node":"`, hugeString: true}
	err := ReadDataJSON(huge, DataLimits{}, func(PublicKey, *Record, error) error { return nil })
	if !errors.Is(err, ErrDataTooLarge) {
		t.Fatalf("an endless string: %v", err)
	}

	runtime.GC()
	base := heapInUse()
	var peak uint64
	bogus := &endless{head: head, item: `{"node":"` + id + `","heartbeat":"2026-01-01T00:00:00Z","addresses":["fd00::1"],"signature":"` +
		strings.Repeat("A", 86) + `=="}`}
	seen := 0
	stop := errors.New("enough")
	err = ReadDataJSON(bogus, DataLimits{}, func(_ PublicKey, r *Record, err error) error {
		seen++
		if seen%20000 == 0 {
			peak = max(peak, heapInUse())
		}
		if seen == 400000 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 400000 {
		t.Fatalf("400,000 bogus records: %v after %d", err, seen)
	}
	grew := int64(peak) - int64(base)
	t.Logf("400,000 records read with the heap in use at most %.1f MiB above where it started", float64(grew)/(1<<20))
	if grew > 64<<20 {
		t.Fatalf("reading grew the heap by %d MiB", grew>>20)
	}
}

func ExampleReadDataJSON() {
	doc := `{"format": "data-mesher/v1", "networks": []}`
	err := ReadDataJSON(strings.NewReader(doc), DataLimits{}, func(PublicKey, *Record, error) error { return nil })
	fmt.Println(err)
	// Output: <nil>
}

var _ io.Reader = (*endless)(nil)

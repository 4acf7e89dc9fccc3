package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Reading a data.json as a stream. A data.json comes from anywhere (a
// peer, a static web server, a file an operator downloaded), so reading
// one must cost bounded memory whatever it holds: an endless stream, one
// enormous string, or hundreds of thousands of bogus records. The reader
// walks the document token by token, bounds every value it reads, refuses
// duplicate keys at every level (encoding/json would silently keep the
// last), and hands each record to the caller as soon as it is decoded, so
// the caller ingests in batches and keeps only what verifies.

// DataLimits bound what reading a data.json may cost; the zero value of a
// field means its default.
type DataLimits struct {
	// MaxValue bounds any one JSON value: a record, a key, a string
	// (default 4 MiB: a record is at most 2 MiB, 2.7 MiB in base64).
	MaxValue int64
	// MaxNetworks bounds the network objects (default 256).
	MaxNetworks int
}

func (l DataLimits) withDefaults() DataLimits {
	if l.MaxValue <= 0 {
		l.MaxValue = 4 << 20
	}
	if l.MaxNetworks <= 0 {
		l.MaxNetworks = 256
	}
	return l
}

// ErrDataTooLarge is wrapped when one value of a data.json exceeds
// DataLimits.MaxValue; check with errors.Is.
var ErrDataTooLarge = errors.New("a value in data.json is too large")

// boundedReader fails once more than max bytes were read since the last
// reset: the decoder, which buffers a whole value, can never hold more
// than one bounded value (and a little read-ahead).
type boundedReader struct {
	r      io.Reader
	n, max int64
	// ioErr is the reader's own failure (not the end of the input).
	ioErr error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n >= b.max {
		return 0, fmt.Errorf("%w (more than %d bytes)", ErrDataTooLarge, b.max)
	}
	if int64(len(p)) > b.max-b.n {
		p = p[:b.max-b.n]
	}
	k, err := b.r.Read(p)
	b.n += int64(k)
	if err != nil && err != io.EOF {
		b.ioErr = err
	}
	return k, err
}

// dataReader walks a data.json.
type dataReader struct {
	dec  *json.Decoder
	br   *boundedReader
	lim  DataLimits
	each func(network PublicKey, rec *Record, err error) error
}

// ReadDataJSON reads a data.json from r and calls each for every record in
// it, in file order: rec with err nil for a record that decodes (form and
// canonical encoding are checked, signatures are not: ingestion does
// that), or err for one that does not (it is skipped; a damaged copy still
// yields every undamaged record). A syntax error, a value over the limits,
// a duplicate key, a bad network key or another format stops the reading
// with an error; what each received before that stands. An error returned
// by each stops it too, and is returned.
func ReadDataJSON(r io.Reader, lim DataLimits, each func(network PublicKey, rec *Record, err error) error) error {
	lim = lim.withDefaults()
	br := &boundedReader{r: r, max: lim.MaxValue}
	d := &dataReader{dec: json.NewDecoder(br), br: br, lim: lim, each: each}
	if err := d.document(); err != nil {
		var stop stopError
		switch {
		case errors.As(err, &stop):
			return stop.err
		case br.ioErr != nil:
			return fmt.Errorf("reading data.json: %w", br.ioErr)
		}
		return fmt.Errorf("%w: data.json: %w", ErrMalformed, err)
	}
	return nil
}

// stopError carries an error of the caller's through the walk.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

func (d *dataReader) token() (json.Token, error) {
	d.br.n = 0
	return d.dec.Token()
}

func (d *dataReader) delim(want json.Delim) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if got, ok := t.(json.Delim); !ok || got != want {
		return fmt.Errorf("expected %q, found %v", want, t)
	}
	return nil
}

// key reads an object's next key and refuses one it has seen.
func (d *dataReader) key(seen map[string]bool, where string) (string, error) {
	t, err := d.token()
	if err != nil {
		return "", err
	}
	k, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("expected a key in %s, found %v", where, t)
	}
	if seen[k] {
		return "", fmt.Errorf("the key %q appears twice in %s", k, where)
	}
	seen[k] = true
	return k, nil
}

// raw reads one whole value, bounded.
func (d *dataReader) raw() (json.RawMessage, error) {
	d.br.n = 0
	var m json.RawMessage
	err := d.dec.Decode(&m)
	return m, err
}

func (d *dataReader) document() error {
	if err := d.delim('{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	for d.dec.More() {
		k, err := d.key(seen, "the file")
		if err != nil {
			return err
		}
		switch k {
		case "format":
			var f string
			d.br.n = 0
			if err := d.dec.Decode(&f); err != nil {
				return fmt.Errorf("format: %v", err)
			}
			if f != DataFormat {
				return fmt.Errorf("format %q, this node reads %q", f, DataFormat)
			}
		case "networks":
			if !seen["format"] {
				return errors.New("the format must come before the networks")
			}
			if err := d.networks(); err != nil {
				return err
			}
		default:
			if _, err := d.raw(); err != nil { // unknown: skipped, bounded
				return err
			}
		}
	}
	if !seen["format"] {
		return fmt.Errorf("no format (this node reads %q)", DataFormat)
	}
	return d.delim('}')
}

func (d *dataReader) networks() error {
	if err := d.delim('['); err != nil {
		return err
	}
	for count := 0; d.dec.More(); count++ {
		if count >= d.lim.MaxNetworks {
			return fmt.Errorf("more than %d networks", d.lim.MaxNetworks)
		}
		if err := d.network(); err != nil {
			return err
		}
	}
	return d.delim(']')
}

var recordKinds = map[string]func(PublicKey, json.RawMessage) (*Record, error){
	"settings":     settingsFromJSON,
	"hosts":        hostFromJSON,
	"claims":       claimFromJSON,
	"entries":      entryFromJSON,
	"attestations": attestationFromJSON,
}

func (d *dataReader) network() error {
	if err := d.delim('{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	var id PublicKey
	for d.dec.More() {
		k, err := d.key(seen, "a network")
		if err != nil {
			return err
		}
		decode, isRecords := recordKinds[k]
		switch {
		case k == "network":
			var s string
			d.br.n = 0
			if err := d.dec.Decode(&s); err != nil {
				return fmt.Errorf("network: %v", err)
			}
			if id, err = ParsePublicKey(s); err != nil {
				return fmt.Errorf("network: %v", err)
			}
		case isRecords && !seen["network"]:
			return fmt.Errorf("a network's %q comes before its \"network\" key", k)
		case k == "settings":
			raw, err := d.raw()
			if err != nil {
				return err
			}
			if len(raw) > 0 && string(raw) != "null" {
				if err := d.record(id, "settings", raw, decode); err != nil {
					return err
				}
			}
		case isRecords:
			if err := d.records(id, k, decode); err != nil {
				return err
			}
		default:
			if _, err := d.raw(); err != nil {
				return err
			}
		}
	}
	return d.delim('}')
}

// records reads an array of records (or null).
func (d *dataReader) records(id PublicKey, what string, decode func(PublicKey, json.RawMessage) (*Record, error)) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if delim, ok := t.(json.Delim); !ok || delim != '[' {
		return fmt.Errorf("%s: expected a list, found %v", what, t)
	}
	for i := 0; d.dec.More(); i++ {
		raw, err := d.raw()
		if err != nil {
			return fmt.Errorf("%s %d: %w", what, i, err)
		}
		if err := d.record(id, fmt.Sprintf("%s %d", what, i), raw, decode); err != nil {
			return err
		}
	}
	return d.delim(']')
}

func (d *dataReader) record(id PublicKey, what string, raw json.RawMessage, decode func(PublicKey, json.RawMessage) (*Record, error)) error {
	var rec *Record
	err := noDuplicateKeys(raw)
	if err == nil {
		rec, err = decode(id, raw)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", what, err)
		if !errors.Is(err, ErrMalformed) {
			err = fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if err := d.each(id, rec, err); err != nil {
		return stopError{err}
	}
	return nil
}

// noDuplicateKeys refuses a JSON value in which an object has a key twice
// (encoding/json would keep the last one without a word).
func noDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // an object's next token is a key
	}
	var stack []*frame
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if k, ok := t.(string); ok {
				if top.keys[k] {
					return fmt.Errorf("the key %q appears twice", k)
				}
				top.keys[k] = true
				top.expect = false
				continue
			}
		}
		switch t {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object expects a key again.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].expect = true
		}
	}
}

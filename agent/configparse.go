package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Reading config.json: every mistake named by its line, column and field,
// an unknown key with the nearest known one.

func parseConfig(b []byte, file string) (*Config, error) {
	p := &configParser{src: b, file: file, origin: map[string]string{}}
	if err := p.syntax(); err != nil {
		return nil, err
	}
	p.dec = json.NewDecoder(bytes.NewReader(b))
	p.dec.UseNumber()
	p.value(reflect.TypeFor[Config](), "", 0)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	c := &Config{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil { // the walk above should have caught it
		return nil, &ConfigError{Where: p.place(0), Msg: err.Error()}
	}
	c.origin = p.origin
	return c, nil
}

// configParser walks a configuration's JSON against the Config type before
// it is decoded, so that each problem is reported with its line, the
// field's path and, for an unknown key, the closest known one.
type configParser struct {
	src    []byte
	file   string
	dec    *json.Decoder
	errs   []error
	origin map[string]string // field path → "file:line"
}

// place is "file:line" (or "line N") of byte offset off.
func (p *configParser) place(off int64) string {
	line := 1 + bytes.Count(p.src[:min(int(off), len(p.src))], []byte("\n"))
	if p.file == "" {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("%s:%d", p.file, line)
}

func (p *configParser) fail(off int64, field, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{Where: p.place(off), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// syntax reports a file that is not JSON, saying where and, for the usual
// slips, what is missing.
func (p *configParser) syntax() error {
	if len(bytes.TrimSpace(p.src)) == 0 {
		return &ConfigError{Where: p.place(0), Msg: "the file is empty; it needs at least {\"networks\": {\"<name>\": {\"pubkey\": \"ssh-ed25519 AAAA…\"}}}"}
	}
	var v any
	err := json.Unmarshal(p.src, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		if _, ok := v.(map[string]any); !ok && err == nil {
			return &ConfigError{Where: p.place(0), Msg: "the configuration must be a JSON object: {\"interface\": \"wg0\", \"networks\": {…}}"}
		}
		return nil
	}
	off := se.Offset
	msg := se.Error()
	if strings.Contains(msg, "invalid character '") {
		off = max(0, off-1) // the offset is just past the bad character
	}
	col := int(off) - bytes.LastIndexByte(p.src[:min(int(off), len(p.src))], '\n')
	where := fmt.Sprintf("%s, column %d", p.place(off), col)
	return &ConfigError{Where: where, Msg: "not valid JSON: " + explainSyntax(msg)}
}

// explainSyntax says in a JSON author's words what encoding/json found.
func explainSyntax(msg string) string {
	ch := ""
	if i := strings.Index(msg, "'"); i >= 0 {
		if j := strings.Index(msg[i+1:], "'"); j >= 0 {
			ch = msg[i+1 : i+1+j]
		}
	}
	switch {
	case strings.Contains(msg, "unexpected end of JSON input"):
		return "the file ends too early: a closing } or ] (or a quote) is missing"
	case strings.Contains(msg, "looking for beginning of object key string"):
		if ch == "}" {
			return "a comma before } has nothing after it (JSON allows no trailing comma)"
		}
		return fmt.Sprintf("found %s where a key in double quotes should be (JSON has no comments and no unquoted keys)", ch)
	case strings.Contains(msg, "after object key:value pair"):
		return fmt.Sprintf("found %s after a value: a comma (or a closing }) is missing before it", ch)
	case strings.Contains(msg, "after object key"):
		return fmt.Sprintf("found %s after a key: a colon is missing", ch)
	case strings.Contains(msg, "after array element"):
		return fmt.Sprintf("found %s in a list: a comma (or a closing ]) is missing before it", ch)
	case strings.Contains(msg, "looking for beginning of value"):
		if ch == "]" {
			return "a comma before ] has nothing after it (JSON allows no trailing comma)"
		}
		return fmt.Sprintf("found %s where a value should be: text in double quotes, a number, true, false, a list […] or an object {…}", ch)
	case strings.Contains(msg, "after top-level value"):
		return fmt.Sprintf("found %s after the end of the configuration's object", ch)
	case strings.Contains(msg, "in string literal"):
		return "a control character (a line break or tab) inside text in quotes; write it as \\n or \\t"
	}
	return msg
}

var durationType = reflect.TypeFor[Duration]()

// value walks one JSON value that should decode into t; path is its field.
func (p *configParser) value(t reflect.Type, path string, keyOff int64) {
	tok, _ := p.dec.Token() // the file is valid JSON: no errors here
	if tok == nil {
		return // null leaves the default, as encoding/json does
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	mismatch := func(want string) {
		p.fail(keyOff, path, "is %s; want %s", describe(tok), want)
		p.skip(tok)
	}
	switch {
	case t == durationType:
		switch v := tok.(type) {
		case string:
			if _, err := time.ParseDuration(v); err != nil {
				p.fail(keyOff, path, "%q is not a duration like \"90s\", \"5m\" or \"24h\"", v)
			}
		case json.Number:
		default:
			mismatch(`a duration like "90s" or "5m"`)
		}
	case t.Kind() == reflect.Struct:
		if tok != json.Delim('{') {
			mismatch("an object {…}")
			return
		}
		fields := structFields(t)
		seen := map[string]int64{}
		for p.dec.More() {
			kt, _ := p.dec.Token()
			key := kt.(string)
			off := p.dec.InputOffset()
			sub := key
			if path != "" {
				sub = path + "." + key
			}
			if first, dup := seen[key]; dup {
				p.fail(off, sub, "appears twice (first at %s); only one can count", p.place(first))
			}
			seen[key] = off
			f, ok := fields[key]
			if !ok {
				p.fail(off, sub, "%s", unknownKey(key, path, fields))
				p.skipValue()
				continue
			}
			p.origin[sub] = p.place(off)
			p.value(f, sub, off)
		}
		p.dec.Token() // }
	case t.Kind() == reflect.Map:
		if tok != json.Delim('{') {
			mismatch("an object {…}, e.g. {\"clan\": {\"pubkey\": \"ssh-ed25519 AAAA…\"}}")
			return
		}
		for p.dec.More() {
			kt, _ := p.dec.Token()
			off := p.dec.InputOffset()
			sub := fmt.Sprintf("%s.%q", path, kt.(string))
			p.origin[sub] = p.place(off)
			p.value(t.Elem(), sub, off)
		}
		p.dec.Token()
	case t.Kind() == reflect.Slice:
		if tok != json.Delim('[') {
			if s, ok := tok.(string); ok {
				mismatch(fmt.Sprintf("a list, e.g. [%q]", s))
			} else {
				mismatch("a list […]")
			}
			return
		}
		for i := 0; p.dec.More(); i++ {
			p.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i), p.dec.InputOffset())
		}
		p.dec.Token()
	case t.Kind() == reflect.String:
		if _, ok := tok.(string); !ok {
			mismatch("text in double quotes")
		}
	case t.Kind() == reflect.Bool:
		if _, ok := tok.(bool); !ok {
			mismatch("true or false")
		}
	case t.Kind() == reflect.Int:
		n, ok := tok.(json.Number)
		if !ok {
			mismatch("a whole number, without quotes")
		} else if _, err := n.Int64(); err != nil {
			p.fail(keyOff, path, "%s is not a whole number", n)
		}
	case t.Kind() == reflect.Float64:
		if _, ok := tok.(json.Number); !ok {
			mismatch("a number such as 1 or 1.5, without quotes")
		}
	default:
		p.skip(tok)
	}
}

// skipValue consumes the next value whole.
func (p *configParser) skipValue() {
	tok, _ := p.dec.Token()
	p.skip(tok)
}

// skip consumes the rest of a value whose first token was tok.
func (p *configParser) skip(tok json.Token) {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return
	}
	for depth := 1; depth > 0; {
		t, err := p.dec.Token()
		if err != nil {
			return
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// describe names what a JSON token is, for "is X; want Y".
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case string:
		if len(v) > 40 {
			v = v[:37] + "…"
		}
		return fmt.Sprintf("the text %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return fmt.Sprintf("%v", v)
	case json.Delim:
		if v == '{' {
			return "an object {…}"
		}
		return "a list […]"
	}
	return fmt.Sprint(tok)
}

// structFields maps the JSON keys of a struct type to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f.Type
	}
	return out
}

// unknownKey says that key is not known under path, and what was meant:
// the same key in the file's spelling (bootstrapPeers, the NixOS option's
// name, is bootstrap_peers), the closest known key, or where the key
// belongs if it is known elsewhere.
func unknownKey(key, path string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	slices.Sort(known)
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	for _, k := range known {
		if norm(k) == norm(key) {
			if strings.ToLower(key) != key && strings.Contains(k, "_") {
				return fmt.Sprintf("unknown key; did you mean %q? (this file spells keys in snake_case: the NixOS option %s is %s here)", k, key, k)
			}
			return fmt.Sprintf("unknown key; did you mean %q?", k)
		}
	}
	// Close enough to be a slip: one edit in a short key, a third of a
	// long one.
	best, bestD := "", max(1, len(norm(key))/3)+1
	for _, k := range known {
		if d := editDistance(norm(key), norm(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", best)
	}
	if elsewhere := keyHome(key); elsewhere != "" && elsewhere != path {
		return fmt.Sprintf("unknown key here; it belongs in %s", elsewhere)
	}
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	return fmt.Sprintf("unknown key; the keys %s are %s", where, strings.Join(known, ", "))
}

// keyHome finds where key is a field of the configuration
// ("networks.<name>" for pubkey), "" if nowhere.
func keyHome(key string) string {
	var find func(t reflect.Type, path string, depth int) string
	find = func(t reflect.Type, path string, depth int) string {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if depth > 4 {
			return ""
		}
		switch t.Kind() {
		case reflect.Map:
			return find(t.Elem(), path+".<name>", depth+1)
		case reflect.Struct:
			if t == durationType {
				return ""
			}
			fields := structFields(t)
			if _, ok := fields[key]; ok {
				return path
			}
			names := slices.Sorted(maps.Keys(fields))
			for _, n := range names {
				sub := n
				if path != "" {
					sub = path + "." + n
				}
				if h := find(fields[n], sub, depth+1); h != "" {
					return h
				}
			}
		}
		return ""
	}
	return find(reflect.TypeFor[Config](), "", 0)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours ("netwroks") cost 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// The files view: every namespace of every joined network materialised as
// files, so that a consumer needs no client at all (a shell script reads a
// file; a systemd path unit reacts to it):
//
//	<data_dir>/<network>/<namespace>/<key>           registers (lww, fww)
//	<data_dir>/<network>/<namespace>/<owner>/<key>   in owner namespaces
//
// <network> is the network's label in the configuration and <owner> the
// writer's key in URL-safe base64 without padding. A register's file holds
// its value, as it is: the latest write of an lww key, the holder's of an
// fww key; a deleted or unheld key has no file. A set's or a log's file
// holds one JSON object per element or entry ({"writer", "time", "value"
// or "value_base64", "seq" for logs}), in the order the policy reads them.
// Names are escaped: every byte but letters, digits, '-', '_' and '.'
// (and a leading '.') becomes %XX, so "ssh/ed25519" is "ssh%2Fed25519".
//
// Files are replaced atomically (rename) and only when their content
// changes; directories are 0750 and files 0640, so the agent's group (a
// group the admin can give to other services) reads them.
type filesView struct {
	dir   string
	store *mesh.Store
	conf  func() *live
	log   *slog.Logger

	// written is what the view holds on disk: path → hash of the content.
	written map[string][sha256.Size]byte
	// versions are the namespaces as last rendered.
	versions map[string]crdt.NamespaceVersion
	until    map[string]time.Time
}

// escapeName makes a key, namespace or label one safe path element.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || (c == '.' && i > 0)
		if safe {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// open reads what an earlier run left on disk, so that only what changed
// is written again and what is gone is removed.
func (f *filesView) open() {
	f.written = map[string][sha256.Size]byte{}
	f.versions = map[string]crdt.NamespaceVersion{}
	f.until = map[string]time.Time{}
	_ = filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			f.written[path] = sha256.Sum256(b)
		}
		return nil
	})
}

// viewLine is one element or entry of a set's or log's file.
type viewLine struct {
	Writer      string    `json:"writer"`
	Time        time.Time `json:"time"`
	Value       *string   `json:"value,omitempty"`
	ValueBase64 []byte    `json:"value_base64,omitempty"`
	Seq         *uint64   `json:"seq,omitempty"`
}

// render is the files of one namespace: path → content.
func render(dir string, v *crdt.NamespaceItems, out map[string][]byte) {
	ns := v.Namespace
	for _, k := range v.Keys {
		path := dir
		if ns.Writers == crdt.WritersOwner {
			path = filepath.Join(path, base64.RawURLEncoding.EncodeToString(k.Owner[:]))
		}
		path = filepath.Join(path, escapeName(k.Key))
		switch ns.Policy {
		case crdt.PolicyLWW, crdt.PolicyFWW:
			if it, ok := v.Current(k.Owner, k.Key); ok {
				out[path] = it.Value
			}
		default:
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			for _, it := range k.Items {
				l := viewLine{Writer: it.Writer.AuthorizedKey(), Time: it.Time}
				if utf8.Valid(it.Value) {
					s := string(it.Value)
					l.Value = &s
				} else {
					l.ValueBase64 = it.Value
				}
				if ns.Policy == crdt.PolicyLog {
					seq := it.Seq
					l.Seq = &seq
				}
				_ = enc.Encode(l)
			}
			if b.Len() > 0 {
				out[path] = b.Bytes()
			}
		}
	}
}

// update writes what changed since the last update, and returns when the
// view would change by itself (zero: never).
func (f *filesView) update(now time.Time) time.Time {
	if f.written == nil {
		f.open()
	}
	conf := f.conf()
	want := map[string][]byte{} // the namespaces that changed, rendered
	stale := map[string]bool{}  // their directories: files there not in want go
	keep := map[string]bool{}   // namespace directories still declared
	var next time.Time
	f.store.Read(func(st *crdt.State) {
		for _, n := range conf.Nets {
			for _, ns := range st.Namespaces(n.ID) {
				dir := filepath.Join(f.dir, escapeName(n.Label), escapeName(ns.Name))
				keep[dir] = true
				v := st.NamespaceVersion(n.ID, ns.Name)
				u, seen := f.until[dir]
				if seen && v == f.versions[dir] && (u.IsZero() || now.Before(u)) {
					if !u.IsZero() && (next.IsZero() || u.Before(next)) {
						next = u
					}
					continue
				}
				items := st.Items(n.ID, ns.Name, now)
				if items == nil {
					continue
				}
				f.versions[dir], f.until[dir] = v, items.ValidUntil
				if u := items.ValidUntil; !u.IsZero() && (next.IsZero() || u.Before(next)) {
					next = u
				}
				stale[dir] = true
				render(dir, items, want)
			}
		}
	})
	for path, data := range want {
		sum := sha256.Sum256(data)
		if old, ok := f.written[path]; ok && old == sum {
			continue
		}
		err := mkdirAllMode(f.dir, filepath.Dir(path), 0o750)
		if err == nil {
			err = WriteFileAtomic(path, data, 0o640)
		}
		if err != nil {
			// Not recorded as written: the next update tries again.
			f.log.Warn("writing the files view", "path", path, "err", err)
			f.until[nsDir(f.dir, path)] = time.Now().Add(5 * time.Second)
			continue
		}
		f.written[path] = sum
	}
	for path := range f.written {
		if _, ok := want[path]; ok {
			continue
		}
		if stale[nsDir(f.dir, path)] || !keep[nsDir(f.dir, path)] {
			if err := os.Remove(path); err == nil || os.IsNotExist(err) {
				delete(f.written, path)
				removeEmptyDirs(filepath.Dir(path), f.dir)
			}
		}
	}
	for dir := range f.versions {
		if !keep[dir] {
			delete(f.versions, dir)
			delete(f.until, dir)
		}
	}
	return next
}

// nsDir is the namespace directory a file of the view lies in.
func nsDir(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return ""
	}
	parts := strings.SplitN(rel, string(filepath.Separator), 3)
	if len(parts) < 3 {
		return ""
	}
	return filepath.Join(root, parts[0], parts[1])
}

// removeEmptyDirs removes dir and its parents up to root while empty.
func removeEmptyDirs(dir, root string) {
	for dir != root && strings.HasPrefix(dir, root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// mkdirAllMode makes dir and its parents up to root with mode, whatever the
// umask (a unit's UMask=0077 would make them 0700, shutting the group out).
func mkdirAllMode(root, dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := os.Chmod(d, mode); err != nil {
			return err
		}
		if d == root || len(d) <= len(root) || d == filepath.Dir(d) {
			return nil
		}
	}
}

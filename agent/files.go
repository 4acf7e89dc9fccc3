package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/data-mesher/data-mesher/crdt"
)

// WriteFileAtomic replaces path with data so that a crash at any moment
// leaves either the old file or the new one, complete: write a temporary
// file in the same directory, fsync it, rename it over path, fsync the
// directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteFileAtomicFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAtomicFunc is WriteFileAtomic with the content written by write,
// as it goes, so a large file is never held whole in memory.
func WriteFileAtomicFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// ErrKeyPermissions is wrapped when a key file can be read by others.
var ErrKeyPermissions = errors.New("key file is readable by others")

// LoadKey reads the node key. A key file that group or others can read or
// write is refused, with the command that fixes it.
func LoadKey(path string) (crdt.PrivateKey, error) {
	if err := CheckKeyFile(path); err != nil {
		return crdt.PrivateKey{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return crdt.PrivateKey{}, fmt.Errorf("reading node key: %w", err)
	}
	k, err := crdt.ParsePrivateKey(b)
	if err != nil {
		return crdt.PrivateKey{}, fmt.Errorf("node key %s: %w", path, err)
	}
	return k, nil
}

// CheckKeyFile checks that a key file exists and only its owner (or root)
// can read it.
func CheckKeyFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node key %s does not exist: create it with `dm-agent keygen --out %s`", path, path)
	}
	if err != nil {
		return fmt.Errorf("node key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("node key %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; fix it with `chmod 600 %s`", ErrKeyPermissions, path, fi.Mode().Perm(), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 && os.Geteuid() != 0 {
		return fmt.Errorf("%w: %s belongs to uid %d, not to this user (uid %d)", ErrKeyPermissions, path, st.Uid, os.Geteuid())
	}
	return nil
}

// WriteKey creates a new key file (mode 0600) and its .pub beside it. It
// refuses to overwrite an existing key.
func WriteKey(path, comment string) (crdt.PrivateKey, error) {
	if _, err := os.Stat(path); err == nil {
		return crdt.PrivateKey{}, fmt.Errorf("%s exists; not overwriting a key (move it away first)", path)
	}
	k, err := crdt.GenerateKey(rand.Reader)
	if err != nil {
		return k, err
	}
	pem, err := k.MarshalOpenSSH(comment)
	if err != nil {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return k, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := WriteFileAtomic(path, pem, 0o600); err != nil {
		return k, err
	}
	pub := k.Public().AuthorizedKey()
	if comment != "" {
		pub += " " + comment
	}
	if err := WriteFileAtomic(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return k, err
	}
	return k, nil
}

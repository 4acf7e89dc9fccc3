package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// knownHosts writes an OpenSSH known_hosts file from the ssh.host-keys
// namespace: for every name this node resolves (so only for hosts that
// hold it, are live, and passed the reachability challenge here), the
// keys that host published, under its fully qualified name and its tunnel
// addresses:
//
//	mors.clan,fd00::1 ssh-ed25519 AAAA…
//
// ssh then connects to mesh names with StrictHostKeyChecking=yes and no
// prompt (the NixOS module adds the file to programs.ssh.knownHostsFiles),
// and refuses a host whose key is not the one it published. The file is
// replaced atomically when it changes, readable by everyone (it holds
// public keys, and every user's ssh reads it).
type knownHosts struct {
	path  string
	store *mesh.Store
	conf  func() *live
	log   *slog.Logger
	last  []byte
}

// sshKeyLine returns "TYPE BASE64" of a published public key line, or
// false if it is not one (a comment, options, or garbage are dropped).
func sshKeyLine(value []byte) (string, bool) {
	f := strings.Fields(string(value))
	if len(f) < 2 || len(f[0]) > 64 || !(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-sha2-") || strings.HasPrefix(f[0], "sk-")) {
		return "", false
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	// The key blob starts with its own type name, length first.
	if err != nil || len(blob) < 4+len(f[0]) || int(binary.BigEndian.Uint32(blob)) != len(f[0]) || string(blob[4:4+len(f[0])]) != f[0] {
		return "", false
	}
	return f[0] + " " + f[1], true
}

// update rewrites the file from the view v if it changed, and returns when
// it would change by itself (a key expires; zero: never) or, after a write
// failed, when to try again.
func (k *knownHosts) update(v *crdt.ResolvedView, now time.Time) time.Time {
	var until time.Time
	conf := k.conf()
	var lines []string
	k.store.Read(func(st *crdt.State) {
		for _, n := range conf.Nets {
			decl := st.Namespace(n.ID, crdt.NamespaceSSHKeys)
			if decl == nil || decl.Writers != crdt.WritersOwner || decl.Policy != crdt.PolicyLWW {
				continue
			}
			items := st.Items(n.ID, crdt.NamespaceSSHKeys, now)
			until = soonest(until, items.ValidUntil)
			keys := map[crdt.PublicKey][]string{}
			for _, key := range items.Keys {
				if it, ok := items.Current(key.Owner, key.Key); ok {
					if line, ok := sshKeyLine(it.Value); ok {
						keys[key.Owner] = append(keys[key.Owner], line)
					}
				}
			}
			for fqdn, name := range v.Names {
				if name.Network != n.ID || name.Node.IsZero() || len(name.Addrs) == 0 {
					continue
				}
				hosts := []string{fqdn}
				for _, a := range name.Addrs {
					hosts = append(hosts, a.String())
				}
				for _, line := range keys[name.Node] {
					lines = append(lines, strings.Join(hosts, ",")+" "+line)
				}
			}
		}
	})
	slices.Sort(lines)
	var b bytes.Buffer
	b.WriteString("# Written by dm-agent from the mesh's ssh.host-keys namespace: the hosts this node\n# resolves and has seen answer at their addresses. Replaced as they change.\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	if bytes.Equal(b.Bytes(), k.last) {
		return until
	}
	if err := WriteFileAtomic(k.path, b.Bytes(), 0o644); err != nil {
		k.log.Warn("writing known_hosts", "path", k.path, "err", err)
		return soonest(until, time.Now().Add(5*time.Second))
	}
	k.last = b.Bytes()
	return until
}

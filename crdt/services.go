package crdt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The well-known namespaces: the first services built on the database.
// Each takes effect when the network's settings declare it (with the
// policy named here; a declaration under another policy is ignored), and
// needs nothing special from the namespace layer: the view reads their
// items like any consumer.
const (
	// NamespaceRecords holds the admin's DNS records, one entry per name
	// and type, so that two admins editing different names at once both
	// keep their edit. Writers admin (or keys), policy lww. Key:
	// "NAME TYPE" (NAME relative to the domain, "@" for the apex; TYPE one
	// of A, AAAA, CNAME, SRV, TXT). Value: the records of that name and
	// type, one a line, each "DATA" with an optional trailing "ttl=SECONDS".
	// An entry (even a delete) replaces the settings' extra records of the
	// same name and type.
	NamespaceRecords = "dns.records"
	// NamespaceAliases holds the admin's aliases: key the alias (relative),
	// value its target (relative, or absolute with a trailing dot), served
	// as a CNAME. Writers admin (or keys), policy lww.
	NamespaceAliases = "dns.aliases"
	// NamespaceServices holds the services nodes publish: key
	// "_SERVICE._PROTO" (PROTO tcp or udp), value "PORT" or
	// "PRIORITY WEIGHT PORT"; served as SRV under each name the node holds
	// (_ssh._tcp.mors.clan → 0 0 22 mors.clan.), while the node's host is
	// live and passes the reachability challenge. Writers owner, policy
	// lww.
	NamespaceServices = "dns.services"
	// NamespaceSSHKeys holds each node's SSH host public keys: key the key
	// type (ssh-ed25519…), value the public key line as sshd writes it.
	// The agent writes known_hosts from it for reachable hosts. Writers
	// owner, policy lww.
	NamespaceSSHKeys = "ssh.host-keys"
)

// registers reads a declared lww namespace's current values, or nil if
// the namespace is not declared as lww.
func (s *State) registers(id PublicKey, name string, now time.Time) *NamespaceItems {
	decl := s.Namespace(id, name)
	if decl == nil || decl.Policy != PolicyLWW {
		return nil
	}
	return s.Items(id, name, now)
}

// adminRecords are the records of NamespaceRecords and NamespaceAliases,
// and the (name, type) pairs their keys cover (which the settings' extra
// records of the same name and type yield to). Malformed entries are
// skipped: a bad entry of the admin's costs only itself.
func (s *State) adminRecords(id PublicKey, now time.Time) ([]ExtraRecord, map[[2]string]bool) {
	var out []ExtraRecord
	covered := map[[2]string]bool{}
	if v := s.registers(id, NamespaceRecords, now); v != nil {
		for _, k := range v.Keys {
			name, typ, ok := strings.Cut(k.Key, " ")
			t, err := ParseRRType(typ)
			if !ok || err != nil {
				continue
			}
			covered[[2]string{name, t.String()}] = true
			it, ok := v.Current(k.Owner, k.Key)
			if !ok {
				continue // deleted: the name and type have no records
			}
			for _, line := range strings.Split(string(it.Value), "\n") {
				if x, err := ParseRecordData(name, t, line); err == nil {
					out = append(out, x)
				}
			}
		}
	}
	if v := s.registers(id, NamespaceAliases, now); v != nil {
		for _, k := range v.Keys {
			covered[[2]string{k.Key, TypeCNAME.String()}] = true
			if it, ok := v.Current(k.Owner, k.Key); ok {
				x := ExtraRecord{Name: k.Key, Type: TypeCNAME, Data: strings.TrimSpace(string(it.Value))}
				if x.validate() == nil {
					out = append(out, x)
				}
			}
		}
	}
	return out, covered
}

// ParseRecordData reads one record's data as NamespaceRecords holds it:
// "DATA" with an optional trailing "ttl=SECONDS". Blank lines are not
// records.
func ParseRecordData(name string, t RRType, line string) (ExtraRecord, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return ExtraRecord{}, fmt.Errorf("no data")
	}
	x := ExtraRecord{Name: name, Type: t}
	if last := f[len(f)-1]; strings.HasPrefix(last, "ttl=") {
		secs, err := strconv.Atoi(strings.TrimPrefix(last, "ttl="))
		if err != nil || secs < 0 {
			return x, fmt.Errorf("bad ttl %q", last)
		}
		x.TTL = time.Duration(secs) * time.Second
		f = f[:len(f)-1]
	}
	x.Data = strings.Join(f, " ")
	if t == TypeA || t == TypeAAAA || t == TypeCNAME || t == TypeSRV {
		x.Data = strings.ToLower(x.Data)
	}
	return x, x.validate()
}

// service is one SRV entry of NamespaceServices: its key ("_svc._proto")
// and its priority, weight and port.
type service struct {
	key    string
	fields []string
}

// ownedServices are the entries of NamespaceServices by owner, read once
// for a view (not once for each of its names): nil if the namespace is
// not declared.
func ownedServices(v *NamespaceItems) map[PublicKey][]service {
	if v == nil || v.Namespace.Writers != WritersOwner {
		return nil
	}
	out := map[PublicKey][]service{}
	for _, k := range v.Keys {
		svc, proto, ok := strings.Cut(k.Key, ".")
		if !ok || !strings.HasPrefix(svc, "_") || (proto != "_tcp" && proto != "_udp") {
			continue
		}
		it, ok := v.Current(k.Owner, k.Key)
		if !ok {
			continue
		}
		f := strings.Fields(string(it.Value))
		switch len(f) {
		case 1:
			f = []string{"0", "0", f[0]}
		case 3:
		default:
			continue
		}
		out[k.Owner] = append(out[k.Owner], service{k.Key, f})
	}
	return out
}

// serviceRecords are the SRV records of one node's services under its
// name rel.
func serviceRecords(list []service, rel string) []ExtraRecord {
	var out []ExtraRecord
	for _, s := range list {
		x := ExtraRecord{Name: s.key + "." + rel, Type: TypeSRV, Data: strings.Join(append(slices.Clip(s.fields), rel), " ")}
		if x.validate() == nil {
			out = append(out, x)
		}
	}
	return out
}

package admin

import (
	"fmt"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Builder builds a network's next signed settings: every change an admin
// makes goes through one, so nobody assembles a signed settings record by
// hand. Start from nothing (NewNetwork) or from the settings the mesh holds
// (FromSettings), Apply edits, then Sign.
type Builder struct {
	s crdt.Settings
	// prev is the Updated time of the settings this builds on (zero for a
	// new network): the result must be newer, or the mesh keeps the old.
	prev time.Time
}

// NewNetwork starts the first settings of a network whose admin key is
// admin: its domain and host TTL, the default DNS TTL, no attestor yet.
func NewNetwork(admin crdt.PublicKey, domain string, hostTTL time.Duration) (*Builder, error) {
	domain = strings.ToLower(domain)
	if err := crdt.ValidateDomain(domain); err != nil {
		return nil, fmt.Errorf("--domain: %w", err)
	}
	if hostTTL == 0 {
		hostTTL = crdt.DefaultHostTTL
	}
	return &Builder{s: crdt.Settings{Network: admin, Domain: domain, HostTTL: hostTTL, DNSTTL: crdt.DefaultDNSTTL}}, nil
}

// FromSettings starts from a network's current settings record.
func FromSettings(rec *crdt.Record) (*Builder, error) {
	if rec == nil || rec.Kind() != crdt.KindSettings {
		return nil, fmt.Errorf("not a settings record")
	}
	return &Builder{s: *rec.Settings(), prev: rec.Settings().Updated}, nil
}

// Apply applies an edit; on error nothing changes.
func (b *Builder) Apply(e Edit) error {
	s, err := apply(b.s, e)
	if err != nil {
		return err
	}
	b.s = s
	return nil
}

// Settings is what the builder holds now (for warnings before signing).
func (b *Builder) Settings() crdt.Settings { return b.s }

// Sign signs the settings with the network's admin key, dated now, or just
// after the settings it builds on when this clock is behind them (newer
// settings must win).
func (b *Builder) Sign(admin crdt.PrivateKey, now time.Time) (*crdt.Record, error) {
	if admin.Public() != b.s.Network {
		return nil, fmt.Errorf("the admin key %s is not this network's key (%s)", admin.Public().AuthorizedKey(), b.s.Network.AuthorizedKey())
	}
	s := b.s
	s.Updated = now
	if !now.After(b.prev) {
		s.Updated = b.prev.Add(time.Millisecond)
	}
	return crdt.SignSettings(s, admin)
}

// DataJSON is a bootstrap file (data.json) holding signed records of one
// network, each verified first: what an admin writes with --out, and what
// --show prints.
func DataJSON(recs ...*crdt.Record) ([]byte, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("no records")
	}
	id := recs[0].Network()
	st := crdt.NewState(crdt.DefaultOptions(), id)
	res := st.IngestAll(recs, time.Now())
	if len(res.Rejected) > 0 {
		return nil, res.Rejected[0]
	}
	return crdt.EncodeDataJSON(st, id)
}

// SettingsFromDataJSON reads the settings record of a data.json file,
// verified: the --from of an admin working without an agent.
func SettingsFromDataJSON(b []byte) (*crdt.Record, error) {
	df, err := crdt.DecodeDataJSON(b)
	if err != nil {
		return nil, err
	}
	for _, n := range df.Networks {
		for _, r := range n.Records {
			if r.Kind() == crdt.KindSettings {
				if err := r.VerifySignature(); err != nil {
					return nil, fmt.Errorf("its settings: %w", err)
				}
				return r, nil
			}
		}
	}
	return nil, fmt.Errorf("it holds no settings")
}

// Key is a network's admin key: the network's identity, which signs its
// settings.
type Key = crdt.PrivateKey

// Record is a signed record an admin made or read.
type Record = crdt.Record

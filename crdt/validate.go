package crdt

import (
	"bytes"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds on the settings an admin may sign.
const (
	MinHostTTL = time.Minute
	MaxHostTTL = 365 * 24 * time.Hour
	MaxDNSTTL  = 24 * time.Hour
)

// Defaults used by `network create` and by nodes for networks whose settings
// have not arrived yet.
const (
	DefaultHostTTL = 24 * time.Hour
	DefaultDNSTTL  = time.Minute
)

func (r *Record) validate() error {
	switch r.kind {
	case KindSettings:
		return r.Settings().validate()
	case KindHost:
		return r.Host().validate()
	case KindClaim:
		return r.Claim().validate()
	case KindAttestation:
		return r.Attestation().validate()
	case KindEntry:
		return r.Entry().validate()
	}
	return fmt.Errorf("%w: unknown kind %d", ErrMalformed, r.kind)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// normalize puts the settings' lists into canonical order, drops duplicates
// and strips times to their instant.
func (s *Settings) normalize() {
	s.Updated = canonicalTime(s.Updated)
	s.Domain = strings.ToLower(strings.TrimSuffix(s.Domain, "."))
	s.AllowedNodes = sortKeys(s.AllowedNodes)
	s.Banned = sortKeys(s.Banned)
	s.Witnesses = sortKeys(s.Witnesses)
	s.Overrides = slices.Clone(s.Overrides)
	for i := range s.Overrides {
		s.Overrides[i].Name = strings.ToLower(s.Overrides[i].Name)
	}
	slices.SortFunc(s.Overrides, func(a, b Override) int { return strings.Compare(a.Name, b.Name) })
	s.Overrides = slices.CompactFunc(s.Overrides, func(a, b Override) bool { return a == b })
	s.TSARoots = slices.Clone(s.TSARoots)
	slices.SortFunc(s.TSARoots, bytes.Compare)
	s.TSARoots = slices.CompactFunc(s.TSARoots, bytes.Equal)
	var urls []string
	for _, u := range s.TSAURLs {
		if !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	s.TSAURLs = urls
	s.Extra = slices.Clone(s.Extra)
	for i := range s.Extra {
		s.Extra[i].Name = strings.ToLower(s.Extra[i].Name)
	}
	slices.SortFunc(s.Extra, compareExtra)
	s.Extra = slices.CompactFunc(s.Extra, func(a, b ExtraRecord) bool { return compareExtra(a, b) == 0 })
	s.Namespaces = normalizeNamespaces(s.Namespaces)
}

func compareExtra(a, b ExtraRecord) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if a.Type != b.Type {
		return int(a.Type) - int(b.Type)
	}
	if c := strings.Compare(a.Data, b.Data); c != 0 {
		return c
	}
	return int(a.TTL/time.Second) - int(b.TTL/time.Second)
}

func sortKeys(keys []PublicKey) []PublicKey {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, PublicKey.Compare)
	return slices.Compact(keys)
}

func (s *Settings) validate() error {
	if s.Network.IsZero() {
		return malformed("settings: zero network key")
	}
	if s.Updated.UnixNano() <= 0 {
		return malformed("settings: updated time %v is not after 1970", s.Updated)
	}
	if err := ValidateDomain(s.Domain); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if s.HostTTL < MinHostTTL || s.HostTTL > MaxHostTTL || s.HostTTL%time.Second != 0 {
		return malformed("settings: host TTL %v outside [%v, %v] or not whole seconds", s.HostTTL, MinHostTTL, MaxHostTTL)
	}
	if s.DNSTTL < 0 || s.DNSTTL > MaxDNSTTL || s.DNSTTL%time.Second != 0 {
		return malformed("settings: DNS TTL %v outside [0, %v] or not whole seconds", s.DNSTTL, MaxDNSTTL)
	}
	for _, l := range []struct {
		what string
		keys []PublicKey
	}{{"allowed nodes", s.AllowedNodes}, {"banned keys", s.Banned}, {"witnesses", s.Witnesses}} {
		if len(l.keys) > maxKeyList {
			return malformed("settings: %d %s, at most %d", len(l.keys), l.what, maxKeyList)
		}
		if !slices.IsSortedFunc(l.keys, PublicKey.Compare) || len(slices.Compact(slices.Clone(l.keys))) != len(l.keys) {
			return malformed("settings: %s not sorted and unique", l.what)
		}
	}
	if len(s.Overrides) > maxOverrides {
		return malformed("settings: %d overrides, at most %d", len(s.Overrides), maxOverrides)
	}
	for i, o := range s.Overrides {
		if err := ValidateHostname(o.Name); err != nil {
			return fmt.Errorf("settings: override: %w", err)
		}
		if i > 0 && s.Overrides[i-1].Name >= o.Name {
			return malformed("settings: overrides not sorted by name, or %q given twice", o.Name)
		}
		if o.Node.IsZero() {
			return malformed("settings: override %q names the zero key", o.Name)
		}
	}
	if len(s.TSARoots) > maxTSARoots {
		return malformed("settings: %d TSA roots, at most %d", len(s.TSARoots), maxTSARoots)
	}
	for i, c := range s.TSARoots {
		if len(c) == 0 || len(c) > maxCertSize {
			return malformed("settings: TSA root of %d bytes", len(c))
		}
		if i > 0 && bytes.Compare(s.TSARoots[i-1], c) >= 0 {
			return malformed("settings: TSA roots not sorted and unique")
		}
	}
	if len(s.TSAURLs) > maxURLs {
		return malformed("settings: %d TSA URLs, at most %d", len(s.TSAURLs), maxURLs)
	}
	for i, u := range s.TSAURLs {
		if err := validateURL(u); err != nil {
			return fmt.Errorf("settings: TSA URL: %w", err)
		}
		if slices.Contains(s.TSAURLs[:i], u) {
			return malformed("settings: TSA URL %q given twice", u)
		}
	}
	if len(s.Extra) > maxExtra {
		return malformed("settings: %d extra records, at most %d", len(s.Extra), maxExtra)
	}
	for i, x := range s.Extra {
		if err := x.validate(); err != nil {
			return fmt.Errorf("settings: extra record %s %s: %w", x.Name, x.Type, err)
		}
		if i > 0 && compareExtra(s.Extra[i-1], x) >= 0 {
			return malformed("settings: extra records not sorted and unique")
		}
	}
	return validateNamespaces(s.Namespaces)
}

func validateURL(s string) error {
	if len(s) > maxURLLen {
		return malformed("URL of %d bytes", len(s))
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return malformed("%q is not an http(s) URL", s)
	}
	return nil
}

func (x ExtraRecord) validate() error {
	if x.Name != "@" {
		if err := validateName(x.Name, true); err != nil {
			return err
		}
	}
	if x.TTL < 0 || x.TTL > MaxDNSTTL || x.TTL%time.Second != 0 {
		return malformed("TTL %v outside [0, %v] or not whole seconds", x.TTL, MaxDNSTTL)
	}
	if len(x.Data) == 0 || len(x.Data) > maxExtraData {
		return malformed("data of %d bytes", len(x.Data))
	}
	switch x.Type {
	case TypeA, TypeAAAA:
		a, err := netip.ParseAddr(x.Data)
		if err != nil || a.Zone() != "" || a.String() != x.Data || a.Is4() != (x.Type == TypeA) {
			return malformed("%q is not a canonical %s address", x.Data, x.Type)
		}
	case TypeCNAME:
		if err := validateTarget(x.Data); err != nil {
			return err
		}
	case TypeSRV:
		f := strings.Split(x.Data, " ")
		if len(f) != 4 {
			return malformed("SRV data %q: want \"priority weight port target\"", x.Data)
		}
		for _, n := range f[:3] {
			if v, err := strconv.ParseUint(n, 10, 16); err != nil || strconv.FormatUint(v, 10) != n {
				return malformed("SRV data %q: %q is not a number 0–65535", x.Data, n)
			}
		}
		if err := validateTarget(f[3]); err != nil {
			return err
		}
	case TypeTXT:
		for _, r := range x.Data {
			if r < 0x20 || r > 0x7e {
				return malformed("TXT data has a non-printable or non-ASCII character")
			}
		}
	default:
		return malformed("record type %s is not one an admin may add", x.Type)
	}
	return nil
}

// validateTarget checks a CNAME or SRV target: a fully qualified name with a
// trailing dot, or a name relative to the domain without one.
func validateTarget(s string) error {
	return validateName(strings.TrimSuffix(s, "."), true)
}

// ValidateDomain checks a network's DNS domain: lower-case LDH labels, no
// trailing dot.
func ValidateDomain(s string) error {
	if err := validateName(s, false); err != nil {
		return fmt.Errorf("domain: %w", err)
	}
	return nil
}

// ValidateHostname checks a claimed or overridden name, relative to the
// network's domain: one or more lower-case labels of letters, digits and
// inner hyphens ("mors", "git.mors").
func ValidateHostname(s string) error {
	if err := validateName(s, false); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	return nil
}

// validateName checks lower-case dot-separated labels. underscore allows the
// leading "_" labels of SRV names ("_ssh._tcp").
func validateName(s string, underscore bool) error {
	if s == "" || len(s) > maxNameLen {
		return malformed("name %q: length %d outside [1, %d]", s, len(s), maxNameLen)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return malformed("name %q: empty label or label over 63 characters", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			case c == '-' && i > 0 && i < len(label)-1:
			case c == '_' && underscore:
			default:
				return malformed("name %q: character %q at %d (lower-case letters, digits and inner hyphens only)", s, c, i)
			}
		}
	}
	return nil
}

func (h *Host) normalize() {
	h.Heartbeat = canonicalTime(h.Heartbeat)
	h.Addresses = slices.Clone(h.Addresses)
	for i, a := range h.Addresses {
		h.Addresses[i] = a.Unmap()
	}
	slices.SortFunc(h.Addresses, netip.Addr.Compare)
	h.Addresses = slices.Compact(h.Addresses)
}

func (h *Host) validate() error {
	if h.Network.IsZero() || h.Node.IsZero() {
		return malformed("host: zero network or node key")
	}
	if h.Heartbeat.UnixNano() <= 0 {
		return malformed("host: heartbeat %v is not after 1970", h.Heartbeat)
	}
	if len(h.Addresses) > maxAddresses {
		return malformed("host: %d addresses, at most %d", len(h.Addresses), maxAddresses)
	}
	for i, a := range h.Addresses {
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			return malformed("host: address %v is not a unicast address", a)
		}
		if i > 0 && h.Addresses[i-1].Compare(a) >= 0 {
			return malformed("host: addresses not sorted and unique")
		}
	}
	return nil
}

func (c *Claim) validate() error {
	if c.Network.IsZero() || c.Node.IsZero() {
		return malformed("claim: zero network or node key")
	}
	if c.Created.UnixNano() <= 0 {
		return malformed("claim: created time %v is not after 1970", c.Created)
	}
	if err := ValidateHostname(c.Name); err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	return nil
}

func (a *Attestation) validate() error {
	if a.Network.IsZero() {
		return malformed("attestation: zero network key")
	}
	switch {
	case a.Witness != nil && a.RFC3161 != nil:
		return malformed("attestation: both a token and a witness signature")
	case a.Witness != nil:
		if a.Witness.Key.IsZero() || len(a.Witness.Signature) != signatureSize || a.Witness.Time.UnixNano() <= 0 {
			return malformed("attestation: incomplete witness signature")
		}
	case len(a.RFC3161) == 0 || len(a.RFC3161) > maxTokenSize:
		return malformed("attestation: token of %d bytes", len(a.RFC3161))
	}
	return nil
}

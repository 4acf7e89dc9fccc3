package wg

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSeedsAndRoutes(t *testing.T) {
	peers := []Peer{
		{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::2/128"), netip.MustParsePrefix("10.0.0.2/32")}},
		{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::3/128"), netip.MustParsePrefix("fd01::/64")}},
		{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::2/128")}},
	}
	got := Seeds(peers, 7946)
	want := []string{"10.0.0.2:7946", "[fd00::2]:7946", "[fd00::3]:7946"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("seeds %v, want %v", got, want)
	}
	for addr, routed := range map[string]bool{"fd00::2": true, "fd01::99": true, "fd02::1": false, "10.0.0.2": true, "::ffff:10.0.0.2": true} {
		if Routed(netip.MustParseAddr(addr), peers) != routed {
			t.Errorf("Routed(%s) != %v", addr, routed)
		}
	}
}

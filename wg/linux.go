//go:build linux

package wg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ErrNotFound is wrapped when no interface has the name; check with
// errors.Is.
var ErrNotFound = errors.New("interface not found")

// ErrNotWireGuard is wrapped when the interface exists but no WireGuard
// device answers for it (wrong name, or a plain tun device).
var ErrNotWireGuard = errors.New("not a WireGuard device")

// Read takes a snapshot of the named interface: link and addresses from
// netlink, device and peers from wgctrl.
func Read(name string) (*Interface, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return nil, fmt.Errorf("reading link %s: %w", name, err)
	}
	ifc := &Interface{Name: name, Kind: link.Type()}
	attrs := link.Attrs()
	ifc.Up = attrs.Flags&net.FlagUp != 0 && attrs.OperState != netlink.OperDown
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("reading addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap().IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	slices.SortFunc(ifc.Addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if ifc.Kind != "wireguard" && ifc.Kind != "tuntap" {
		return ifc, fmt.Errorf("%w: %s is a %s link, not WireGuard", ErrNotWireGuard, name, ifc.Kind)
	}
	c, err := wgctrl.New()
	if err != nil {
		return ifc, fmt.Errorf("opening wgctrl: %w", err)
	}
	defer c.Close()
	dev, err := c.Device(name)
	if err != nil {
		return ifc, fmt.Errorf("%w: %s: %v", ErrNotWireGuard, name, err)
	}
	ifc.DeviceType = dev.Type.String()
	ifc.PublicKey = dev.PublicKey
	ifc.ListenPort = dev.ListenPort
	for _, p := range dev.Peers {
		ifc.Peers = append(ifc.Peers, peerOf(p))
	}
	slices.SortFunc(ifc.Peers, func(a, b Peer) int { return compareKeys(a.PublicKey, b.PublicKey) })
	return ifc, nil
}

func peerOf(p wgtypes.Peer) Peer {
	out := Peer{PublicKey: p.PublicKey, LastHandshake: p.LastHandshakeTime}
	if p.LastHandshakeTime.Unix() <= 0 {
		out.LastHandshake = time.Time{}
	}
	if p.Endpoint != nil {
		if ap, ok := netip.AddrFromSlice(p.Endpoint.IP); ok {
			out.Endpoint = netip.AddrPortFrom(ap.Unmap(), uint16(p.Endpoint.Port))
		}
	}
	for _, n := range p.AllowedIPs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, _ := n.Mask.Size()
		out.AllowedIPs = append(out.AllowedIPs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out
}

func compareKeys(a, b [32]byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// Event says the interface changed; Interface is the new snapshot (or nil
// with Err set when it could not be read, e.g. the interface went away).
type Event struct {
	Interface *Interface
	Err       error
}

// Watch sends a snapshot at once and again whenever the link or its
// addresses change (netlink subscription) or its peers change (wgctrl,
// polled every poll interval: there is no notification for them). It runs
// until ctx ends, then closes the channel.
func Watch(ctx context.Context, name string, poll time.Duration) <-chan Event {
	out := make(chan Event, 4)
	go func() {
		defer close(out)
		links := make(chan netlink.LinkUpdate, 16)
		addrs := make(chan netlink.AddrUpdate, 16)
		done := make(chan struct{})
		defer close(done)
		// Subscriptions are best effort: if they fail, polling still
		// notices every change within one interval.
		_ = netlink.LinkSubscribe(links, done)
		_ = netlink.AddrSubscribe(addrs, done)
		t := time.NewTicker(poll)
		defer t.Stop()
		var last *Interface
		var lastErr string
		emit := func() {
			ifc, err := Read(name)
			errText := ""
			if err != nil {
				errText = err.Error()
			}
			if err == nil && last != nil && same(ifc, last) {
				return
			}
			if err != nil && errText == lastErr {
				return
			}
			last, lastErr = ifc, errText
			if err != nil {
				last = nil
			}
			select {
			case out <- Event{Interface: ifc, Err: err}:
			case <-ctx.Done():
			}
		}
		emit()
		for {
			select {
			case <-ctx.Done():
				return
			case <-links:
			case <-addrs:
			case <-t.C:
			}
			emit()
		}
	}()
	return out
}

// same compares what matters to the agent (handshake times change every
// two minutes and are not a change of the mesh).
func same(a, b *Interface) bool {
	if a.Up != b.Up || !slices.Equal(a.Addrs, b.Addrs) || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Peers {
		p, q := a.Peers[i], b.Peers[i]
		if p.PublicKey != q.PublicKey || p.Endpoint != q.Endpoint || !slices.Equal(p.AllowedIPs, q.AllowedIPs) {
			return false
		}
	}
	return true
}

package mesh

import "testing"

// The in-memory network counts the datagrams that hosts up send, whether
// they arrive or not (a node's probes of a member that crashed are its
// traffic all the same), and nothing a crashed host sends; nothing
// reaches a crashed host.
func TestMemNetworkCountsWhatIsSent(t *testing.T) {
	net := NewMemNetwork()
	a, b := net.Transport("10.0.0.1", 7946), net.Transport("10.0.0.2", 7946)
	a.WriteTo([]byte("hello"), "10.0.0.2:7946")
	if got := net.GossipBytes.Load(); got != 5 || len(b.PacketCh()) != 1 {
		t.Fatalf("delivered: %d bytes counted, %d packets queued", got, len(b.PacketCh()))
	}
	<-b.PacketCh()
	net.Crash("10.0.0.2")
	a.WriteTo([]byte("hello"), "10.0.0.2:7946")
	if got := net.GossipBytes.Load(); got != 10 || len(b.PacketCh()) != 0 {
		t.Fatalf("to a crashed host: %d bytes counted (want 10), %d packets queued (want 0)", got, len(b.PacketCh()))
	}
	b.WriteTo([]byte("hello"), "10.0.0.1:7946")
	if got := net.GossipBytes.Load(); got != 10 || len(a.PacketCh()) != 0 {
		t.Fatalf("from a crashed host: %d bytes counted (want 10), %d packets queued (want 0)", got, len(a.PacketCh()))
	}
}

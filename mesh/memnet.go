package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemNetwork is an in-memory network on which whole clusters run inside
// go test, without sockets: a memberlist transport per node, and an HTTP
// client that reaches every node's peer endpoint. It can partition the
// nodes into groups, take a node down, and count the bytes that cross it,
// so that tests can cut and heal a mesh and measure what a sync costs.
type MemNetwork struct {
	mu        sync.RWMutex
	transport map[string]*MemTransport // by host
	handler   map[string]http.Handler  // by host
	group     map[string]int           // partition group of a host; 0 = none
	crashed   map[string]bool          // hosts gone (Crash)

	// Bytes by path: GossipBytes the datagrams that hosts up sent,
	// delivered or not (a node's own traffic, as the simulator counts
	// it: its probes and gossip to members that crashed are sent all
	// the same); StreamBytes and HTTPBytes what crossed.
	GossipBytes, StreamBytes, HTTPBytes atomic.Int64
	// HTTPRequests counts requests to peer endpoints.
	HTTPRequests atomic.Int64
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{transport: map[string]*MemTransport{}, handler: map[string]http.Handler{}, group: map[string]int{},
		crashed: map[string]bool{}}
}

var errUnreachable = errors.New("memnet: no route to host")

// Partition cuts the network into the given groups of hosts: hosts in
// different groups cannot reach each other. Hosts not named form one more
// group.
func (m *MemNetwork) Partition(groups ...[]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.group = map[string]int{}
	for i, g := range groups {
		for _, h := range g {
			m.group[h] = i + 1
		}
	}
}

// Heal joins all groups again.
func (m *MemNetwork) Heal() { m.Partition() }

// Crash takes host away like a machine gone, for good: nothing reaches
// it, and nothing it sends arrives or counts (its node keeps running, cut
// off).
func (m *MemNetwork) Crash(host string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashed[host] = true
}

func (m *MemNetwork) reachable(from, to string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.group[from] == m.group[to] && !m.crashed[from] && !m.crashed[to]
}

func (m *MemNetwork) up(host string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return !m.crashed[host]
}

// Transport returns a memberlist transport for a node at host (an IP
// address) and port. A new transport for the same host replaces the old
// one, as a restarted node would.
func (m *MemNetwork) Transport(host string, port int) *MemTransport {
	t := &MemTransport{net: m, host: host, port: port,
		packets: make(chan *memberlist.Packet, 4096), streams: make(chan net.Conn, 64)}
	m.mu.Lock()
	m.transport[host] = t
	m.mu.Unlock()
	return t
}

// Serve makes h the peer HTTP endpoint of host; nil takes it down.
func (m *MemNetwork) Serve(host string, h http.Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		delete(m.handler, host)
		return
	}
	m.handler[host] = h
}

// HTTPClient returns a client for requests made by host: it reaches the
// peer endpoints registered with Serve, through the partitions.
func (m *MemNetwork) HTTPClient(host string) *http.Client {
	return &http.Client{Transport: memRoundTripper{m, host}, Timeout: 10 * time.Second}
}

type memRoundTripper struct {
	m    *MemNetwork
	from string
}

func (rt memRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Hostname()
	rt.m.mu.RLock()
	h := rt.m.handler[host]
	rt.m.mu.RUnlock()
	if h == nil || !rt.m.reachable(rt.from, host) {
		return nil, fmt.Errorf("dial %s: %w", req.URL.Host, errUnreachable)
	}
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	sreq := httptest.NewRequest(req.Method, req.URL.String(), bytes.NewReader(body)).WithContext(req.Context())
	sreq.Header = req.Header.Clone()
	sreq.RemoteAddr = net.JoinHostPort(rt.from, "40000")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, sreq)
	resp := rec.Result()
	resp.Request = req
	rt.m.HTTPRequests.Add(1)
	rt.m.HTTPBytes.Add(int64(wireSize(req.Method+" "+req.URL.RequestURI()+" HTTP/1.1", req.Header, len(body)+len("Host: ")+len(req.URL.Host)+2) +
		wireSize(resp.Proto+" "+resp.Status, resp.Header, rec.Body.Len()+len("Content-Length: ")+len(strconv.Itoa(rec.Body.Len()))+2)))
	return resp, nil
}

// wireSize is what an HTTP/1.1 message with these headers and body takes.
func wireSize(first string, h http.Header, body int) int {
	n := len(first) + 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2 + body
}

// MemTransport is a memberlist transport on a MemNetwork.
type MemTransport struct {
	net      *MemNetwork
	host     string
	port     int
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	shutdown atomic.Bool
	// Dials counts the streams this node opened or tried to (memberlist
	// opens one for each join and push/pull).
	Dials atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*MemTransport)(nil)

func (t *MemTransport) addr() net.Addr {
	return &net.UDPAddr{IP: net.ParseIP(t.host), Port: t.port}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *MemTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.ParseIP(t.host), t.port, nil
}

func (t *MemTransport) peer(addr string) (*MemTransport, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	t.net.mu.RLock()
	dest := t.net.transport[host]
	t.net.mu.RUnlock()
	if dest == nil || dest.shutdown.Load() || t.shutdown.Load() || !t.net.reachable(t.host, host) {
		return nil, errUnreachable
	}
	return dest, nil
}

// WriteTo implements memberlist.Transport: a datagram, lost when the
// destination cannot be reached or its queue is full.
func (t *MemTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	if t.shutdown.Load() || !t.net.up(t.host) {
		return now, nil
	}
	t.net.GossipBytes.Add(int64(len(b))) // sent, whether it arrives or not
	dest, err := t.peer(addr)
	if err != nil {
		return now, nil // like UDP: the packet is lost
	}
	select {
	case dest.packets <- &memberlist.Packet{Buf: bytes.Clone(b), From: t.addr(), Timestamp: now}:
	default:
	}
	return now, nil
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *MemTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *MemTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *MemTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	t.Dials.Add(1)
	dest, err := t.peer(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	a, b := net.Pipe()
	select {
	case dest.streams <- countingConn{b, &t.net.StreamBytes}:
		return countingConn{a, &t.net.StreamBytes}, nil
	case <-time.After(timeout):
		a.Close()
		b.Close()
		return nil, fmt.Errorf("dial %s: timeout", addr)
	}
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *MemTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *MemTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport: the node is gone from the
// network.
func (t *MemTransport) Shutdown() error {
	t.shutdown.Store(true)
	return nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

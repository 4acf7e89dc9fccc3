//go:build linux

package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// The UDP fast path. Measured on these machines (see DNS-FASTPATH.md in
// the design notes): a goroutine blocked in recvmmsg on a blocking socket,
// answering a batch with one sendmmsg, keeps the Go runtime's netpoller and
// its wake-ups out of the way. It costs one OS thread per socket.
//
// The loop yields (runtime.Gosched) now and then. A goroutine that never
// passes through the scheduler has its processor taken by the runtime's
// monitor after 10 ms (sysmon, forcePreemptNS): blocked in recvmmsg, the
// processor is handed off, and without yields that repeats at every
// monitor tick and moves the loop from thread to thread (perf sched at 20k
// queries a second: about 900 wake-ups of idle runtime threads a second,
// the loop alternating between threads thousands of times a second). But
// every yield wakes an idle runtime thread too (Gosched queues the
// goroutine globally and calls wakep), and on a busy machine that thread
// can take the loop's CPU: with both cores loaded, nearly every
// involuntary preemption of the loop's thread came right after it had
// woken such a thread at a yield, and left the socket unread for up to
// 0.4 ms. So the loop yields as seldom as the monitor allows, and when it
// has just emptied the socket: at the first batch shorter than a full one
// once yieldIdle has passed since the last yield, or after yieldLatest
// when full batches keep coming.

const (
	batch       = 32
	recvBuf     = 4096
	yieldIdle   = 4 * time.Millisecond
	yieldLatest = 7 * time.Millisecond // below the monitor's 10 ms
)

type udpLoop struct {
	fd      int
	h       *Handler
	stopped atomic.Bool
	slow    chan slowQuery
	fast    atomic.Int64 // answered on the fast path
}

type slowQuery struct {
	pkt  []byte
	name unix.RawSockaddrInet6
	nlen uint32
}

// listenUDP opens a blocking UDP socket bound to addr (IP_FREEBIND: the
// tunnel address may not be up yet).
func listenUDP(addr netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if addr.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	// No SO_REUSEADDR: on UDP it would let another process bind the same
	// address and receive our queries.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if family == unix.AF_INET6 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
	}
	// Wake up now and then to notice Stop.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}); err != nil {
		return fail("timeout on", err)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	} else {
		s6 := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
		if z := addr.Addr().Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				s6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("binding", err)
	}
	return fd, nil
}

func newUDPLoop(fd int, h *Handler) *udpLoop {
	return &udpLoop{fd: fd, h: h, slow: make(chan slowQuery, 256)}
}

func (l *udpLoop) stop() {
	l.stopped.Store(true)
}

// run answers until stop; it owns its OS thread's time but yields often.
func (l *udpLoop) run() {
	var (
		bufs  [batch][recvBuf]byte
		outs  [batch][maxUDPSize]byte
		names [batch]unix.RawSockaddrInet6
		riov  [batch]unix.Iovec
		rhdr  [batch]unix.Mmsghdr
		siov  [batch]unix.Iovec
		shdr  [batch]unix.Mmsghdr
		lower [256]byte
		q     query
		// counts of this batch's results, added to the Handler's once
		// per batch
		counts [numResults]int64
	)
	for i := range batch {
		riov[i].Base = &bufs[i][0]
		riov[i].SetLen(recvBuf)
		rhdr[i].Hdr.Iov = &riov[i]
		rhdr[i].Hdr.SetIovlen(1)
		rhdr[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
	}
	lastYield := time.Now()
	forwarding := len(l.h.forwarders) > 0
	for !l.stopped.Load() {
		for i := range batch {
			rhdr[i].Hdr.Namelen = uint32(unsafe.Sizeof(names[i]))
			rhdr[i].Hdr.Flags = 0
		}
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&rhdr[0])), batch,
			unix.MSG_WAITFORONE, 0, 0)
		if errno != 0 {
			if errno == unix.EAGAIN || errno == unix.EINTR {
				continue
			}
			if errno == unix.EBADF {
				return
			}
			time.Sleep(10 * time.Millisecond) // unexpected: don't spin
			continue
		}
		out := 0
		fast := l.h.table.Load().fast // one table for the batch
		for i := range int(n) {
			pkt := bufs[i][:rhdr[i].Len]
			if rhdr[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				continue // larger than any query we answer: drop
			}
			size := 0
			if parseQuery(pkt, &lower, &q) {
				if t := fast.lookup(&q); t != nil && !(t == fast.refused && forwarding) {
					if size = t.build(pkt, &q, outs[out][:]); size > 0 {
						counts[t.result]++
					}
				}
			}
			if size == 0 {
				l.toSlow(pkt, &names[i], rhdr[i].Hdr.Namelen)
				continue
			}
			siov[out].Base = &outs[out][0]
			siov[out].SetLen(size)
			shdr[out].Hdr.Iov = &siov[out]
			shdr[out].Hdr.SetIovlen(1)
			shdr[out].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
			shdr[out].Hdr.Namelen = rhdr[i].Hdr.Namelen
			out++
		}
		for sent := 0; sent < out; {
			m, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&shdr[sent])), uintptr(out-sent), 0, 0, 0)
			if errno != 0 {
				if errno == unix.EINTR || errno == unix.EAGAIN {
					continue
				}
				break // a reply that cannot be sent is lost, as UDP allows
			}
			sent += int(m)
		}
		for r, c := range counts {
			if c != 0 {
				l.h.counts[r].Add(c)
				counts[r] = 0
			}
		}
		l.fast.Add(int64(out))
		if now := time.Now(); now.Sub(lastYield) > yieldIdle && (int(n) < batch || now.Sub(lastYield) > yieldLatest) {
			lastYield = now
			runtime.Gosched()
		}
	}
}

func (l *udpLoop) toSlow(pkt []byte, name *unix.RawSockaddrInet6, nlen uint32) {
	select {
	case l.slow <- slowQuery{pkt: append([]byte(nil), pkt...), name: *name, nlen: nlen}:
	default: // overloaded: drop, the client retries
	}
}

// slowWorker answers what the fast path passed on, with the Handler.
func (l *udpLoop) slowWorker() {
	for sq := range l.slow {
		req := new(dns.Msg)
		if err := req.Unpack(sq.pkt); err != nil {
			// Unparseable: FORMERR if there is at least a header.
			if len(sq.pkt) >= 12 && sq.pkt[2]&0x80 == 0 {
				l.h.counts[ResultError].Add(1)
				reply := append([]byte(nil), sq.pkt[:12]...)
				reply[2] = 0x80 | reply[2]&0x79
				reply[3] = dns.RcodeFormatError
				for i := 4; i < 12; i++ {
					reply[i] = 0
				}
				l.sendTo(reply, &sq)
			}
			continue
		}
		b, res := l.h.reply(req, true)
		l.h.counts[res].Add(1)
		if b != nil {
			l.sendTo(b, &sq)
		}
	}
}

func (l *udpLoop) sendTo(b []byte, sq *slowQuery) {
	_, _, _ = unix.Syscall6(unix.SYS_SENDTO, uintptr(l.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(&sq.name)), uintptr(sq.nlen))
}

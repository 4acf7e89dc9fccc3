package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// firstAnswer starts command in a session of its own, asks server for
// name's AAAA every millisecond until the answer is want, and prints how
// long that took from the start, and the resident memory of the session's
// processes then and settle later. It stops the session (SIGTERM, then
// SIGKILL after 10 s) before it returns.
func firstAnswer(server netip.AddrPort, name string, want netip.Addr, settle time.Duration, log string, command []string) error {
	if len(command) == 0 {
		return errors.New("firstanswer needs a command after --")
	}
	out, err := os.Create(log)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// A plain blocking socket with a 1 ms receive timeout: the poller
	// must not compete with the server for the CPU (Go's netpoller and
	// timers, woken a thousand times a second, took most of a core).
	conn, err := pollSocket(server)
	if err != nil {
		return err
	}
	defer syscall.Close(conn)
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeAAAA)
	q.RecursionDesired = false
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	buf := make([]byte, 4096)
	var first time.Duration
	for id := uint16(1); first == 0; id++ {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before it answered (%v); its log: %s", command[0], err, log)
		default:
		}
		if time.Since(start) > time.Minute {
			return fmt.Errorf("%s did not answer %s within a minute; its log: %s", command[0], name, log)
		}
		q.Id = id
		b, _ := q.Pack()
		if _, err := syscall.Write(conn, b); err != nil {
			time.Sleep(time.Millisecond) // refused: nothing listens yet
			continue
		}
		for {
			n, err := syscall.Read(conn, buf)
			if err != nil || n <= 0 {
				if errors.Is(err, syscall.ECONNREFUSED) {
					time.Sleep(time.Millisecond)
				}
				break // timed out or refused: ask again
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil || m.Id != id || m.Rcode != dns.RcodeSuccess {
				continue
			}
			for _, rr := range m.Answer {
				if a, ok := rr.(*dns.AAAA); ok {
					if got, _ := netip.AddrFromSlice(a.AAAA); got == want {
						first = time.Since(start)
					}
				}
			}
			break
		}
	}
	rssFirst := sessionRSS(cmd.Process.Pid)
	time.Sleep(settle) // a benchmark tool's pause, not a test's
	fmt.Printf("first_ms=%.1f rss_first_kb=%d rss_settled_kb=%d\n", float64(first.Microseconds())/1000, rssFirst, sessionRSS(cmd.Process.Pid))
	return nil
}

// sessionRSS sums VmRSS (kB) over the processes of session sid.
func sessionRSS(sid int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	total := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session …: comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 4 || f[3] != strconv.Itoa(sid) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				total += kb
			}
		}
	}
	return total
}

// pollSocket is a UDP socket connected to server whose reads wait at most
// a millisecond.
func pollSocket(server netip.AddrPort) (int, error) {
	family := syscall.AF_INET
	if server.Addr().Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return -1, err
	}
	tv := syscall.Timeval{Usec: 1000}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	var sa syscall.Sockaddr
	if family == syscall.AF_INET {
		sa = &syscall.SockaddrInet4{Port: int(server.Port()), Addr: server.Addr().As4()}
	} else {
		sa = &syscall.SockaddrInet6{Port: int(server.Port()), Addr: server.Addr().As16()}
	}
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Command dnsbench serves N synthetic names ("h0.bench" … with one AAAA
// each) with the dnsserver package on a loopback port, for
// scripts/dns-bench to measure against unbound. It writes a CPU profile on
// SIGTERM when -cpuprofile is given, and the zone as unbound local-data
// with -unbound.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:5354", "address to answer on")
	n := flag.Int("names", 1000, "number of names")
	profile := flag.String("cpuprofile", "", "write a CPU profile here, from SIGUSR1 to SIGTERM")
	unbound := flag.Bool("unbound", false, "print the same zone as unbound local-data and exit")
	slow := flag.Bool("slow", false, "disable the fast path")
	flag.Parse()

	v := &crdt.ResolvedView{
		Zones: []crdt.Zone{{Domain: "bench", TTL: time.Minute, Serial: 1}},
		Names: map[string]*crdt.Name{},
	}
	for i := range *n {
		a := netip.AddrFrom16([16]byte{0xfd, 0xbe, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		name := fmt.Sprintf("h%d.bench", i)
		v.Names[name] = &crdt.Name{FQDN: name, Addrs: []netip.Addr{a}, TTL: time.Minute}
	}
	if *unbound {
		fmt.Println(`    local-zone: "bench." static`)
		fmt.Println(`    local-data: "bench. 60 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60"`)
		for name, e := range v.Names {
			fmt.Printf("    local-data: \"%s. 60 IN AAAA %s\"\n", name, e.Addrs[0])
		}
		return
	}
	t, err := dnsserver.NewTable(v, dnsserver.TableOptions{ReversePrefixes: []netip.Prefix{}})
	if err != nil {
		log.Fatal(err)
	}
	s := dnsserver.NewServer(dnsserver.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort(*addr)}, DisableFastPath: *slow})
	s.SetTable(t)
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	var pf *os.File
	for s := range sig {
		if s == syscall.SIGUSR1 && *profile != "" && pf == nil {
			pf, err = os.Create(*profile)
			if err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(pf); err != nil {
				log.Fatal(err)
			}
			continue
		}
		if s != syscall.SIGUSR1 {
			break
		}
	}
	if pf != nil {
		pprof.StopCPUProfile()
		pf.Close()
	}
	s.Stop()
}

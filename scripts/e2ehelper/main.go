// Command e2ehelper plays the outside world in the end-to-end tests, inside
// a test-bed namespace:
//
//	e2ehelper tsa   --listen ADDR --dir DIR [--down]
//	                OpenSSL's `openssl ts -reply` behind an HTTP front; the
//	                root certificate is written to DIR/root.pem; SIGUSR1 takes
//	                it down (503), SIGUSR2 brings it back
//	e2ehelper files --listen ADDR --dir DIR
//	                a plain static file server (not an agent)
//	e2ehelper forge --key FILE --network KEY --victim KEY PEER-URL…
//	                what an untrusted node can try: push, straight to peers'
//	                sync endpoints, a host record for another node and
//	                network settings, both signed with its own key
//	e2ehelper push --file DATA.JSON PEER-URL…
//	                the records of a data.json, straight to peers' sync
//	                endpoints: a stale copy replayed
//	e2ehelper forge-entry --key FILE --network KEY --victim KEY PEER-URL…
//	                entries an untrusted node can try: one in the victim's
//	                key-space with a signature that does not verify, and
//	                one of its own in the admin's namespace dns.aliases
//	e2ehelper impostor --listen ADDR:PORT --name NAME SEED…
//	                what anyone who reaches the gossip port can try: join
//	                memberlist under a name of its choosing, without a
//	                member proof; it prints the members it sees every second
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh/tsatest"
	"github.com/hashicorp/memberlist"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: e2ehelper tsa|files|forge …")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "", "address to serve on")
	dir := fs.String("dir", "", "directory")
	down := fs.Bool("down", false, "start down")
	keyFile := fs.String("key", "", "the untrusted node's key")
	network := fs.String("network", "", "network key")
	victim := fs.String("victim", "", "the key of the node whose host record to forge")
	name := fs.String("name", "", "the impostor's memberlist name")
	file := fs.String("file", "", "a data.json")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "tsa":
		tsa, err := tsatest.NewOpenSSL(*dir)
		if err != nil {
			log.Fatal(err)
		}
		root := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsa.RootDER})
		if err := os.WriteFile(filepath.Join(*dir, "root.pem"), root, 0o644); err != nil {
			log.Fatal(err)
		}
		tsa.SetDown(*down)
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
		go func() {
			for s := range sigs {
				tsa.SetDown(s == syscall.SIGUSR1)
				log.Printf("timestamp authority down: %v", s == syscall.SIGUSR1)
			}
		}()
		log.Printf("timestamp authority on %s (down: %v)", *listen, *down)
		log.Fatal(http.ListenAndServe(*listen, tsa))
	case "files":
		log.Fatal(http.ListenAndServe(*listen, http.FileServer(http.Dir(*dir))))
	case "forge":
		forge(*keyFile, *network, *victim, fs.Args())
	case "impostor":
		impostor(*listen, *name, fs.Args())
	case "push":
		b, err := os.ReadFile(*file)
		if err != nil {
			log.Fatal(err)
		}
		df, err := crdt.DecodeDataJSON(b)
		if err != nil {
			log.Fatal(err)
		}
		for _, n := range df.Networks {
			var raws [][]byte
			for _, r := range n.Records {
				raws = append(raws, r.Bytes())
			}
			pushRecords(n.Network, raws, fs.Args())
		}
	case "forge-entry":
		forgeEntries(*keyFile, *network, *victim, fs.Args())
	default:
		log.Fatalf("unknown command %s", os.Args[1])
	}
}

// forgerKeys reads the forger's own key and parses the network's and the
// victim's.
func forgerKeys(keyFile, network, victim string) (crdt.PrivateKey, crdt.PublicKey, crdt.PublicKey) {
	key, err := agent.LoadKey(keyFile)
	if err != nil {
		log.Fatal(err)
	}
	netKey, err := crdt.ParsePublicKey(network)
	if err != nil {
		log.Fatal(err)
	}
	victimKey, err := crdt.ParsePublicKey(victim)
	if err != nil {
		log.Fatal(err)
	}
	return key, netKey, victimKey
}

func forge(keyFile, network, victim string, peers []string) {
	key, netKey, victimKey := forgerKeys(keyFile, network, victim)
	// A host record claiming to be the victim's, pointing at an address the
	// attacker chose; signed with the attacker's key, the only one it has.
	own, err := crdt.SignHost(crdt.Host{Network: netKey, Node: key.Public(), Heartbeat: time.Now(),
		Addresses: []netip.Addr{netip.MustParseAddr("fd6d:6573::bad")}, HTTPPort: 7331}, key)
	if err != nil {
		log.Fatal(err)
	}
	host := bytes.Clone(own.Bytes())
	copy(host[2+32:2+64], victimKey[:]) // the node field: now the victim's key
	// Settings for the network, made by the attacker: itself as the only
	// witness, everybody else banned.
	settings := crdt.Settings{Network: key.Public(), Updated: time.Now(), Domain: "demo", HostTTL: time.Hour,
		Witnesses: []crdt.PublicKey{key.Public()}, Banned: []crdt.PublicKey{victimKey}}
	fake, err := crdt.SignSettings(settings, key)
	if err != nil {
		log.Fatal(err)
	}
	set := bytes.Clone(fake.Bytes())
	copy(set[2:2+32], netKey[:]) // the network field: now the real network
	pushRecords(netKey, [][]byte{host, set}, peers)
}

// pushRecords sends records of one network to each peer's sync endpoint
// as its stage 3 ("push"): version 1, stage 3, one network, its records.
func pushRecords(netKey crdt.PublicKey, recs [][]byte, peers []string) {
	msg := []byte{1, 3}
	msg = binary.AppendUvarint(msg, 1)
	msg = append(msg, netKey[:]...)
	msg = binary.AppendUvarint(msg, uint64(len(recs)))
	for _, r := range recs {
		msg = binary.AppendUvarint(msg, uint64(len(r)))
		msg = append(msg, r...)
	}
	for _, p := range peers {
		resp, err := http.Post(p+"/v1/sync", "application/x-data-mesher-sync", bytes.NewReader(msg))
		if err != nil {
			fmt.Printf("%s: %v\n", p, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %s\n", p, resp.Status)
	}
}

// forgeEntries pushes what an untrusted node can make of entries: a write
// in the victim's key-space of "notes", signed with its own key (so the
// signature cannot verify for the victim), and a write of its own in the
// admin's namespace dns.aliases.
func forgeEntries(keyFile, network, victim string, peers []string) {
	key, netKey, victimKey := forgerKeys(keyFile, network, victim)
	own, err := crdt.SignEntry(crdt.Entry{Network: netKey, Namespace: "notes", Writer: key.Public(), Key: "forged", Time: time.Now(),
		Policy: crdt.PolicyLWW, Op: crdt.OpPut, Value: []byte("forged")}, key)
	if err != nil {
		log.Fatal(err)
	}
	forged := bytes.Clone(own.Bytes())
	pub := key.Public()
	i := bytes.Index(forged, pub[:])
	copy(forged[i:], victimKey[:]) // the writer field: now the victim's key
	alias, err := crdt.SignEntry(crdt.Entry{Network: netKey, Namespace: crdt.NamespaceAliases, Writer: key.Public(), Key: "evil",
		Time: time.Now(), Policy: crdt.PolicyLWW, Op: crdt.OpPut, Value: []byte("attacker")}, key)
	if err != nil {
		log.Fatal(err)
	}
	pushRecords(netKey, [][]byte{forged, alias.Bytes()}, peers)
}

// bare is a memberlist delegate with no member proof.
type bare struct{}

func (bare) NodeMeta(int) []byte               { return []byte{1, 0x1c, 0xa3} } // an old agent's metadata: its HTTP port only
func (bare) NotifyMsg([]byte)                  {}
func (bare) GetBroadcasts(int, int) [][]byte   { return nil }
func (bare) LocalState(bool) []byte            { return nil }
func (bare) MergeRemoteState(b []byte, j bool) {}

func impostor(listen, name string, seeds []string) {
	ap := netip.MustParseAddrPort(listen)
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.AdvertiseAddr = ap.Addr().String(), ap.Addr().String()
	mc.BindPort, mc.AdvertisePort = int(ap.Port()), int(ap.Port())
	mc.Delegate = bare{}
	ml, err := memberlist.Create(mc)
	if err != nil {
		log.Fatal(err)
	}
	for {
		if _, err := ml.Join(seeds); err != nil {
			log.Printf("join: %v", err)
		}
		log.Printf("impostor sees %d members", ml.NumMembers())
		time.Sleep(time.Second)
	}
}

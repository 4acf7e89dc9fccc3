package mesh

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Handler is the peer HTTP endpoint (default port 7331 on the tunnel
// address):
//
//	GET  /data.json[?network=KEY]      the signed records of joined networks
//	GET  /v1/records/{network}/{hash}  one record, encoded
//	POST /v1/sync                      anti-entropy (see wire.go)
//	POST /v1/challenge                 the reachability challenge
//	GET  /v1/time                      this node's clock (doctor's skew check)
//
// Everything served is signed and verified by whoever receives it; requests
// are rate-limited per peer, bodies bounded, and a peer that sends invalid
// records is ignored for a while.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data.json", n.serveDataJSON)
	mux.HandleFunc("GET /v1/records/{network}/{hash}", n.serveRecord)
	mux.HandleFunc("POST /v1/sync", n.serveSync)
	mux.HandleFunc("GET /v1/time", func(w http.ResponseWriter, r *http.Request) {
		// This node's clock, for doctor's skew check.
		_, _ = w.Write([]byte(n.store.Now().UTC().Format(time.RFC3339Nano)))
	})
	mux.HandleFunc("POST /v1/challenge", func(w http.ResponseWriter, r *http.Request) {
		if n.cfg.Challenge == nil {
			http.Error(w, "this node does not answer challenges", http.StatusServiceUnavailable)
			return
		}
		n.cfg.Challenge.ServeHTTP(w, r)
	})
	return n.limit(mux)
}

func (n *Node) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := remoteAddr(r)
		if ok, why := n.limits.allow(addr, time.Now()); !ok {
			w.Header().Set("Retry-After", "10")
			http.Error(w, why, http.StatusTooManyRequests)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n.cfg.MaxBody)
		n.stats.Served.Add(1)
		next.ServeHTTP(w, r)
	})
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func (n *Node) serveDataJSON(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var err error
	status := http.StatusOK
	n.store.Read(func(st *crdt.State) {
		nets := st.Joined()
		if q := r.URL.Query().Get("network"); q != "" {
			id, perr := crdt.ParsePublicKey(q)
			if perr != nil {
				status, err = http.StatusBadRequest, perr
				return
			}
			if !contains(nets, id) {
				status = http.StatusNotFound
				return
			}
			nets = []crdt.PublicKey{id}
		}
		body, err = crdt.EncodeDataJSON(st, nets...)
	})
	switch {
	case status == http.StatusNotFound:
		http.Error(w, "this node has not joined that network", status)
	case err != nil:
		if status == http.StatusOK {
			status = http.StatusInternalServerError
		}
		http.Error(w, err.Error(), status)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

func contains(ids []crdt.PublicKey, id crdt.PublicKey) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (n *Node) serveRecord(w http.ResponseWriter, r *http.Request) {
	id, err := crdt.ParsePublicKey(r.PathValue("network"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var h crdt.Hash
	if err := h.UnmarshalText([]byte(strings.ToLower(r.PathValue("hash")))); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var raw []byte
	n.store.Read(func(st *crdt.State) {
		if rec := st.Lookup(id, h); rec != nil {
			raw = rec.Bytes()
		}
	})
	if raw == nil {
		http.Error(w, "no such record", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(raw)
}

func (n *Node) serveSync(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	m, err := decodeWire(body, false)
	if err != nil {
		n.log.Debug("bad sync request", "from", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	addr := remoteAddr(r)
	out, bad := n.answer(m, addr.String())
	if n.limits.bad(addr, bad, time.Now()) {
		n.stats.PeersPenalized.Add(1)
		n.log.Warn("peer pushed invalid records; ignoring it for a while", "peer", addr, "invalid", bad)
	}
	w.Header().Set("Content-Type", syncContentType)
	_, _ = w.Write(out.encode())
}

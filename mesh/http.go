package mesh

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/data-mesher/data-mesher/crdt"
)

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

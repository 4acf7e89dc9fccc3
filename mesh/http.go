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

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// serveDataJSON streams data.json: the records are taken under the
// store's lock and written after it, so a 41 MB file (100,000 hosts)
// costs a pointer per record, not the file's bytes, and holds no lock
// while a slow reader takes it. A reader that keeps taking bytes gets
// the whole file however long it needs; one that stops for
// dataJSONStall is cut off.
func (n *Node) serveDataJSON(w http.ResponseWriter, r *http.Request) {
	var snap *crdt.DataSnapshot
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
		snap, err = st.SnapshotDataJSON(nets...)
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
		if _, err := snap.WriteTo(&progressWriter{w: w, rc: http.NewResponseController(w), stall: dataJSONStall}); err != nil {
			n.log.Info("data.json not sent whole", "peer", remoteAddr(r), "err", err)
		}
	}
}

// dataJSONStall is how long a data.json reader may take no bytes.
const dataJSONStall = 30 * time.Second

// progressWriter moves the connection's write deadline stall ahead of
// each write: the server's WriteTimeout bounds a request's answer, but
// a file of any size must reach a slow reader that keeps reading.
type progressWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	stall time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.stall)) // a writer without deadlines (a test's recorder) just writes
	return p.w.Write(b)
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

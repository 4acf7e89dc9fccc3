package mesh

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// The peer HTTP endpoint (default port 7331 on the tunnel address). Every
// route is defined here, once; the clients in this package build their
// URLs from the same constants.
const (
	// PathDataJSON serves the signed records of the joined networks
	// (GET, ?network=KEY for one): a bootstrap file (http.go).
	PathDataJSON = "/data.json"
	// PathRecord serves one record, encoded (GET, fetch of a record too
	// large for gossip; http.go, gossip.go).
	PathRecord = "/v1/records/{network}/{hash}"
	// PathSync is anti-entropy (POST; wire.go, antientropy.go).
	PathSync = "/v1/sync"
	// PathChallenge is the reachability challenge (POST; challenge.go).
	PathChallenge = "/v1/challenge"
	// PathTime is this node's clock (GET; clock.go).
	PathTime = "/v1/time"
)

// Handler is the peer HTTP endpoint. Everything served is signed and
// verified by whoever receives it; requests are rate-limited per peer,
// bodies bounded, and a peer that sends invalid records is ignored for a
// while.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathDataJSON, n.serveDataJSON)
	mux.HandleFunc("GET "+PathRecord, n.serveRecord)
	mux.HandleFunc("POST "+PathSync, n.serveSync)
	mux.HandleFunc("GET "+PathTime, n.serveTime)
	mux.HandleFunc("POST "+PathChallenge, func(w http.ResponseWriter, r *http.Request) {
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

// peerURL is the URL of path (a Path constant without wildcards) at m.
func (n *Node) peerURL(m Member, path string) string {
	return "http://" + net.JoinHostPort(m.Addr.String(), strconv.Itoa(m.HTTPPort)) + path
}

// recordPath fills PathRecord's wildcards.
func recordPath(network crdt.PublicKey, h crdt.Hash) string {
	return strings.NewReplacer("{network}", url.PathEscape(network.String()), "{hash}", h.String()).Replace(PathRecord)
}

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
	"golang.org/x/sys/unix"
)

// The control socket: one JSON request a line, one JSON answer a line, on
// a Unix socket that only root and the agent's own user may use. It is the
// command line's way in (status, hosts, resolve, export, publish, settings,
// doctor facts); it never listens on the network.

// Request is a control request.
type Request struct {
	Op      string   `json:"op"`
	Network string   `json:"network,omitempty"`
	Name    string   `json:"name,omitempty"`
	Records [][]byte `json:"records,omitempty"` // publish: encoded records
}

// Response is a control answer; Result depends on the operation.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Status is what `dm-agent status` shows.
type Status struct {
	Node      string          `json:"node"`
	Version   string          `json:"version"`
	Uptime    Duration        `json:"uptime"`
	Interface string          `json:"interface"`
	Bind      string          `json:"bind"`
	Listening []string        `json:"listening"`
	Members   int             `json:"members"`
	Synced    bool            `json:"synced"`
	Restored  int             `json:"restored_records"`
	Networks  []NetworkStatus `json:"networks"`
	DNS       DNSStatus       `json:"dns"`
}

// NetworkStatus is one joined network.
type NetworkStatus struct {
	Label       string    `json:"label"`
	ID          string    `json:"id"`
	Domain      string    `json:"domain,omitempty"`
	Priority    float64   `json:"priority"`
	HasSettings bool      `json:"has_settings"`
	Updated     time.Time `json:"settings_updated,omitzero"`
	Records     int       `json:"records"`
	Hosts       int       `json:"hosts"`
	Attestors   int       `json:"attestors"`
	Witness     bool      `json:"this_node_is_witness"`
	Names       []string  `json:"own_names"`
}

// DNSStatus counts DNS answers.
type DNSStatus struct {
	Names   int              `json:"names"`
	Queries map[string]int64 `json:"queries"`
	Fast    int64            `json:"fast_path"`
}

// HostInfo is one host of `dm-agent hosts`.
type HostInfo struct {
	Network   string    `json:"network"`
	Node      string    `json:"node"`
	Short     string    `json:"short"` // the first characters of the raw key, as logs show it
	Self      bool      `json:"self"`
	Addresses []string  `json:"addresses"`
	Heartbeat time.Time `json:"heartbeat"`
	Reachable bool      `json:"reachable"`
	Challenge string    `json:"challenge,omitempty"` // last failure
	Verified  []string  `json:"verified,omitempty"`  // addresses that passed the challenge
	Names     []string  `json:"names"`               // names it holds
	Lost      []string  `json:"lost,omitempty"`      // names it claims but does not hold
}

// Resolution explains a name.
type Resolution struct {
	Name     string   `json:"name"`
	Found    bool     `json:"found"`
	Network  string   `json:"network,omitempty"`
	Holder   string   `json:"holder,omitempty"`
	Addrs    []string `json:"addresses,omitempty"`
	Extra    []string `json:"extra,omitempty"`
	Why      string   `json:"why"`
	Contest  []Claim  `json:"claims,omitempty"`
	Override bool     `json:"override,omitempty"`
}

// Claim is one claim's standing on a name.
type Claim struct {
	Node      string    `json:"node"`
	Attested  bool      `json:"attested"`
	Time      time.Time `json:"time,omitzero"`
	By        string    `json:"by,omitempty"`
	HostLive  bool      `json:"host_live"`
	Active    bool      `json:"active"`
	Reachable bool      `json:"reachable"`
}

// PublishResult says what published records did.
type PublishResult struct {
	Added      int      `json:"added"`
	Known      int      `json:"known"`
	Superseded int      `json:"superseded"`
	Rejected   []string `json:"rejected,omitempty"`
}

// Facts are what doctor asks the running agent.
type Facts struct {
	Status     Status        `json:"status"`
	Challenges []Challenge   `json:"challenges"`
	Skew       []PeerSkew    `json:"skew"`
	OwnNames   []OwnName     `json:"own_names"`
	Attestors  []AttestorMsg `json:"attestors"`
}

// Challenge is one address's reachability verdict.
type Challenge struct {
	Node  string `json:"node"`
	Addr  string `json:"addr"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// PeerSkew is a peer's clock against ours.
type PeerSkew struct {
	Peer string   `json:"peer"`
	Skew Duration `json:"skew"`
	Err  string   `json:"error,omitempty"`
}

// OwnName is one of this node's names and who holds it.
type OwnName struct {
	Network string    `json:"network"`
	Name    string    `json:"name"`
	Won     bool      `json:"won"`
	Holder  string    `json:"holder,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Pending string    `json:"pending,omitempty"` // why it is not active yet
}

// AttestorMsg says whether a network's attestors can be reached.
type AttestorMsg struct {
	Network string `json:"network"`
	What    string `json:"what"`
	OK      bool   `json:"ok"`
	Detail  string `json:"detail"`
}

func (a *Agent) startControl(ctx context.Context, run func(func(context.Context))) error {
	path := a.cfg.ControlSocket
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s is in use: is another dm-agent running?", path)
	}
	_ = os.Remove(path)
	old := unix.Umask(0o177) // the socket is created 0600
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	run(func(ctx context.Context) {
		go func() { <-ctx.Done(); l.Close() }()
		for {
			c, err := l.Accept()
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("control socket", "err", err)
				}
				_ = os.Remove(path)
				return
			}
			go a.serveControl(ctx, c.(*net.UnixConn))
		}
	})
	return nil
}

// peerAllowed checks the credentials of the process at the other end.
func peerAllowed(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not use the control socket", cred.Uid)
	}
	return nil
}

func (a *Agent) serveControl(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	if err := peerAllowed(c); err != nil {
		a.log.Warn("control socket: refused a client", "err", err)
		_ = json.NewEncoder(c).Encode(Response{Error: err.Error()})
		return
	}
	r := bufio.NewReader(c)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req Request
		var resp Response
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Error = "bad request: " + err.Error()
		} else {
			res, err := a.control(ctx, req)
			if err != nil {
				resp.Error = err.Error()
			} else {
				resp.OK = true
				resp.Result, _ = json.Marshal(res)
			}
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func (a *Agent) network(s string) (crdt.PublicKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.nets {
		if n.Label == s {
			return n.ID, nil
		}
	}
	id, err := crdt.ParsePublicKey(s)
	if err != nil {
		return id, fmt.Errorf("network %q is neither a configured label nor a key", s)
	}
	if !slices.ContainsFunc(a.nets, func(j Joined) bool { return j.ID == id }) {
		return id, fmt.Errorf("network %s is not joined", id.Short())
	}
	return id, nil
}

func (a *Agent) control(ctx context.Context, req Request) (any, error) {
	switch req.Op {
	case "status":
		return a.status(), nil
	case "hosts":
		return a.hosts(), nil
	case "resolve":
		return a.resolve(req.Name), nil
	case "export":
		ids := []crdt.PublicKey{}
		if req.Network != "" {
			id, err := a.network(req.Network)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		var b []byte
		var err error
		a.store.Read(func(st *crdt.State) {
			if len(ids) == 0 {
				ids = st.Joined()
			}
			b, err = crdt.EncodeDataJSON(st, ids...)
		})
		return string(b), err
	case "settings":
		id, err := a.network(req.Network)
		if err != nil {
			return nil, err
		}
		var raw []byte
		a.store.Read(func(st *crdt.State) {
			if s := st.Settings(id); s != nil {
				raw = s.Bytes()
			}
		})
		return raw, nil
	case "publish":
		var recs []*crdt.Record
		for _, raw := range req.Records {
			r, err := crdt.DecodeRecord(raw)
			if err != nil {
				return nil, err
			}
			recs = append(recs, r)
		}
		res := a.node.Publish(recs...)
		// Acknowledge only what is on disk.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := a.persist.wait(wctx); err != nil {
			return nil, fmt.Errorf("records taken but not yet on disk: %w", err)
		}
		out := PublishResult{Added: res.Added, Known: res.Known, Superseded: res.Superseded}
		for _, r := range res.Rejected {
			out.Rejected = append(out.Rejected, r.Error())
		}
		return out, nil
	case "facts":
		return a.facts(ctx), nil
	}
	return nil, fmt.Errorf("unknown operation %q", req.Op)
}

func (a *Agent) status() Status {
	s := Status{Node: a.key.Public().AuthorizedKey(), Version: Version, Uptime: Duration(a.now().Sub(a.started)),
		Interface: a.cfg.Interface, Bind: a.bind.String(), Restored: a.restored}
	a.mu.Lock()
	for _, addr := range a.bound {
		s.Listening = append(s.Listening, addr)
	}
	nets := slices.Clone(a.nets)
	a.mu.Unlock()
	sort.Strings(s.Listening)
	if a.node != nil {
		s.Members = len(a.node.Members())
		s.Synced = a.node.Synced()
	}
	a.store.Read(func(st *crdt.State) {
		for _, n := range nets {
			ns := NetworkStatus{Label: n.Label, ID: n.ID.AuthorizedKey(), Priority: n.Priority, Records: st.Len(n.ID),
				Hosts: len(st.Hosts(n.ID))}
			if set := st.Settings(n.ID); set != nil {
				ns.HasSettings, ns.Domain, ns.Updated = true, set.Settings().Domain, set.Settings().Updated
				ns.Attestors = len(set.Settings().Witnesses) + len(set.Settings().TSARoots)
				ns.Witness = st.Trust(n.ID).IsWitness(a.key.Public())
			}
			for _, c := range st.Claims(n.ID, a.key.Public()) {
				ns.Names = append(ns.Names, c.Claim().Name)
			}
			s.Networks = append(s.Networks, ns)
		}
	})
	s.DNS.Names = len(a.view.Load().Names)
	if a.dns != nil {
		s.DNS.Queries = map[string]int64{}
		h := a.dns.Handler()
		for _, r := range []dnsserver.Result{dnsserver.ResultAnswer, dnsserver.ResultNoData, dnsserver.ResultNXDomain,
			dnsserver.ResultRefused, dnsserver.ResultError, dnsserver.ResultForwarded} {
			s.DNS.Queries[r.String()] = h.Count(r)
		}
		s.DNS.Fast = a.dns.FastAnswers()
	}
	return s
}

func (a *Agent) hosts() []HostInfo {
	var out []HostInfo
	now := a.now()
	a.mu.Lock()
	nets := slices.Clone(a.nets)
	a.mu.Unlock()
	type hostKey struct{ network, node crdt.PublicKey }
	failures := map[hostKey]string{}
	verified := map[hostKey][]string{}
	if a.prober != nil {
		for _, st := range a.prober.Statuses() {
			k := hostKey{st.Network, st.Node}
			if st.OK {
				verified[k] = append(verified[k], st.Addr.String())
			} else {
				failures[k] = st.Err.Error()
			}
		}
	}
	a.store.Read(func(st *crdt.State) {
		for _, n := range nets {
			for _, h := range st.Hosts(n.ID) {
				host := h.Host()
				hi := HostInfo{Network: n.Label, Node: host.Node.AuthorizedKey(), Short: host.Node.Short(), Self: host.Node == a.key.Public(),
					Heartbeat: host.Heartbeat, Challenge: failures[hostKey{n.ID, host.Node}], Verified: verified[hostKey{n.ID, host.Node}]}
				slices.Sort(hi.Verified)
				hi.Reachable = hi.Self || (a.prober != nil && a.prober.Reachable(n.ID, host.Node))
				for _, ad := range host.Addresses {
					hi.Addresses = append(hi.Addresses, ad.String())
				}
				for _, c := range st.Claims(n.ID, host.Node) {
					ns := st.NameStatus(n.ID, c.Claim().Name, now)
					if ns.Holder == host.Node {
						hi.Names = append(hi.Names, c.Claim().Name)
					} else {
						hi.Lost = append(hi.Lost, c.Claim().Name)
					}
				}
				out = append(out, hi)
			}
		}
	})
	return out
}

func (a *Agent) resolve(name string) Resolution {
	fqdn := strings.ToLower(strings.TrimSuffix(name, "."))
	r := Resolution{Name: fqdn}
	v := a.view.Load()
	if e := v.Names[fqdn]; e != nil {
		r.Found = true
		r.Network = e.Network.AuthorizedKey()
		if !e.Node.IsZero() {
			r.Holder = e.Node.AuthorizedKey()
		}
		for _, ad := range e.Addrs {
			r.Addrs = append(r.Addrs, ad.String())
		}
		for _, x := range e.Extra {
			r.Extra = append(r.Extra, x.Type.String()+" "+x.Data)
		}
	}
	// Explain: which network's zone, and how every claim on it stands.
	a.mu.Lock()
	nets := slices.Clone(a.nets)
	a.mu.Unlock()
	a.store.Read(func(st *crdt.State) {
		for _, n := range nets {
			set := st.Settings(n.ID)
			if set == nil {
				continue
			}
			dom := set.Settings().Domain
			rel, ok := strings.CutSuffix(fqdn, "."+dom)
			if !ok {
				continue
			}
			ns := st.NameStatus(n.ID, rel, a.now())
			r.Override = r.Override || ns.Override
			for _, c := range ns.Claims {
				cl := Claim{Node: c.Node.AuthorizedKey(), Attested: c.Attested, Time: c.Time, HostLive: c.HostLive, Active: c.Active,
					Reachable: c.Node == a.key.Public() || (a.prober != nil && a.prober.Reachable(n.ID, c.Node))}
				if c.Attested {
					cl.By = c.By.String()
				}
				r.Contest = append(r.Contest, cl)
			}
		}
	})
	switch {
	case r.Found && r.Override:
		r.Why = "assigned by the network admin's override"
	case r.Found && r.Holder != "":
		r.Why = "held by the earliest attested active claim"
	case r.Found:
		r.Why = "an admin-defined record"
	case len(r.Contest) == 0:
		r.Why = "nobody claims this name in a joined network"
	default:
		r.Why = "claimed, but no claim is active and reachable here (not attested yet, host gone, or failing the reachability challenge)"
	}
	return r
}

var errNoAgent = errors.New("no running dm-agent answered on the control socket")

// Client talks to a running agent over its control socket.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s): is the agent running? (systemctl status data-mesher)", errNoAgent, path)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("control socket %s: permission denied: run as root or as the agent's user", path)
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Client{conn: c, r: bufio.NewReader(c)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Call sends req and decodes the result into out.
func (c *Client) Call(req Request, out any) error {
	_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the agent's answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return err
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	if out != nil {
		return json.Unmarshal(resp.Result, out)
	}
	return nil
}

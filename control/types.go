package control

import "time"

// The wire types of the control API. Field names are the API's: the
// command line's --json output uses them unchanged. Durations are numbers
// of seconds; keys are in the "ssh-ed25519 AAAA…" form people paste into
// configuration.

// Status is what `dm-agent status` shows.
type Status struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Uptime is seconds since the agent started.
	Uptime float64 `json:"uptime_seconds"`
	// Waiting says what the agent waits for before it can run the mesh
	// (e.g. its interface to have an address); empty once it runs.
	Waiting   string          `json:"waiting,omitempty"`
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
	Short     string    `json:"short"` // crdt.PublicKey.Short: the 8 characters logs and tables show
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
	Peer string `json:"peer"`
	// Skew is their clock minus ours, in seconds.
	Skew float64 `json:"skew_seconds"`
	Err  string  `json:"error,omitempty"`
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

// publishRequest is the body of POST /v1/publish: encoded records.
type publishRequest struct {
	Records [][]byte `json:"records"`
}

// settingsResponse is the answer of GET /v1/settings: the encoded
// settings record, absent when the agent has none yet.
type settingsResponse struct {
	Record []byte `json:"record,omitempty"`
}

// errorResponse is the body of every answer that is not 200.
type errorResponse struct {
	Error string `json:"error"`
}

// Namespace is a namespace a network's settings declare.
type Namespace struct {
	Network string `json:"network"`
	Name    string `json:"name"`
	Writers string `json:"writers"` // admin, members, keys, owner
	// WriterKeys are the keys that may write when Writers is "keys".
	WriterKeys          []string `json:"writer_keys,omitempty"`
	Policy              string   `json:"policy"` // lww, fww, gset, orset, log
	MaxValue            int      `json:"max_value_bytes"`
	MaxEntriesPerWriter int      `json:"max_entries_per_writer"`
	// Lifetime is how long an entry lives after it is written, in
	// seconds; 0: no lifetime.
	Lifetime float64 `json:"lifetime_seconds"`
}

// DataItem is one resolved entry of a namespace.
type DataItem struct {
	Writer string    `json:"writer"`
	Time   time.Time `json:"time"`
	Hash   string    `json:"hash"`
	// Value is the value when it is UTF-8 text; ValueBase64 otherwise.
	Value       *string `json:"value,omitempty"`
	ValueBase64 []byte  `json:"value_base64,omitempty"`
	Deleted     bool    `json:"deleted,omitempty"`
	Seq         uint64  `json:"seq,omitempty"` // log entries
	// Standing is a first-writer-wins entry's place in the contest for its
	// key: holds, later, unattested, host-not-live.
	Standing   string    `json:"standing,omitempty"`
	AttestedAt time.Time `json:"attested_at,omitzero"`
}

// DataKey is what one key of a namespace holds, resolved by its policy:
// lww the latest write; fww every contender, the holder first; sets the
// live elements; log the entries in order.
type DataKey struct {
	// Owner is the writer whose key-space holds Key, in owner namespaces.
	Owner   string     `json:"owner,omitempty"`
	Key     string     `json:"key"`
	Deleted bool       `json:"deleted,omitempty"`
	Items   []DataItem `json:"items"`
}

// DataList is a namespace's content.
type DataList struct {
	Namespace Namespace `json:"namespace"`
	Keys      []DataKey `json:"keys"`
}

// DataWrite is a put or a delete the agent signs with its node key.
type DataWrite struct {
	Network   string `json:"network"`
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// Value is what a put writes (empty for a delete).
	Value []byte `json:"value,omitempty"`
	// Delete deletes the key (lww, fww: this node's write; orset: the
	// adds of Owner, this node by default, that the agent holds).
	Delete bool `json:"delete,omitempty"`
	// Owner is whose adds an orset delete removes (only the network's admin
	// may remove another writer's; default this node).
	Owner string `json:"owner,omitempty"`
}

// DataWritten says what a write did.
type DataWritten struct {
	Hash  string `json:"hash"`
	Added bool   `json:"added"`
	// Refused says why the mesh refuses the write (e.g. not-writer).
	Refused string `json:"refused,omitempty"`
}

// DataChange is one line of a watch: a key whose content changed, with all
// it holds now (no items: it holds nothing any more).
type DataChange struct {
	Network   string  `json:"network"`
	Namespace string  `json:"namespace"`
	Change    DataKey `json:"change"`
}

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

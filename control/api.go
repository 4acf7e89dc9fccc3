package control

import (
	"context"
	"errors"

	"github.com/data-mesher/data-mesher/crdt"
)

// The routes of the control API, each defined once, with what it answers:
//
//	GET  /v1/status                 Status
//	GET  /v1/hosts                  []HostInfo
//	GET  /v1/resolve?name=N         Resolution
//	GET  /v1/export[?network=N]     data.json of the joined networks
//	GET  /v1/settings?network=N     a network's settings record
//	POST /v1/publish                PublishResult (records in, on disk when answered)
//	GET  /v1/facts                  Facts (what doctor asks)
//	GET  /v1/namespaces?network=N   []Namespace (what the settings declare)
//	GET  /v1/data?network=N&namespace=NS[&key=K[&owner=O]]
//	                                DataList (one key's, with key)
//	POST /v1/data                   DataWritten (a DataWrite in, signed by the node key)
//	GET  /v1/data/watch?network=N&namespace=NS
//	                                one DataChange per line, as keys change
//
// A network is named by its label in the configuration or by its key.
const (
	pathStatus   = "/v1/status"
	pathHosts    = "/v1/hosts"
	pathResolve  = "/v1/resolve"
	pathExport   = "/v1/export"
	pathSettings = "/v1/settings"
	pathPublish  = "/v1/publish"
	pathFacts    = "/v1/facts"
	pathSpaces   = "/v1/namespaces"
	pathData     = "/v1/data"
	pathWatch    = "/v1/data/watch"
)

// Backend is what the agent answers with; the server turns requests into
// these calls and their results into answers.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Hosts(ctx context.Context) ([]HostInfo, error)
	Resolve(ctx context.Context, name string) (Resolution, error)
	// Export is data.json of one network (its label or key), or of all
	// joined networks when network is "".
	Export(ctx context.Context, network string) ([]byte, error)
	// Settings is a network's current settings record, nil if it has none.
	Settings(ctx context.Context, network string) (*crdt.Record, error)
	// Publish ingests records made elsewhere (settings from the admin) and
	// returns once what was added is on disk.
	Publish(ctx context.Context, recs []*crdt.Record) (PublishResult, error)
	Facts(ctx context.Context) (Facts, error)

	// Namespaces lists what a network's settings declare.
	Namespaces(ctx context.Context, network string) ([]Namespace, error)
	// Data reads a namespace, or one key of it.
	Data(ctx context.Context, q DataQuery) (DataList, error)
	// Write signs a put or delete with the node's key, ingests it and
	// spreads it, and returns once it is on disk.
	Write(ctx context.Context, w DataWrite) (DataWritten, error)
	// Watch calls send with every change of a namespace's keys, from now
	// on, until ctx ends or send fails.
	Watch(ctx context.Context, network, namespace string, send func(DataChange) error) error
}

// DataQuery names a namespace, and perhaps one key of it.
type DataQuery struct {
	Network, Namespace string
	// Key, if set, is the one key to read; Owner the writer whose
	// key-space holds it in an owner namespace.
	Key, Owner string
}

// Errors a Backend returns, and a Client returns in turn (check with
// errors.Is); any other error is an internal failure.
var (
	// ErrBadRequest: the request itself is wrong (a bad record, a missing
	// name).
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: the network is not joined, or the thing asked for does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotReady: the agent cannot answer this yet (it is still waiting
	// for its interface; Status says for what).
	ErrNotReady = errors.New("not ready")
	// ErrNoAgent: nothing answers on the socket.
	ErrNoAgent = errors.New("no running dm-agent answered on the control socket")
)

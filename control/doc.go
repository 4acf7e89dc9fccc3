// Package control is the agent's local control API: its wire types
// (types.go), its routes and the Backend the agent implements (api.go),
// the server side the agent mounts on its Unix socket (server.go), and a
// typed client (client.go) that the command line and doctor use.
//
// It is HTTP over a Unix socket that only root and the agent's own user
// may use, never exposed on the network; `curl --unix-socket SOCKET
// http://dm-agent/v1/status` works too. It imports crdt for record types
// and nothing else of data-mesher.
package control

// Package doctor is `dm-agent doctor`: a list of named checks (checks.go),
// each a small function from what was gathered about the node to a verdict
// and a remedy a person can act on; Run, which gathers once and runs them
// in parallel (check.go); and the probes of the machine they read
// (probes.go: the interface, the running agent's facts over the control
// API, DNS queries, resolvectl, /proc), injected so that every check is
// table-tested.
//
// It imports agent (the configuration, key and state-file formats),
// control and wg; nothing imports it but the command line.
package doctor

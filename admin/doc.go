// Package admin builds a network's signed settings: the admin's edits
// (bans, allow-list, witnesses, timestamp authorities, overrides, extra
// records, TTLs) applied and signed in one place, like tailscale's tka
// builder, so that no caller assembles a signed record by hand; and the
// bootstrap files (data.json) that carry them.
//
// The command line uses it for `dm-agent network create` and
// `dm-agent settings`. It imports crdt and nothing else of data-mesher.
package admin

// Package dnsserver answers DNS for the mesh on the tunnel address: it is
// authoritative for each joined network's domain (A, AAAA, the admin's
// CNAME/SRV/TXT, SOA and NS at the apex) and for the reverse names of mesh
// addresses (PTR), and refuses everything else unless forwarders are
// configured: it is never an open resolver.
//
// One authoritative handler, on github.com/miekg/dns, implements every rule.
// A fast path answers the common UDP question from replies that the same
// handler produced and packed when the view was installed, so the two can
// never disagree; everything unusual (TCP, EDNS options, truncation, ANY,
// zone transfers, forwarding) goes to the handler. The view is swapped
// atomically; a query never waits for the sync path.
//
// The agent builds a Table from the crdt resolved view and calls
// Server.SetTable whenever the view changes.
package dnsserver

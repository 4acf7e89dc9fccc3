// Package dnsserver answers DNS for the mesh on the tunnel address: it is
// authoritative for each joined network's domain (A, AAAA, the admin's
// CNAME/SRV/TXT, SOA and NS at the apex) and for the reverse names of mesh
// addresses (PTR), and refuses everything else unless forwarders are
// configured: it is never an open resolver.
//
// One authoritative handler, on github.com/miekg/dns, implements every rule.
// A fast path answers the common UDP question from replies that the same
// handler produced and packed when the view was installed (a reverse name's
// PTR reply: when it is first asked), so the two can never disagree;
// everything unusual (TCP, EDNS options, truncation, ANY, zone transfers,
// forwarding) goes to the handler. The view is swapped
// atomically; a query never waits for the sync path.
//
// Replies are compressed as NSD and Knot compress them, and are byte for
// byte what those servers send for the same zone (TestRepliesEqualNSDAndKnot).
//
// The agent builds a Table from the crdt resolved view (TableOptions.NSAddrs:
// its own tunnel addresses, for the NS name) and calls Server.SetTable
// whenever the view changes; Table.WriteDNSJSON writes dns.json from the
// same table, and Table.WriteZone any of its zones as a master file.
//
// It imports crdt (the view's types) and internal/sockopt, nothing else of
// data-mesher.
package dnsserver

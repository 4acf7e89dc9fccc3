// Package e2e holds the end-to-end tests: real dm-agent binaries on real
// WireGuard (wireguard-go in network namespaces, see scripts/testbed),
// queried by real DNS clients. They need root and run only with the e2e
// build tag and DM_E2E=1:
//
//	sudo DM_E2E=1 go test -tags e2e ./scripts/e2e
package e2e

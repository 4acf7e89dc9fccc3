package agent

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/data-mesher/data-mesher/internal/sockopt"
)

// peerListener serves the mesh's peer endpoint (data.json, sync, records,
// the reachability challenge, the clock) on the tunnel address, so that
// others can sync with and challenge this node as soon as gossip
// announces it.
type peerListener struct {
	srv *http.Server
}

// start listens on addr (before the interface has it, if need be) and
// serves h until stop.
func (p *peerListener) start(ctx context.Context, addr netip.AddrPort, h http.Handler, l *slog.Logger) error {
	ln, err := sockopt.ListenTCP(ctx, addr)
	if err != nil {
		return fmt.Errorf("peer endpoint on %s: %w", addr, err)
	}
	p.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slogLogger(l, "peer endpoint")}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.Error("peer endpoint stopped", "err", err)
		}
	}()
	return nil
}

// stop closes the listener and waits (2 s at most) for requests in flight.
func (p *peerListener) stop() {
	if p.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

func slogLogger(l *slog.Logger, what string) *log.Logger {
	return slog.NewLogLogger(l.With("source", what).Handler(), slog.LevelDebug)
}

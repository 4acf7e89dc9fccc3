package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"golang.org/x/sys/unix"
)

// Listen opens the control socket at path, readable and writable by its
// owner only (root may always use it). It refuses when another agent
// answers there, and replaces a socket that nobody answers on (left by a
// crash).
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: is another dm-agent running?", path)
	}
	_ = os.Remove(path)
	old := unix.Umask(0o177) // the socket is created 0600
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

// Serve answers the control API on l until ctx ends, then closes l (and
// removes the socket file).
func Serve(ctx context.Context, l net.Listener, b Backend, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           Handler(b),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       withPeer,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Handler is the control API's HTTP handler (Serve mounts it; tests call
// it directly).
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+pathStatus, answer(func(r *http.Request) (Status, error) { return b.Status(r.Context()) }))
	mux.Handle("GET "+pathHosts, answer(func(r *http.Request) ([]HostInfo, error) { return b.Hosts(r.Context()) }))
	mux.Handle("GET "+pathResolve, answer(func(r *http.Request) (Resolution, error) {
		name := r.URL.Query().Get("name")
		if name == "" {
			return Resolution{}, fmt.Errorf("%w: no name to resolve", ErrBadRequest)
		}
		return b.Resolve(r.Context(), name)
	}))
	mux.Handle("GET "+pathExport, allowed(func(w http.ResponseWriter, r *http.Request) {
		data, err := b.Export(r.Context(), r.URL.Query().Get("network"))
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	}))
	mux.Handle("GET "+pathSettings, answer(func(r *http.Request) (settingsResponse, error) {
		rec, err := b.Settings(r.Context(), r.URL.Query().Get("network"))
		if err != nil || rec == nil {
			return settingsResponse{}, err
		}
		return settingsResponse{Record: rec.Bytes()}, nil
	}))
	mux.Handle("POST "+pathPublish, answer(func(r *http.Request) (PublishResult, error) {
		var req publishRequest
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return PublishResult{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		recs := make([]*crdt.Record, 0, len(req.Records))
		for i, raw := range req.Records {
			rec, err := crdt.DecodeRecord(raw)
			if err != nil {
				return PublishResult{}, fmt.Errorf("%w: record %d: %v", ErrBadRequest, i, err)
			}
			recs = append(recs, rec)
		}
		return b.Publish(r.Context(), recs)
	}))
	mux.Handle("GET "+pathFacts, answer(func(r *http.Request) (Facts, error) { return b.Facts(r.Context()) }))
	mux.Handle("GET "+pathSpaces, answer(func(r *http.Request) ([]Namespace, error) {
		return b.Namespaces(r.Context(), r.URL.Query().Get("network"))
	}))
	mux.Handle("GET "+pathData, answer(func(r *http.Request) (DataList, error) {
		q := r.URL.Query()
		return b.Data(r.Context(), DataQuery{Network: q.Get("network"), Namespace: q.Get("namespace"), Key: q.Get("key"), Owner: q.Get("owner")})
	}))
	mux.Handle("POST "+pathData, answer(func(r *http.Request) (DataWritten, error) {
		var w DataWrite
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return DataWritten{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return b.Write(r.Context(), w)
	}))
	mux.Handle("GET "+pathWatch, allowed(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		fl, _ := w.(http.Flusher)
		enc := json.NewEncoder(w)
		started := false
		start := func() {
			if !started {
				started = true
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
				if fl != nil {
					fl.Flush()
				}
			}
		}
		err := b.Watch(r.Context(), q.Get("network"), q.Get("namespace"), func(c DataChange) error {
			start()
			if err := enc.Encode(c); err != nil {
				return err
			}
			if fl != nil {
				fl.Flush()
			}
			return nil
		})
		if err != nil && !started && r.Context().Err() == nil {
			writeError(w, err)
		}
	}))
	return mux
}

// answer serves f's result as JSON, or its error with the status it maps
// to.
func answer[T any](f func(*http.Request) (T, error)) http.Handler {
	return allowed(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrNotReady):
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorResponse{Error: err.Error()})
}

// The peer check: only root and the agent's own user may use the socket.
// Its 0600 mode says the same; this holds even if the mode is changed.

type peerKey struct{}

func withPeer(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerAllowed(c))
}

func allowed(f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err, _ := r.Context().Value(peerKey{}).(error); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(errorResponse{Error: err.Error()})
			return
		}
		f(w, r)
	})
}

// peerAllowed checks the credentials of the process at the other end of
// the connection; the control API is served on a Unix socket only.
func peerAllowed(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("the control API answers on its Unix socket only, not on %s", c.LocalAddr().Network())
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not use the control socket", cred.Uid)
	}
	return nil
}

package mesh

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/digitorus/timestamp"
)

// TSAClient asks RFC 3161 timestamp authorities for tokens over HTTP. It
// tries each URL in order, retries each with exponential back-off, and keeps
// a token only if it answers our request (same nonce) and verifies against
// the roots the network pins, so what it returns is worth spreading.
type TSAClient struct {
	// HTTP does the requests (default: a client without proxy settings
	// beyond the environment's, with Timeout per request).
	HTTP *http.Client
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
	// Attempts per URL before falling back to the next (default 3).
	Attempts int
	// Backoff is the first wait between attempts at one URL; it doubles
	// after each failure (default 1 s).
	Backoff time.Duration
	// MaxReply bounds a reply's size (default 64 KiB; a token with its
	// certificate chain is about 1.5 KiB).
	MaxReply int64
	Logger   *slog.Logger
}

func (c *TSAClient) defaults() (time.Duration, int, time.Duration, int64, *slog.Logger) {
	timeout, attempts, backoff, max, log := c.Timeout, c.Attempts, c.Backoff, c.MaxReply, c.Logger
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if attempts <= 0 {
		attempts = 3
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	if max <= 0 {
		max = 64 << 10
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return timeout, attempts, backoff, max, log
}

// ErrNoTSA is returned when a network lists no TSA URL.
var ErrNoTSA = errors.New("the network's settings list no timestamp authority URL")

// Stamp returns a verified token over claim from the first authority in urls
// that gives one. The error of the last attempt is returned when none does.
func (c *TSAClient) Stamp(ctx context.Context, urls []string, claim crdt.Hash, trust *crdt.Trust) ([]byte, string, error) {
	if len(urls) == 0 {
		return nil, "", ErrNoTSA
	}
	_, attempts, backoff, _, log := c.defaults()
	var last error
	for _, u := range urls {
		wait := backoff
		for a := 1; a <= attempts; a++ {
			tok, err := c.stampOnce(ctx, u, claim, trust)
			if err == nil {
				return tok, u, nil
			}
			last = fmt.Errorf("timestamp authority %s: %w", u, err)
			log.Debug("timestamp request failed", "url", u, "attempt", a, "err", err)
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			var permanent *permanentError
			if errors.As(err, &permanent) || a == attempts {
				break
			}
			select {
			case <-ctx.Done():
				return nil, "", ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
	}
	return nil, "", last
}

// permanentError marks failures that retrying the same URL cannot fix (the
// authority answered, but with a token we cannot use).
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

func (c *TSAClient) stampOnce(ctx context.Context, url string, claim crdt.Hash, trust *crdt.Trust) ([]byte, error) {
	timeout, _, _, maxReply, _ := c.defaults()
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("making a nonce: %w", err)
	}
	req := timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: claim[:], Certificates: true, Nonce: nonce}
	body, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &permanentError{err}
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hreq.Header.Set("Accept", "application/timestamp-reply")
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	if int64(len(reply)) > maxReply {
		return nil, &permanentError{fmt.Errorf("reply larger than %d bytes", maxReply)}
	}
	ts, err := timestamp.ParseResponse(reply)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("reply: %w", err)}
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, &permanentError{errors.New("reply does not carry our nonce")}
	}
	if _, err := (crdt.TSAVerifier{}).VerifyToken(ts.RawToken, claim, trust); err != nil {
		return nil, &permanentError{err}
	}
	return ts.RawToken, nil
}

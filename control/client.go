package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Client talks to a running agent over its control socket. Its methods
// return the API's types, and errors that wrap ErrNoAgent, ErrBadRequest,
// ErrNotFound or ErrNotReady where those apply.
type Client struct {
	path string
	http *http.Client
	// stream is http without a timeout, for watches.
	stream *http.Client
	// waitReady is how long a call the agent answers with ErrNotReady is
	// retried; notReady hears the first such answer's reason.
	waitReady time.Duration
	notReady  func(reason string, wait time.Duration)
}

// NewClient returns a client of the agent whose control socket is at path.
// Nothing is dialled until the first call.
func NewClient(path string) *Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	return &Client{path: path, stream: &http.Client{Transport: tr}, http: &http.Client{
		Transport: tr,
		// Publishing waits until the records are on disk; doctor's facts
		// ask peers for their clocks. Nothing legitimate takes longer.
		Timeout: 60 * time.Second,
	}}
}

// WaitReady makes a call that the agent answers with ErrNotReady (it is
// starting: loading its state, starting the mesh, waiting for its
// interface) try again until d has passed or the call's context ends, and
// then return the last answer. notify, when not nil, hears the agent's
// reason once per call, at its first such answer. The default, 0, returns
// ErrNotReady at once.
func (c *Client) WaitReady(d time.Duration, notify func(reason string, wait time.Duration)) {
	c.waitReady, c.notReady = d, notify
}

// Close releases the client's idle connection to the agent.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Status is the running agent's state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.get(ctx, pathStatus, nil, &s)
}

// Hosts lists the hosts of the joined networks.
func (c *Client) Hosts(ctx context.Context) ([]HostInfo, error) {
	var hs []HostInfo
	return hs, c.get(ctx, pathHosts, nil, &hs)
}

// Resolve explains how name resolves on the agent's node.
func (c *Client) Resolve(ctx context.Context, name string) (Resolution, error) {
	var r Resolution
	return r, c.get(ctx, pathResolve, url.Values{"name": {name}}, &r)
}

// Export is data.json of one network (label or key), or of all joined
// networks when network is "".
func (c *Client) Export(ctx context.Context, network string) ([]byte, error) {
	q := url.Values{}
	if network != "" {
		q.Set("network", network)
	}
	var raw json.RawMessage
	err := c.get(ctx, pathExport, q, &raw)
	return raw, err
}

// Settings is a network's current settings record (nil, nil if the agent
// has none yet).
func (c *Client) Settings(ctx context.Context, network string) (*crdt.Record, error) {
	var r settingsResponse
	if err := c.get(ctx, pathSettings, url.Values{"network": {network}}, &r); err != nil {
		return nil, err
	}
	if r.Record == nil {
		return nil, nil
	}
	rec, err := crdt.DecodeRecord(r.Record)
	if err != nil {
		return nil, fmt.Errorf("the agent's settings record: %w", err)
	}
	return rec, nil
}

// Publish hands records to the agent, which verifies them like any record
// from the network, spreads the new ones, and answers once they are on
// disk.
func (c *Client) Publish(ctx context.Context, recs ...*crdt.Record) (PublishResult, error) {
	req := publishRequest{}
	for _, r := range recs {
		req.Records = append(req.Records, r.Bytes())
	}
	body, err := json.Marshal(req)
	if err != nil {
		return PublishResult{}, err
	}
	var res PublishResult
	return res, c.do(ctx, http.MethodPost, pathPublish, nil, body, &res)
}

// Facts is what doctor asks the running agent.
func (c *Client) Facts(ctx context.Context) (Facts, error) {
	var f Facts
	return f, c.get(ctx, pathFacts, nil, &f)
}

// Namespaces lists what a network's settings declare.
func (c *Client) Namespaces(ctx context.Context, network string) ([]Namespace, error) {
	var ns []Namespace
	return ns, c.get(ctx, pathSpaces, url.Values{"network": {network}}, &ns)
}

// Data reads a namespace, or one key of it.
func (c *Client) Data(ctx context.Context, q DataQuery) (DataList, error) {
	v := url.Values{"network": {q.Network}, "namespace": {q.Namespace}}
	if q.Key != "" {
		v.Set("key", q.Key)
	}
	if q.Owner != "" {
		v.Set("owner", q.Owner)
	}
	var l DataList
	return l, c.get(ctx, pathData, v, &l)
}

// Write has the agent sign and publish a put or delete.
func (c *Client) Write(ctx context.Context, w DataWrite) (DataWritten, error) {
	body, err := json.Marshal(w)
	if err != nil {
		return DataWritten{}, err
	}
	var res DataWritten
	return res, c.do(ctx, http.MethodPost, pathData, nil, body, &res)
}

// Watch calls f with every change of a namespace's keys until ctx ends
// (then it returns nil), f fails, or the agent goes away.
func (c *Client) Watch(ctx context.Context, network, namespace string, f func(DataChange) error) error {
	u := "http://dm-agent" + pathWatch + "?" + url.Values{"network": {network}, "namespace": {namespace}}.Encode()
	var resp *http.Response
	err := c.retry(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if resp, err = c.stream.Do(req); err != nil {
			return c.dialError(err)
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			return c.answerError(resp)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ch DataChange
		if err := dec.Decode(&ch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the agent ended the watch (it stopped?)")
			}
			return fmt.Errorf("reading the watch: %w", err)
		}
		if err := f(ch); err != nil {
			return err
		}
	}
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, out)
}

// do makes one call, tried again while the agent is not ready (WaitReady).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	return c.retry(ctx, func() error { return c.once(ctx, method, path, q, body, out) })
}

// retry calls try again while it fails with ErrNotReady, for at most
// waitReady, pausing a little longer each time (up to a second).
func (c *Client) retry(ctx context.Context, try func() error) error {
	err := try()
	if c.waitReady <= 0 || !errors.Is(err, ErrNotReady) {
		return err
	}
	if c.notReady != nil {
		c.notReady(trimKind(err.Error(), ErrNotReady), c.waitReady)
	}
	deadline := time.Now().Add(c.waitReady)
	pause := 50 * time.Millisecond
	for errors.Is(err, ErrNotReady) && time.Now().Before(deadline) {
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
		err = try()
	}
	return err
}

func (c *Client) once(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	u := "http://dm-agent" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("reading the agent's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return answerError(resp.Status, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the agent's answer to %s: %w", path, err)
	}
	return nil
}

// answerError turns an answer that is not 200 into the error it carries.
func (c *Client) answerError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return answerError(resp.Status, resp.StatusCode, data)
}

func answerError(status string, code int, data []byte) error {
	var e errorResponse
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = status
	}
	switch code {
	case http.StatusBadRequest:
		return fmt.Errorf("%w: %s", ErrBadRequest, trimKind(e.Error, ErrBadRequest))
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, trimKind(e.Error, ErrNotFound))
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", ErrNotReady, trimKind(e.Error, ErrNotReady))
	}
	return errors.New(e.Error)
}

// trimKind drops the sentinel's text the server put in front of a message,
// so that wrapping it again does not say it twice.
func trimKind(msg string, kind error) string {
	if p := kind.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (%s): is the agent running? (systemctl status data-mesher)", ErrNoAgent, c.path)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("control socket %s: permission denied: run as root or as the agent's user", c.path)
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}

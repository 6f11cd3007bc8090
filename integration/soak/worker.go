package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/mysql"
	"github.com/secretsaga/secretsaga/shared/client/pgsql"
	"github.com/secretsaga/secretsaga/shared/client/redis"
)

// outage follows one worker's requests in time order and keeps the longest
// stretch during which none succeeded: from the first failure after a
// success (or the start) to the next success.
type outage struct {
	downSince time.Time // zero while up
	longest   time.Duration
}

func (o *outage) record(ok bool, at time.Time) {
	switch {
	case ok && !o.downSince.IsZero():
		o.longest = max(o.longest, at.Sub(o.downSince))
		o.downSince = time.Time{}
	case !ok && o.downSince.IsZero():
		o.downSince = at
	}
}

// end closes an outage still open when the worker stops.
func (o *outage) end(at time.Time) {
	o.record(true, at)
}

// workerStats are one worker's counts.
type workerStats struct {
	Requests    int64         `json:"requests"`
	Failed      int64         `json:"failed"`
	Connections int64         `json:"connectionsOpened"`
	Longest     time.Duration `json:"longestOutageNs"`
	FirstError  string        `json:"firstError,omitempty"`
	// FailedDuring counts failed requests by the kind of rotation in
	// flight on the secret when they were sent ("" : none).
	FailedDuring map[string]int64 `json:"failedDuring,omitempty"`
	// Refused counts the failed requests in which the server refused a
	// login (the rest timed out or could not connect, no login refused).
	Refused int64 `json:"failedRefused"`
	// Failures are the first failed requests, with when and why.
	Failures []failure `json:"failures,omitempty"`
}

// failure is one failed request.
type failure struct {
	At      string `json:"at"`
	During  string `json:"during,omitempty"`
	Refused bool   `json:"loginRefused"`
	Error   string `json:"error"`
}

// keptFailures bounds the failures kept per worker and per mode.
const keptFailures = 10

// loginRefused reports whether a failed request's error is, or followed, a
// login the server refused: the client's own kinds, or the driver's
// refusal as the naive application sees it.
func loginRefused(err error) bool {
	return errors.Is(err, client.ErrAuthFailed) || errors.Is(err, client.ErrInterrupted) ||
		pgsql.IsAuthFailure(err) || mysql.IsAuthFailure(err) || redis.IsAuthFailure(err)
}

// pool is one application instance's connection pool: a request is one
// query on a connection of the pool, which opens new ones continually
// (their lifetime is short), as a real pool does over hours.
type pool interface {
	request(ctx context.Context) error
	close() error
}

type sqlPool struct{ db *sql.DB }

func (p sqlPool) request(ctx context.Context) error {
	var one int
	return p.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
func (p sqlPool) close() error { return p.db.Close() }

type redisPool struct{ c *goredis.Client }

func (p redisPool) request(ctx context.Context) error { return p.c.Ping(ctx).Err() }
func (p redisPool) close() error                      { return p.c.Close() }

// poolOptions shape every pool alike, whatever the dialer.
type poolOptions struct {
	Size     int           // connections at most
	Lifetime time.Duration // a connection's life: new logins this often
}

// countingConnector counts the connections a database/sql pool opens.
type countingConnector struct {
	driver.Connector
	n *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.n.Add(1)
	return c.Connector.Connect(ctx)
}

// Close passes DB.Close on to a connector that holds resources.
func (c countingConnector) Close() error {
	if cl, ok := c.Connector.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}

// openPool builds one pool for the secret through d.
func openPool(ctx context.Context, d Dialer, engine, secretID string, o poolOptions, opened *atomic.Int64) (pool, error) {
	if engine == "redis" {
		var nd net.Dialer
		base := &goredis.Options{
			Protocol: 2, DisableIdentity: true, // the fixtures' users may not run HELLO 3 or CLIENT SETINFO
			PoolSize: o.Size, ConnMaxLifetime: o.Lifetime, ConnMaxIdleTime: o.Lifetime,
			// A refused request is counted, not hidden by go-redis's retries.
			DialTimeout: 5 * time.Second, MaxRetries: -1, DialerRetries: 1,
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				opened.Add(1)
				return nd.DialContext(ctx, network, addr)
			},
		}
		c, err := d.Redis(ctx, secretID, base)
		if err != nil {
			return nil, err
		}
		return redisPool{c}, nil
	}
	conn, err := d.Connector(ctx, engine, secretID)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(countingConnector{Connector: conn, n: opened})
	db.SetMaxOpenConns(o.Size)
	db.SetMaxIdleConns(o.Size)
	db.SetConnMaxLifetime(o.Lifetime)
	return sqlPool{db}, nil
}

// worker is one application instance: it sends a request every interval
// until stopped and counts what it saw.
type worker struct {
	pool    pool
	every   time.Duration
	timeout time.Duration
	opened  *atomic.Int64
	// phase is the kind of rotation in flight on the worker's secret.
	phase *atomic.Pointer[string]

	mu    sync.Mutex
	stats workerStats
	out   outage
}

func (w *worker) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		during := ""
		if p := w.phase.Load(); p != nil {
			during = *p
		}
		rctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.pool.request(rctx)
		cancel()
		if ctx.Err() != nil {
			return // the soak ended: this request does not count
		}
		w.mu.Lock()
		w.stats.Requests++
		if err != nil {
			w.stats.Failed++
			if w.stats.FailedDuring == nil {
				w.stats.FailedDuring = map[string]int64{}
			}
			w.stats.FailedDuring[during]++
			if w.stats.FirstError == "" {
				w.stats.FirstError = err.Error()
			}
			refused := loginRefused(err)
			if refused {
				w.stats.Refused++
			}
			if len(w.stats.Failures) < keptFailures {
				w.stats.Failures = append(w.stats.Failures, failure{At: time.Now().UTC().Format(time.RFC3339Nano),
					During: during, Refused: refused, Error: err.Error()})
			}
		}
		w.out.record(err == nil, time.Now())
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// result ends the worker's open outage, if any, and returns its counts.
func (w *worker) result(at time.Time) workerStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.end(at)
	s := w.stats
	s.FailedDuring = maps.Clone(s.FailedDuring)
	s.Failures = slices.Clone(s.Failures)
	s.Longest = w.out.longest
	s.Connections = w.opened.Load()
	return s
}

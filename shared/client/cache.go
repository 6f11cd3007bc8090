package client

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/sync/singleflight"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// API is the one Secrets Manager call the cache makes. The SDK's
// *secretsmanager.Client satisfies it; tests pass an in-memory fake.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Staging labels, in the order candidates are tried after a refused login.
const (
	StageCurrent  = "AWSCURRENT"
	StagePending  = "AWSPENDING"
	StagePrevious = "AWSPREVIOUS"
)

// Defaults of the options.
const (
	// DefaultTTL is how long AWSCURRENT is used before it is read again.
	DefaultTTL = 5 * time.Minute
	// DefaultMaxStale is how long past its TTL a value is still served
	// while Secrets Manager cannot be read.
	DefaultMaxStale = time.Hour
	// DefaultRefreshInterval is the shortest gap between two forced
	// refreshes of one secret: a pool whose logins all fail at once makes
	// one refresh, not one per connection.
	DefaultRefreshInterval = time.Second
	// DefaultMaxAttempts bounds the logins one connection tries: the cached
	// credential, then AWSCURRENT, AWSPENDING and AWSPREVIOUS as read again.
	DefaultMaxAttempts = 4
	// DefaultFetchTimeout bounds one refresh (up to three GetSecretValue
	// calls); the refresh is shared, so no single caller's context ends it.
	DefaultFetchTimeout = 10 * time.Second
)

// Option configures a Cache.
type Option func(*Cache)

// WithTTL sets how long AWSCURRENT is served from memory before it is read
// again (DefaultTTL). A value <= 0 keeps the default.
func WithTTL(d time.Duration) Option {
	return func(c *Cache) {
		if d > 0 {
			c.ttl = d
		}
	}
}

// WithMaxStale sets how long past its TTL a value is still served while
// refreshing it fails (DefaultMaxStale); 0 serves nothing stale.
func WithMaxStale(d time.Duration) Option {
	return func(c *Cache) {
		if d >= 0 {
			c.maxStale = d
		}
	}
}

// WithRefreshInterval sets the shortest gap between two reads of a secret
// forced by refused logins, and between two attempts after a failed read
// (DefaultRefreshInterval).
func WithRefreshInterval(d time.Duration) Option {
	return func(c *Cache) {
		if d >= 0 {
			c.refreshInterval = d
		}
	}
}

// WithMaxAttempts bounds the logins one connection tries, the first one
// included (DefaultMaxAttempts). Values below 1 keep the default.
func WithMaxAttempts(n int) Option {
	return func(c *Cache) {
		if n >= 1 {
			c.maxAttempts = n
		}
	}
}

// WithFetchTimeout bounds one refresh (DefaultFetchTimeout).
func WithFetchTimeout(d time.Duration) Option {
	return func(c *Cache) {
		if d > 0 {
			c.fetchTimeout = d
		}
	}
}

// WithLogger sets where the cache reports refreshes, stale values served
// and refused logins. Nothing it logs holds a secret value. Default: none.
func WithLogger(l *slog.Logger) Option {
	return func(c *Cache) {
		if l != nil {
			c.log = l
		}
	}
}

// Credential is one version of a secret, parsed. Its Password prints as
// [REDACTED] however it is formatted or logged.
type Credential struct {
	SecretID  string
	VersionID string
	Stage     string   // the staging label it was read by
	Stages    []string // every label the version carried when read

	Engine   string
	Host     string
	Port     int // 0 when the secret names none: the connector's default applies
	Username string
	Password secret.Password
	DBName   string
	// TLS is the secret's "tls" field; the connectors resolve it with
	// dbtls.Effective, as the rotation does.
	TLS secret.TLSMode
}

// String names the credential without its password.
func (c Credential) String() string {
	return "{secret:" + c.SecretID + " version:" + c.VersionID + " stage:" + c.Stage +
		" engine:" + c.Engine + " host:" + c.Host + " port:" + strconv.Itoa(c.Port) +
		" username:" + c.Username + " dbname:" + c.DBName + " password:" + secret.Redacted + "}"
}

// LogValue logs the credential without its password.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// same reports whether two credentials log in the same way: trying the
// second after the first was refused would be refused too.
func (c Credential) same(o Credential) bool {
	return c.Username == o.Username && c.Password.Equal(o.Password) && c.Host == o.Host &&
		c.Port == o.Port && c.DBName == o.DBName
}

// Stats are the cache's counters since New.
type Stats struct {
	GetSecretValueCalls uint64 // calls made to Secrets Manager
	RefreshErrors       uint64 // refreshes that failed
	StaleServed         uint64 // values served past their TTL because a refresh failed
	AuthFailures        uint64 // logins the server refused
	AuthRetries         uint64 // logins tried with another candidate after a refusal
	Exhausted           uint64 // connections for which the server refused every candidate
	Interrupted         uint64 // connections whose context ended before every candidate was tried
	TornReads           uint64 // reads made again because a label moved while the stages were read
	// Logins counts successful logins by the stage of the credential used.
	Logins map[string]uint64
	// Fallbacks counts successful logins after a refusal, by the stage of
	// the candidate that worked.
	Fallbacks map[string]uint64
}

// Cache holds secrets read from Secrets Manager. It is safe for concurrent
// use; make one per process and share it.
type Cache struct {
	api             API
	ttl             time.Duration
	maxStale        time.Duration
	refreshInterval time.Duration
	maxAttempts     int
	fetchTimeout    time.Duration
	log             *slog.Logger
	now             func() time.Time

	sf singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry
	logins  map[string]uint64
	falls   map[string]uint64

	calls, refreshErrors, staleServed, authFailures, authRetries, exhausted, interrupted, tornReads atomic.Uint64
}

// entry is what the cache knows of one secret.
type entry struct {
	current   *Credential // AWSCURRENT as last read
	currentAt time.Time   // when current was read
	triedAt   time.Time   // last attempt to read AWSCURRENT, successful or not
	lastErr   error       // the last failed read, while it is the newest news

	all      []Credential // AWSCURRENT, AWSPENDING, AWSPREVIOUS from the last full read
	allTry   time.Time    // last full read attempted
	allStart time.Time    // when the read that produced all started
	working  string       // version id that last logged in
}

// New returns a cache reading through api.
func New(api API, opts ...Option) *Cache {
	c := &Cache{
		api: api, ttl: DefaultTTL, maxStale: DefaultMaxStale, refreshInterval: DefaultRefreshInterval,
		maxAttempts: DefaultMaxAttempts, fetchTimeout: DefaultFetchTimeout,
		log: slog.New(slog.DiscardHandler), now: time.Now,
		entries: map[string]*entry{}, logins: map[string]uint64{}, falls: map[string]uint64{},
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		GetSecretValueCalls: c.calls.Load(), RefreshErrors: c.refreshErrors.Load(), StaleServed: c.staleServed.Load(),
		AuthFailures: c.authFailures.Load(), AuthRetries: c.authRetries.Load(), Exhausted: c.exhausted.Load(),
		Interrupted: c.interrupted.Load(), TornReads: c.tornReads.Load(),
		Logins: cloneMap(c.logins), Fallbacks: cloneMap(c.falls),
	}
}

func cloneMap(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// MaxAttempts is the bound on logins per connection.
func (c *Cache) MaxAttempts() int { return c.maxAttempts }

// Invalidate forgets a secret: the next Get reads it again.
func (c *Cache) Invalidate(secretID string) {
	c.mu.Lock()
	delete(c.entries, secretID)
	c.mu.Unlock()
}

// Get returns the credential a new connection should try first: the one
// that last logged in if Secrets Manager still lists it, else AWSCURRENT.
// AWSCURRENT is read again once its TTL has passed; if that read fails for
// a reason other than the secret itself (network, throttling), the old
// value is served for up to the max staleness.
func (c *Cache) Get(ctx context.Context, secretID string) (Credential, error) {
	if c == nil {
		return Credential{}, &Error{SecretID: secretID, Kind: ErrUnavailable, Reason: "nil *client.Cache"}
	}
	now := c.now()
	c.mu.Lock()
	e := c.entries[secretID]
	if e != nil && e.current != nil && now.Sub(e.currentAt) < c.ttl {
		cred := e.first()
		c.mu.Unlock()
		return cred, nil
	}
	// A read failed a moment ago: do not hammer Secrets Manager.
	recentFail := e != nil && e.lastErr != nil && now.Sub(e.triedAt) < c.refreshInterval
	c.mu.Unlock()

	var err error
	if recentFail {
		c.mu.Lock()
		err = e.lastErr
		c.mu.Unlock()
	} else {
		err = c.refresh(ctx, secretID, false, func(e *entry, now time.Time) bool {
			if e != nil && e.current != nil && now.Sub(e.currentAt) < c.ttl {
				return false // read by the flight that just ended
			}
			return e == nil || e.lastErr == nil || now.Sub(e.triedAt) >= c.refreshInterval
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.entries[secretID]
	if err == nil && e != nil && e.current != nil {
		return e.first(), nil
	}
	if err == nil { // the secret was invalidated meanwhile
		err = &Error{SecretID: secretID, Stage: StageCurrent, Kind: ErrUnavailable}
	}
	if !terminal(err) && e != nil && e.current != nil && now.Sub(e.currentAt) < c.ttl+c.maxStale {
		c.staleServed.Add(1)
		c.log.Warn("secretsaga client: serving a stale value while Secrets Manager cannot be read",
			"secret", secretID, "version", e.current.VersionID, "age", now.Sub(e.currentAt).Round(time.Millisecond), "error", err)
		return e.first(), nil
	}
	return Credential{}, err
}

// Candidates returns the credentials to try, in order, after the server
// refused a login: the secret is read again (all callers within the
// refresh interval share one read), then AWSCURRENT, AWSPENDING (the
// password a rotation has set on the server but not yet made current) and
// AWSPREVIOUS (the password a rotation that is being undone returns to),
// without duplicates, at most MaxAttempts of them.
func (c *Cache) Candidates(ctx context.Context, secretID string) ([]Credential, error) {
	return c.candidates(ctx, secretID, time.Time{})
}

// candidates is Candidates; with a non-zero since, it ignores the refresh
// interval and uses only a read that started at or after since. Login asks
// for that when every candidate of a recent read was refused: a rotation
// that wrote AWSPENDING and changed the server after that read (back-to-back
// rotations) is then found, at the cost of one more read.
func (c *Cache) candidates(ctx context.Context, secretID string, since time.Time) ([]Credential, error) {
	if c == nil {
		return nil, &Error{SecretID: secretID, Kind: ErrUnavailable, Reason: "nil *client.Cache"}
	}
	var err error
	// A read already in flight may have started before since: then one
	// more is needed. Three rounds are plenty; each is a shared read.
	for range 3 {
		now := c.now()
		c.mu.Lock()
		e := c.entries[secretID]
		need := func(e *entry, now time.Time) bool {
			if !since.IsZero() {
				return e == nil || e.allStart.Before(since)
			}
			return e == nil || now.Sub(e.allTry) >= c.refreshInterval
		}
		needed := need(e, now)
		c.mu.Unlock()
		if !needed {
			break
		}
		if err = c.refresh(ctx, secretID, true, need); err != nil || since.IsZero() {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[secretID]
	if err != nil && (terminal(err) || e == nil) {
		return nil, err
	}
	if e == nil {
		return nil, &Error{SecretID: secretID, Kind: ErrUnavailable}
	}
	if e.current == nil && e.lastErr != nil {
		return nil, e.lastErr // the last read failed and nothing is left to try
	}
	list := e.all
	if len(list) == 0 && e.current != nil {
		list = []Credential{*e.current}
	}
	var out []Credential
	for _, cr := range list {
		if len(out) == c.maxAttempts {
			break
		}
		if !slices.ContainsFunc(out, cr.same) {
			out = append(out, cr)
		}
	}
	if len(out) == 0 {
		if err == nil {
			err = &Error{SecretID: secretID, Kind: ErrUnavailable}
		}
		return nil, err
	}
	if err != nil {
		c.log.Warn("secretsaga client: trying the last values read while Secrets Manager cannot be read",
			"secret", secretID, "error", err)
	}
	return out, nil
}

// worked records that cred logged in: new connections try it first while
// Secrets Manager still lists it (the AWSPENDING window), and counts it.
func (c *Cache) worked(cred Credential, fallback bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logins[cred.Stage]++
	if fallback {
		c.falls[cred.Stage]++
	}
	if e := c.entries[cred.SecretID]; e != nil {
		e.working = cred.VersionID
	}
}

// first is the credential to try first. Callers hold c.mu.
func (e *entry) first() Credential {
	if e.working != "" && e.working != e.current.VersionID {
		for _, cr := range e.all {
			if cr.VersionID == e.working {
				return cr
			}
		}
	}
	return *e.current
}

// refresh reads the secret once for every caller asking at the same time.
// full reads AWSPENDING and AWSPREVIOUS as well. The read runs on a context
// of its own, bounded by the fetch timeout, so that one caller giving up
// does not fail the others; each caller still stops waiting when its own
// context ends.
//
// need is checked again once the read is this caller's to make: between a
// caller's check and its joining the flight, another read may have
// finished, and reading again then would break "one read per secret".
func (c *Cache) refresh(ctx context.Context, secretID string, full bool, need func(e *entry, now time.Time) bool) error {
	key := "current\x00" + secretID
	if full {
		key = "all\x00" + secretID
	}
	ch := c.sf.DoChan(key, func() (any, error) {
		c.mu.Lock()
		e := c.entries[secretID]
		again := need(e, c.now())
		var lastErr error
		if e != nil {
			lastErr = e.lastErr
		}
		c.mu.Unlock()
		if !again {
			return nil, lastErr
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fetchTimeout)
		defer cancel()
		return nil, c.fetch(fctx, secretID, full)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return &Error{SecretID: secretID, Kind: ErrUnavailable, Err: ctx.Err()}
	}
}

// fetch reads AWSCURRENT and, when full, the other two stages, and stores
// what it read.
func (c *Cache) fetch(ctx context.Context, secretID string, full bool) error {
	if c.api == nil {
		return &Error{SecretID: secretID, Kind: ErrUnavailable, Reason: "no Secrets Manager client (nil API)"}
	}
	start := c.now()
	cur, err := c.read(ctx, secretID, StageCurrent)
	now := c.now()
	c.mu.Lock()
	e := c.entries[secretID]
	if e == nil {
		e = &entry{}
		c.entries[secretID] = e
	}
	e.triedAt = now
	if err != nil {
		c.refreshErrors.Add(1)
		e.lastErr = err
		if full {
			e.allTry = now
		}
		if terminal(err) {
			// The secret itself is gone or broken: nothing cached may
			// stand in for it. The entry stays, holding the error, so
			// that connections retried in a loop read it once per
			// refresh interval, not once each.
			e.current, e.all, e.working = nil, nil, ""
			e.allTry = now
		}
		c.mu.Unlock()
		c.log.Warn("secretsaga client: reading the secret failed", "secret", secretID, "stage", StageCurrent, "error", err)
		return err
	}
	if e.current != nil && e.current.VersionID != cur.VersionID {
		// A rotation finished: AWSCURRENT is what to try first again.
		e.working = ""
	}
	e.current, e.currentAt, e.lastErr = &cur, now, nil
	c.mu.Unlock()
	if !full {
		return nil
	}

	// The three reads are not one snapshot: a rotation's finish between
	// them (AWSCURRENT moved, then AWSPENDING removed) yields AWSCURRENT's
	// old version, no AWSPENDING, and that same version again as
	// AWSPREVIOUS; the password the server has then is in none of them. A
	// version read twice with different labels shows it: read again, and
	// keep what the earlier reads found too (an extra candidate costs at
	// most a refused login; a missing one fails the connection).
	all := c.readOthers(ctx, secretID, cur)
	fresh := all // the last read alone: the union below never shows a version twice
	for range maxTornRereads {
		if !torn(fresh) {
			break
		}
		again, err := c.read(ctx, secretID, StageCurrent)
		if err != nil {
			break
		}
		c.tornReads.Add(1)
		c.log.Debug("secretsaga client: labels moved while the stages were read; reading again", "secret", secretID)
		cur = again
		fresh = c.readOthers(ctx, secretID, cur)
		all = union(fresh, all)
		c.mu.Lock()
		if e := c.entries[secretID]; e != nil && e.current != nil && e.current.VersionID != cur.VersionID {
			e.current, e.currentAt, e.working = &cur, c.now(), ""
		}
		c.mu.Unlock()
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		read := make([]string, len(all))
		for i, cr := range all {
			read[i] = cr.Stage + "@" + cr.VersionID
		}
		c.log.Debug("secretsaga client: read the secret's stages", "secret", secretID, "read", read,
			"started", start, "took", c.now().Sub(start))
	}
	c.mu.Lock()
	if e := c.entries[secretID]; e != nil {
		// allTry is set only now, with all: a caller that saw it fresh
		// while the other stages were still being read would otherwise
		// take a list without them.
		e.all, e.allTry, e.allStart = all, now, start
		if !slices.ContainsFunc(all, func(cr Credential) bool { return cr.VersionID == e.working }) {
			e.working = ""
		}
	}
	c.mu.Unlock()
	return nil
}

// maxTornRereads bounds the reads made again when the stages read were
// not one snapshot (torn).
const maxTornRereads = 2

// readOthers reads AWSPENDING and AWSPREVIOUS, unless cur carries them
// too, and returns cur followed by what it found.
func (c *Cache) readOthers(ctx context.Context, secretID string, cur Credential) []Credential {
	all := []Credential{cur}
	for _, stage := range []string{StagePending, StagePrevious} {
		if slices.Contains(cur.Stages, stage) {
			continue
		}
		cr, err := c.read(ctx, secretID, stage)
		if err != nil {
			// No such stage is the normal case outside a rotation; an
			// empty or malformed AWSPENDING (a rotation that failed at
			// create) is not a credential to try. Neither fails the read.
			if !errors.Is(err, ErrNotFound) {
				c.log.Info("secretsaga client: stage not usable", "secret", secretID, "stage", stage, "error", err)
			}
			continue
		}
		all = append(all, cr)
	}
	return all
}

// torn reports whether reads of one version disagree on its labels: a
// label moved between them.
func torn(all []Credential) bool {
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.VersionID == b.VersionID && !sameLabels(a.Stages, b.Stages) {
				return true
			}
		}
	}
	return false
}

func sameLabels(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// union is newer followed by the versions of older that newer lacks.
func union(newer, older []Credential) []Credential {
	out := slices.Clone(newer)
	for _, o := range older {
		if !slices.ContainsFunc(out, func(n Credential) bool { return n.VersionID == o.VersionID }) {
			out = append(out, o)
		}
	}
	return out
}

// read makes one GetSecretValue call and parses its value.
func (c *Cache) read(ctx context.Context, secretID, stage string) (Credential, error) {
	c.calls.Add(1)
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &secretID, VersionStage: &stage})
	if err != nil {
		return Credential{}, classifyAPI(secretID, stage, err)
	}
	if out == nil || out.SecretString == nil {
		return Credential{}, &Error{SecretID: secretID, Stage: stage, Kind: ErrInvalidValue,
			Reason: "it has no SecretString (SecretBinary is not supported); store the database-secret JSON structure"}
	}
	v, err := secret.Parse(*out.SecretString)
	if err != nil {
		return Credential{}, &Error{SecretID: secretID, Stage: stage, Kind: ErrInvalidValue, Err: err}
	}
	portMissing := v.Port == 0
	// 1 stands in for the engine's default port, which only the connector
	// knows; the other fields must be there.
	if err := v.Validate(1); err != nil {
		return Credential{}, &Error{SecretID: secretID, Stage: stage, Kind: ErrInvalidValue, Err: err}
	}
	if portMissing {
		v.Port = 0
	}
	cred := Credential{
		SecretID: secretID, Stage: stage, Stages: slices.Clone(out.VersionStages),
		Engine: v.Engine, Host: v.Host, Port: v.Port, Username: v.Username, Password: v.Password, DBName: v.DBName,
		TLS: v.TLS,
	}
	if out.VersionId != nil {
		cred.VersionID = *out.VersionId
	}
	return cred, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Config is one soak.
type Config struct {
	// Rotations per cell (engine × strategy).
	Rotations int
	// Duration, if set, bounds the soak: no cell starts a rotation after
	// it has passed, so a loaded machine may run fewer than Rotations (the
	// report gives the count each cell ran).
	Duration time.Duration
	// Workers per secret and per mode (application instances).
	Workers int
	// Every: each worker sends a request this often.
	Every time.Duration
	// Lifetime of a pooled connection: each worker logs in again this often.
	Lifetime time.Duration
	// NaiveEvery: the naive application reads AWSCURRENT this often.
	NaiveEvery time.Duration
	// Pause between two rotations of one secret. In production they are
	// hours apart; a pause shorter than the client's refresh interval
	// (client.DefaultRefreshInterval, one forced read per secret per
	// interval) lets a rotation start while the client may not read the
	// secret again yet.
	Pause time.Duration
	// Cells to run, by "engine × strategy"; nil: all six.
	Cells []string
	// Kinds, if set, is the cycle of kinds every cell runs instead of
	// schedule's (an operator rollback becomes a success for alternating
	// users all the same).
	Kinds []kind
	// Log receives a line per rotation that did not end as its kind
	// should, and progress.
	Log io.Writer
}

// cellSpec is one engine × strategy and the fixture making its secret.
type cellSpec struct {
	Engine, Strategy string
	prefix           string
	create           func(ctx context.Context, name, user string) (string, error)
}

func (c cellSpec) name() string { return c.Engine + " × " + c.Strategy }

func cellSpecs(e *local.Env) []cellSpec {
	return []cellSpec{
		{"postgres", "single user", "soakpg_", e.PostgresSecret},
		{"postgres", "alternating users", "soakpgalt_", e.PostgresAlternatingSecret},
		{"mariadb", "single user", "soakmy_", e.MariaDBSecret},
		{"mariadb", "alternating users", "soakmyalt_", e.MariaDBAlternatingSecret},
		{"redis", "single user", "soakrd_", e.RedisSecret},
		{"redis", "alternating users", "soakrdalt_", e.RedisAlternatingSecret},
	}
}

// bakeSeconds is the bake of a bake rollback: the health check answers
// 2xx at its start and fails at the check bakeSeconds later.
const bakeSeconds = 2

// kind is a kind of rotation the soak runs.
type kind string

const (
	kindSuccess   kind = "success"
	kindTestFails kind = "rolled back: test fails after set"
	kindBake      kind = "bake rollback"
	kindOperator  kind = "operator rollback"
	kindLostReply kind = "fault: set's reply lost (retried)"
	kindCrash     kind = "fault: finish crashes (retried)"
)

// schedule is the cycle of kinds each cell runs: every kind in the first
// six, so a short soak sees them all. The operator rollback returns to
// AWSPREVIOUS, which the bake rollback before it left as it found it.
// Alternating users have no operator rollback (the product refuses one,
// InputError: AWSPREVIOUS names another user): a success takes its place.
func schedule(strategy string, kinds []kind) []kind {
	if kinds == nil {
		kinds = []kind{kindSuccess, kindTestFails, kindBake, kindOperator, kindLostReply, kindCrash, kindSuccess, kindSuccess}
	}
	out := slices.Clone(kinds)
	for i, k := range out {
		if k == kindOperator && strategy == "alternating users" {
			out[i] = kindSuccess
		}
	}
	return out
}

// exclusive kinds install fault rules; the injector is shared by every
// Lambda function of the stack, so no other rotation may run meanwhile.
func (k kind) exclusive() bool { return k == kindTestFails || k == kindLostReply || k == kindCrash }

// want is how an execution of the kind ends.
func (k kind) want() (status, errName string) {
	switch k {
	case kindTestFails, kindBake:
		return "FAILED", faults.NameTestFailed
	}
	return "SUCCEEDED", ""
}

// Result is what `make soak` prints and writes to results/soak.json.
type Result struct {
	StartedAt string       `json:"startedAt"`
	Elapsed   string       `json:"elapsed"`
	Config    ConfigJSON   `json:"config"`
	Cells     []CellResult `json:"cells"`
	// Violations of DESIGN.md's invariants found after the soak, with
	// the leak scan's hits; must be empty.
	Violations []string `json:"violations"`
	LeakScan   struct {
		Secrets   int `json:"secrets"`
		Passwords int `json:"passwords"`
		Hits      int `json:"hits"`
	} `json:"leakScan"`
}

// ConfigJSON is Config as the report states it.
type ConfigJSON struct {
	Rotations    int     `json:"rotationsPerCell"`
	Workers      int     `json:"workersPerSecretAndMode"`
	EveryMs      float64 `json:"requestEveryMs"`
	LifetimeMs   float64 `json:"connectionLifetimeMs"`
	NaiveEveryMs float64 `json:"naiveRefreshMs"`
	DurationS    float64 `json:"maxDurationS"`
	PauseMs      float64 `json:"pauseBetweenRotationsMs"`
}

// CellResult is one engine × strategy.
type CellResult struct {
	Engine    string         `json:"engine"`
	Strategy  string         `json:"strategy"`
	Secret    string         `json:"secret"`
	Rotations int            `json:"rotations"`
	ByKind    map[string]int `json:"rotationsByKind"`
	// MeanSeconds is the mean wall time of a rotation of each kind.
	MeanSeconds map[string]float64 `json:"meanSecondsByKind"`
	// Unexpected lists rotations that did not end as their kind should.
	Unexpected []string     `json:"unexpected,omitempty"`
	Modes      []ModeResult `json:"modes"`
}

// ModeResult is what one mode's workers saw on one cell.
type ModeResult struct {
	Mode        string `json:"mode"`
	Requests    int64  `json:"requests"`
	Failed      int64  `json:"failed"`
	Connections int64  `json:"connectionsOpened"`
	// LongestOutageMs: the longest time any worker could not log in.
	LongestOutageMs float64 `json:"longestOutageMs"`
	// Probes: fresh logins made at a point of a rotation where the
	// database already has the new password and AWSCURRENT still holds the
	// old one (between set and finish, or before compensation restores
	// it). They make the window the soak is about happen for sure.
	Probes int `json:"windowProbes"`
	// FailedDuring counts failed requests by the kind of rotation in
	// flight when they were sent ("between rotations": none).
	FailedDuring map[string]int64 `json:"failedDuring,omitempty"`
	ProbesFailed int              `json:"windowProbesFailed"`
	FirstError   string           `json:"firstError,omitempty"`
	// Refused: failed requests in which the server refused a login;
	// Failed - Refused timed out or could not connect with no login
	// refused, which no credential can cause.
	Refused int64 `json:"failedRefused"`
	// Failures are the first failed requests of all workers.
	Failures []failure     `json:"failures,omitempty"`
	Workers  []workerStats `json:"workers"`
}

// modeState is one mode's workers on one cell.
type modeState struct {
	dialer  Dialer
	workers []*worker
	probes  atomic.Int64
	pfailed atomic.Int64
	perr    atomic.Pointer[string]
}

type cellState struct {
	// phase is the kind of the rotation in flight, nil between two.
	phase atomic.Pointer[string]
	spec  cellSpec
	arn   string
	modes []*modeState
	res   CellResult
}

// harness runs a soak on a started local stack.
type harness struct {
	env *local.Env
	cfg Config
	// faultsMu: exclusive kinds hold it for writing, the others for
	// reading, so fault rules only ever see the rotation that set them.
	faultsMu  sync.RWMutex
	unhealthy *httptest.Server
}

// Run runs the soak with dialers (the application modes) on env and
// checks the invariants after it.
func Run(ctx context.Context, env *local.Env, cfg Config, dialers ...Dialer) (*Result, error) {
	start := time.Now()
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	h := &harness{env: env, cfg: cfg}
	// Each bake rollback has its own path: healthy at the first check,
	// failing from the second (BakeSeconds later).
	var checks sync.Map
	h.unhealthy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := checks.LoadOrStore(r.URL.Path, new(atomic.Int64))
		if n.(*atomic.Int64).Add(1) > 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer h.unhealthy.Close()

	var cells []*cellState
	for _, spec := range cellSpecs(env) {
		if len(cfg.Cells) > 0 && !slices.Contains(cfg.Cells, spec.name()) {
			continue
		}
		id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
		arn, err := spec.create(ctx, "soak/"+spec.Engine+"-"+strings.ReplaceAll(spec.Strategy, " ", "-")+"/"+id, spec.prefix+id)
		if err != nil {
			return nil, fmt.Errorf("create the %s secret: %w", spec.name(), err)
		}
		cells = append(cells, &cellState{spec: spec, arn: arn, res: CellResult{Engine: spec.Engine, Strategy: spec.Strategy, Secret: arn, ByKind: map[string]int{}, MeanSeconds: map[string]float64{}}})
	}

	// The applications start before the first rotation and stop after
	// the last, plus one naive refresh period: a naive worker still
	// failing then would fail until its next read.
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var wg sync.WaitGroup
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for _, c := range cells {
		for _, d := range dialers {
			m := &modeState{dialer: d}
			c.modes = append(c.modes, m)
			for range cfg.Workers {
				opened := new(atomic.Int64)
				p, err := openPool(ctx, d, c.spec.Engine, c.arn, poolOptions{Size: 2, Lifetime: cfg.Lifetime}, opened)
				if err != nil {
					return nil, fmt.Errorf("%s: open a %s pool: %w", c.spec.name(), d.Name(), err)
				}
				closers = append(closers, p.close)
				w := &worker{pool: p, every: cfg.Every, timeout: 5 * time.Second, opened: opened, phase: &c.phase}
				m.workers = append(m.workers, w)
				wg.Add(1)
				go func() { defer wg.Done(); w.run(wctx) }()
			}
		}
	}

	var rwg sync.WaitGroup
	errs := make([]error, len(cells))
	for i, c := range cells {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			errs[i] = h.rotate(ctx, c, start)
		}()
	}
	rwg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(cfg.NaiveEvery + cfg.Lifetime + 500*time.Millisecond):
	}
	stopWorkers()
	wg.Wait()
	end := time.Now()

	res := &Result{
		StartedAt: start.UTC().Format(time.RFC3339),
		Config: ConfigJSON{Rotations: cfg.Rotations, Workers: cfg.Workers, EveryMs: ms(cfg.Every), LifetimeMs: ms(cfg.Lifetime),
			NaiveEveryMs: ms(cfg.NaiveEvery), DurationS: cfg.Duration.Seconds(), PauseMs: ms(cfg.Pause)},
	}
	var arns []string
	for _, c := range cells {
		for _, m := range c.modes {
			mr := ModeResult{Mode: m.dialer.Name(), Probes: int(m.probes.Load()), ProbesFailed: int(m.pfailed.Load())}
			if p := m.perr.Load(); p != nil {
				mr.FirstError = "window probe: " + *p
			}
			for _, w := range m.workers {
				s := w.result(end)
				mr.Workers = append(mr.Workers, s)
				mr.Requests += s.Requests
				mr.Failed += s.Failed
				mr.Refused += s.Refused
				mr.Failures = append(mr.Failures, s.Failures...)
				for k, n := range s.FailedDuring {
					if k == "" {
						k = "between rotations"
					}
					if mr.FailedDuring == nil {
						mr.FailedDuring = map[string]int64{}
					}
					mr.FailedDuring[k] += n
				}
				mr.Connections += s.Connections
				mr.LongestOutageMs = max(mr.LongestOutageMs, ms(s.Longest))
				if mr.FirstError == "" {
					mr.FirstError = s.FirstError
				}
			}
			slices.SortFunc(mr.Failures, func(a, b failure) int { return strings.Compare(a.At, b.At) })
			mr.Failures = mr.Failures[:min(len(mr.Failures), keptFailures)]
			c.res.Modes = append(c.res.Modes, mr)
		}
		res.Cells = append(res.Cells, c.res)
		arns = append(arns, c.arn)
		for _, v := range env.CheckInvariants(ctx, c.arn) {
			res.Violations = append(res.Violations, c.spec.name()+": "+v)
		}
	}
	res.Violations = append(res.Violations, env.CheckLogins(ctx, arns)...)
	var leaks map[string][]string
	res.LeakScan.Secrets, res.LeakScan.Passwords, leaks = env.LeakScan(ctx, arns)
	for arn, where := range leaks {
		res.LeakScan.Hits += len(where)
		res.Violations = append(res.Violations, fmt.Sprintf("leak: a password of %s appears in %s", arn, strings.Join(where, ", ")))
	}
	res.Elapsed = time.Since(start).Round(time.Second).String()
	return res, nil
}

// rotate runs the cell's rotations one after the other.
func (h *harness) rotate(ctx context.Context, c *cellState, start time.Time) error {
	sched := schedule(c.spec.Strategy, h.cfg.Kinds)
	for i := 0; i < h.cfg.Rotations; i++ {
		if h.cfg.Duration > 0 && time.Since(start) > h.cfg.Duration {
			fmt.Fprintf(h.cfg.Log, "%s: stopped after %d rotations: -duration %s has passed\n", c.spec.name(), i, h.cfg.Duration)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(h.cfg.Pause):
			}
		}
		k := sched[i%len(sched)]
		took, err := h.rotation(ctx, c, k)
		if err != nil {
			return fmt.Errorf("%s: rotation %d (%s): %w", c.spec.name(), i+1, k, err)
		}
		c.res.Rotations++
		n := float64(c.res.ByKind[string(k)])
		c.res.MeanSeconds[string(k)] = (c.res.MeanSeconds[string(k)]*n + took.Seconds()) / (n + 1)
		c.res.ByKind[string(k)]++
		if c.res.Rotations%10 == 0 {
			fmt.Fprintf(h.cfg.Log, "%s: %d rotations\n", c.spec.name(), c.res.Rotations)
		}
	}
	return nil
}

// rotation runs one rotation of kind k through the state machine and
// returns how long its execution took.
func (h *harness) rotation(ctx context.Context, c *cellState, k kind) (time.Duration, error) {
	input := map[string]any{"SecretId": c.arn}
	var rules []faultinject.Rule
	probe := func(context.Context) error { h.probe(ctx, c); return nil }
	// Where a probe runs: the database has the new password and
	// AWSCURRENT still holds the old one.
	afterTest := faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.After, Hook: probe}
	switch k {
	case kindTestFails:
		// Probed as test fails (set has run) and, where compensation sets
		// the password back, just before it does.
		rules = []faultinject.Rule{
			{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed, Hook: probe},
			{Function: "compensate", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Hook: probe},
		}
	case kindLostReply:
		rules = []faultinject.Rule{
			{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.After, Err: target.ErrUnreachable},
			afterTest,
		}
	case kindCrash:
		rules = []faultinject.Rule{
			{Function: "finishsecret", Call: "Secrets Manager.UpdateSecretVersionStage", Nth: 1, Phase: faultinject.Crash},
			afterTest,
		}
	case kindBake:
		// A bake that lasts: a real one watches for minutes, and pools
		// log in again meanwhile. With a single check right after finish
		// an instance that has not logged in since set can meet the
		// moment in compensation when AWSCURRENT is back on the old
		// version but the database still has the new password, which no
		// label holds then (see README: Soak).
		input["HealthCheckUrl"], input["BakeSeconds"] = h.unhealthy.URL+"/health/"+uuid.NewString(), bakeSeconds
	case kindOperator:
		prev, err := h.holder(ctx, c.arn, "AWSPREVIOUS")
		if err != nil {
			return 0, err
		}
		input["Rollback"], input["ClientRequestToken"] = true, prev
	}
	if k.exclusive() {
		h.faultsMu.Lock()
		defer h.faultsMu.Unlock()
		h.env.Faults.Reset()
		defer h.env.Faults.Reset()
		for _, r := range rules {
			h.env.Faults.Add(r)
		}
	} else {
		h.faultsMu.RLock()
		defer h.faultsMu.RUnlock()
	}
	name := string(k)
	c.phase.Store(&name)
	x, err := h.env.Execute(ctx, "soak-"+uuid.NewString()[:13], input)
	c.phase.Store(nil)
	if err != nil {
		return 0, err
	}
	status, errName := k.want()
	if x.Status != status || x.Error != errName {
		c.res.Unexpected = append(c.res.Unexpected, fmt.Sprintf("%s ended %s %s (%s), want %s %s", k, x.Status, x.Error, x.Cause, status, errName))
		fmt.Fprintf(h.cfg.Log, "%s: %s\n", c.spec.name(), c.res.Unexpected[len(c.res.Unexpected)-1])
	}
	return x.Duration, nil
}

// probe opens a fresh pool of every mode on the cell's secret and sends one
// request: a login made now, at a point the fault rule chose.
func (h *harness) probe(ctx context.Context, c *cellState) {
	for _, m := range c.modes {
		m.probes.Add(1)
		err := func() error {
			p, err := openPool(ctx, m.dialer, c.spec.Engine, c.arn, poolOptions{Size: 1, Lifetime: time.Minute}, new(atomic.Int64))
			if err != nil {
				return err
			}
			defer p.close()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return p.request(rctx)
		}()
		if err != nil {
			m.pfailed.Add(1)
			s := err.Error()
			m.perr.CompareAndSwap(nil, &s)
		}
	}
}

// holder is the version holding stage.
func (h *harness) holder(ctx context.Context, arn, stage string) (string, error) {
	st, err := h.env.Stages(ctx, arn)
	if err != nil {
		return "", err
	}
	for id, stages := range st {
		if slices.Contains(stages, stage) {
			return id, nil
		}
	}
	return "", fmt.Errorf("no version of %s carries %s", arn, stage)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

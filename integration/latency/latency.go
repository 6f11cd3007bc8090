// Package latency records how long the calls the handlers make take, per
// operation: each SDK call as its caller waits for it (retries included),
// each attempt the SDK's retryer makes, with the error code an attempt
// ended in, and whatever else a caller times (a Lambda handler's run).
// make bench reports it for the fleet, to tell which stand-in a slow
// rotation waits on.
package latency

import (
	"context"
	"errors"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Recorder holds the durations by name. The zero value is ready to use.
type Recorder struct {
	mu  sync.Mutex
	ops map[string]*series
}

type series struct {
	calls    []time.Duration
	ends     []time.Time // when each call ended
	attempts int
	// errs counts the attempts (or observed calls) that failed, by code.
	errs map[string]int
}

// Op is what a Recorder saw of one name.
type Op struct {
	Name string `json:"name"`
	// Calls as their callers waited for them (an SDK call's retries
	// and backoff included).
	Calls int     `json:"calls"`
	P50Ms float64 `json:"p50Ms"`
	P90Ms float64 `json:"p90Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	// Seconds is the calls' summed duration: which operation the
	// handlers spent the most time waiting on.
	Seconds float64 `json:"seconds"`
	// Attempts the SDK made (Calls plus its retries; 0 for names that
	// are not SDK operations).
	Attempts int `json:"attempts,omitempty"`
	// Errors counts failed attempts by error code ("transport" for a
	// failure with no API error code, "canceled" for a context's end).
	Errors map[string]int `json:"errors,omitempty"`
}

func (r *Recorder) get(name string) *series {
	if r.ops == nil {
		r.ops = map[string]*series{}
	}
	s := r.ops[name]
	if s == nil {
		s = &series{errs: map[string]int{}}
		r.ops[name] = s
	}
	return s
}

// Observe records one call of name that took d and ended in err (nil:
// success).
func (r *Recorder) Observe(name string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(name)
	s.calls, s.ends = append(s.calls, d), append(s.ends, time.Now())
	if err != nil {
		s.errs[Code(err)]++
	}
}

func (r *Recorder) attempt(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(name)
	s.attempts++
	if err != nil {
		s.errs[Code(err)]++
	}
}

func (r *Recorder) call(name string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(name)
	s.calls, s.ends = append(s.calls, d), append(s.ends, time.Now())
}

// Mean is the mean duration of the calls of name that ended in [from,
// to), and how many there were.
func (r *Recorder) Mean(name string, from, to time.Time) (time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.ops[name]
	if s == nil {
		return 0, 0
	}
	var sum time.Duration
	n := 0
	for i, end := range s.ends {
		if !end.Before(from) && end.Before(to) {
			sum += s.calls[i]
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / time.Duration(n), n
}

// Code names an error as the report counts it: the API error code if it
// has one.
func Code(err error) string {
	var api smithy.APIError
	var ne net.Error
	switch {
	case errors.As(err, &api):
		return api.ErrorCode()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.As(err, &ne):
		return "transport"
	}
	return "other"
}

// Reset forgets everything recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = nil
}

// Ops returns what was recorded, by name.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Op, 0, len(r.ops))
	for name, s := range r.ops {
		op := Op{Name: name, Calls: len(s.calls), Attempts: s.attempts}
		if len(s.errs) > 0 {
			op.Errors = maps(s.errs)
		}
		if len(s.calls) > 0 {
			d := slices.Clone(s.calls)
			slices.Sort(d)
			op.P50Ms, op.P90Ms, op.P99Ms, op.MaxMs = ms(pct(d, 0.5)), ms(pct(d, 0.9)), ms(pct(d, 0.99)), ms(d[len(d)-1])
			var sum time.Duration
			for _, x := range d {
				sum += x
			}
			op.Seconds = sum.Seconds()
		}
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func maps(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// pct is the nearest-rank percentile of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// APIOption is an aws-sdk-go-v2 stack option (aws.Config.APIOptions): it
// times each call at the start of the Initialize step, around everything
// the SDK does for it, and counts each attempt (and its error) at the end
// of the Finalize step, inside the retry loop. Calls are named
// "<service ID>.<operation>", as package faultinject names them.
func (r *Recorder) APIOption(stack *middleware.Stack) error {
	name := func(ctx context.Context) string {
		return awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
	}
	if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("latency.call",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			start := time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			r.call(name(ctx), time.Since(start))
			return out, md, err
		}), middleware.Before); err != nil {
		return err
	}
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("latency.attempt",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleFinalize(ctx, in)
			r.attempt(name(ctx), err)
			return out, md, err
		}), middleware.After)
}

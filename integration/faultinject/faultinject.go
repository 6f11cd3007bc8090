// Package faultinject makes chosen external calls of a rotation fail, before
// or after they take effect, without changing production code paths: it is
// an aws-sdk-go-v2 middleware (added through aws.Config.APIOptions, like any
// SDK middleware) and a wrapper around target engines. It also records every
// external call in order, so the list of call sites can be discovered from a
// successful rotation rather than written by hand.
package faultinject

import (
	"context"
	"fmt"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/secretsaga/secretsaga/shared/target"
)

// Phase says when an injected fault strikes.
type Phase int

const (
	// Before: the call fails and has no effect.
	Before Phase = iota
	// After: the call takes effect, then the caller sees an error (a
	// timeout on the response, as after a network partition).
	After
	// Crash: the call takes effect, then the handler dies on the spot (a
	// Lambda timeout or an out-of-memory kill): the process panics with a
	// Crash value, which no product code recovers, so nothing the handler
	// would have done next happens.
	Crash
)

func (p Phase) String() string {
	switch p {
	case After:
		return "after"
	case Crash:
		return "crash"
	}
	return "before"
}

// Rule injects Err into the Nth matching call.
type Rule struct {
	Function string // the Lambda function making the call; "" matches any
	Call     string // e.g. "Secrets Manager.PutSecretValue", "DynamoDB.TransactWriteItems", "target.SetPassword"
	Nth      int    // 1-based occurrence among calls matching Function and Call; 0 means every one
	Phase    Phase
	Err      error
	Times    int // how many matching calls fail (default 1; with Nth 0 it is unbounded if 0)
	// Hook, if set, runs when the rule fires, at its Phase, before Err is
	// returned: a test uses it to act as a concurrent actor at an exact
	// point of a rotation (move a label, hold a step in flight). If Err is
	// nil the call then proceeds, or returns Hook's error.
	Hook func(ctx context.Context) error
}

// CrashError is the panic value of a Crash: its Lambda error type is what
// the Lambda service reports when a function times out.
type CrashError struct{ Call string }

func (c CrashError) Error() string { return "injected crash after " + c.Call }

// ErrorType is the errorType the Lambda stand-in reports for this panic.
func (CrashError) ErrorType() string { return "Sandbox.Timedout" }

// Call is one recorded external call.
type Call struct {
	Function string
	Name     string
	Injected string // "", "before" or "after"
	// Items are the kinds of the items of a DynamoDB transaction ("Put",
	// "Update", "Delete", "ConditionCheck" for TransactWriteItems, "Get"
	// for TransactGetItems), in order: IAM authorizes a transaction by the
	// action of each item, not by the operation's name.
	Items []string
}

func (c Call) String() string { return c.Function + ":" + c.Name }

// Injector holds rules and the call log. The zero value is ready to use.
type Injector struct {
	mu     sync.Mutex
	rules  []*rule
	calls  []Call
	counts map[string]int
	// observers see every call as it is recorded; Reset keeps them, so a
	// recording can span tests that each reset the rules.
	observers map[int]func(Call)
	nextObs   int
}

type rule struct {
	Rule
	fired int
}

type fnKey struct{}

// WithFunction marks ctx as running inside the named function.
func WithFunction(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, fnKey{}, name)
}

func function(ctx context.Context) string {
	s, _ := ctx.Value(fnKey{}).(string)
	return s
}

// Add installs a rule.
func (in *Injector) Add(r Rule) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if r.Times == 0 && r.Nth != 0 {
		r.Times = 1
	}
	in.rules = append(in.rules, &rule{Rule: r})
}

// Reset removes the rules and clears the call log.
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules, in.calls, in.counts = nil, nil, nil
}

// Observe calls f with every call recorded from now until stop is called,
// across Resets. f runs with the Injector locked: it must not call back
// into it.
func (in *Injector) Observe(f func(Call)) (stop func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.observers == nil {
		in.observers = map[int]func(Call){}
	}
	id := in.nextObs
	in.nextObs++
	in.observers[id] = f
	return func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		delete(in.observers, id)
	}
}

// Calls returns the calls made since the last Reset, in order.
func (in *Injector) Calls() []Call {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Call(nil), in.calls...)
}

// Fired reports how many times rules have injected a fault.
func (in *Injector) Fired() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, r := range in.rules {
		n += r.fired
	}
	return n
}

// hit records a call and returns the rule that fires for it, if any.
func (in *Injector) hit(fn, name string, items []string) *rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.counts == nil {
		in.counts = map[string]int{}
	}
	in.counts[fn+"\x00"+name]++
	in.counts["\x00"+name]++
	call := Call{Function: fn, Name: name, Items: items}
	var fire *rule
	for _, r := range in.rules {
		if r.Call != name || (r.Function != "" && r.Function != fn) {
			continue
		}
		if r.Times != 0 && r.fired >= r.Times {
			continue
		}
		if r.Nth != 0 && in.counts[r.Function+"\x00"+name] != r.Nth {
			continue
		}
		r.fired++
		fire = r
		call.Injected = r.Phase.String()
		break
	}
	in.calls = append(in.calls, call)
	for _, f := range in.observers {
		f(call)
	}
	return fire
}

// Do runs effect under the rules for (ctx's function, name).
func (in *Injector) Do(ctx context.Context, name string, effect func() error) error {
	return in.do(ctx, function(ctx), name, nil, effect)
}

func (in *Injector) do(ctx context.Context, fn, name string, items []string, effect func() error) error {
	r := in.hit(fn, name, items)
	if r != nil && r.Phase == Before {
		if err := r.fire(ctx, name); err != nil {
			return err
		}
	}
	err := effect()
	if r != nil && err == nil {
		switch r.Phase {
		case After:
			return r.fire(ctx, name)
		case Crash:
			if r.Hook != nil {
				_ = r.Hook(ctx)
			}
			panic(CrashError{Call: name})
		}
	}
	return err
}

// fire runs the rule's hook and returns the error the caller sees, or nil.
func (r *rule) fire(ctx context.Context, name string) error {
	if r.Hook != nil {
		if err := r.Hook(ctx); err != nil {
			return fmt.Errorf("injected %s %s: %w", r.Phase, name, err)
		}
	}
	if r.Err == nil {
		return nil
	}
	return fmt.Errorf("injected %s %s: %w", r.Phase, name, r.Err)
}

// APIOption is an aws-sdk-go-v2 stack option: add it to aws.Config.APIOptions.
// It sits at the end of the Initialize step, outside the SDK's retry loop, so
// an injected fault reaches the caller the way an error that exhausted the
// SDK's own retries would.
func (in *Injector) APIOption(stack *middleware.Stack) error {
	return in.APIOptionAs("")(stack)
}

// APIOptionAs is APIOption for a client of the named function: a call
// whose context names no function (a test calling the function's Service
// directly rather than through the Lambda endpoint) counts as the
// function's, so rules naming it and the recording see it.
func (in *Injector) APIOptionAs(function string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error { return in.apiOption(stack, function) }
}

func (in *Injector) apiOption(stack *middleware.Stack, dflt string) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("faultinject",
		func(ctx context.Context, input middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			name := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
			fn := function(ctx)
			if fn == "" {
				fn = dflt
			}
			var out middleware.InitializeOutput
			var md middleware.Metadata
			err := in.do(ctx, fn, name, transactionItems(input.Parameters), func() error {
				var err error
				out, md, err = next.HandleInitialize(ctx, input)
				return err
			})
			return out, md, err
		}), middleware.After)
}

// transactionItems are the kinds of a DynamoDB transaction's items, or nil
// for any other request.
func transactionItems(params any) []string {
	var items []string
	switch p := params.(type) {
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range p.TransactItems {
			switch {
			case it.Put != nil:
				items = append(items, "Put")
			case it.Update != nil:
				items = append(items, "Update")
			case it.Delete != nil:
				items = append(items, "Delete")
			case it.ConditionCheck != nil:
				items = append(items, "ConditionCheck")
			}
		}
	case *dynamodb.TransactGetItemsInput:
		for _, it := range p.TransactItems {
			if it.Get != nil {
				items = append(items, "Get")
			}
		}
	}
	return items
}

// WrapEngine wraps a target engine so its calls go through the rules.
func (in *Injector) WrapEngine(e target.Engine) target.Engine { return &engine{Engine: e, in: in} }

type engine struct {
	target.Engine
	in *Injector
}

func (e *engine) SetPassword(ctx context.Context, r target.SetPasswordRequest) (res target.SetPasswordResponse, err error) {
	err = e.in.Do(ctx, "target.SetPassword", func() error {
		res, err = e.Engine.SetPassword(ctx, r)
		return err
	})
	return res, err
}

func (e *engine) Verify(ctx context.Context, r target.VerifyRequest) error {
	return e.in.Do(ctx, "target.Verify", func() error { return e.Engine.Verify(ctx, r) })
}

func (e *engine) EnsureUser(ctx context.Context, r target.EnsureUserRequest) (res target.EnsureUserResponse, err error) {
	err = e.in.Do(ctx, "target.EnsureUser", func() error {
		res, err = e.Engine.EnsureUser(ctx, r)
		return err
	})
	return res, err
}

// The short-lived logins' operations (target.Dynamic) go through the rules
// too, as "target.NewUser", "target.DeleteUser", "target.RenewUser" and
// "target.ListUsers"; an engine without them answers as AsDynamic would.

func (e *engine) dynamic() (target.Dynamic, error) { return target.AsDynamic(e.Engine) }

func (e *engine) NewUser(ctx context.Context, r target.NewUserRequest) (res target.NewUserResponse, err error) {
	d, err := e.dynamic()
	if err != nil {
		return res, err
	}
	err = e.in.Do(ctx, "target.NewUser", func() error {
		res, err = d.NewUser(ctx, r)
		return err
	})
	return res, err
}

func (e *engine) DeleteUser(ctx context.Context, r target.DeleteUserRequest) (res target.DeleteUserResponse, err error) {
	d, err := e.dynamic()
	if err != nil {
		return res, err
	}
	err = e.in.Do(ctx, "target.DeleteUser", func() error {
		res, err = d.DeleteUser(ctx, r)
		return err
	})
	return res, err
}

func (e *engine) RenewUser(ctx context.Context, r target.RenewUserRequest) error {
	d, err := e.dynamic()
	if err != nil {
		return err
	}
	return e.in.Do(ctx, "target.RenewUser", func() error { return d.RenewUser(ctx, r) })
}

func (e *engine) ListUsers(ctx context.Context, r target.ListUsersRequest) (res []string, err error) {
	d, err := e.dynamic()
	if err != nil {
		return nil, err
	}
	err = e.in.Do(ctx, "target.ListUsers", func() error {
		res, err = d.ListUsers(ctx, r)
		return err
	})
	return res, err
}

package local

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/secretsaga/secretsaga/integration/lambdalocal"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/functions"
)

// Binaries is a second local Lambda endpoint whose functions are the
// built bootstrap executables, each behind the Lambda Runtime API
// (lambdalocal.RegisterBinary), with the environment the CDK app gives it:
// the deployed artefacts' main.go wiring and lambdaenv run, not the
// handlers in this process. No fault injection reaches them.
type Binaries struct {
	Lambda *lambdalocal.Server
	URL    string
	// Names are the functions served (those the state machines call).
	Names []string
	// Build is how long building the bootstraps and the RIE took.
	Build time.Duration
}

// modulePath is this module's import path.
const modulePath = "github.com/secretsaga/secretsaga"

// StartBinaries builds the state machines' functions and the runtime
// interface emulator for this machine into dir and serves them, with
// active tracing as the CDK app deploys them: each invocation gets a
// trace header and the functions send their segments to the X-Ray daemon
// stand-in e.XRay. Env.Close stops them. ExecuteOn runs the rotation
// state machine against them.
func (e *Env) StartBinaries(ctx context.Context, dir string) (*Binaries, error) {
	var names, pkgs []string
	for _, n := range Functions {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		pkgs = append(pkgs, modulePath+"/functions/"+n)
	}
	t := time.Now()
	if err := lambdalocal.BuildBootstraps(ctx, dir, pkgs...); err != nil {
		return nil, err
	}
	rie, err := lambdalocal.BuildRIE(ctx, dir)
	if err != nil {
		return nil, err
	}
	if e.XRay == nil {
		if e.XRay, err = StartXRayDaemon(); err != nil {
			return nil, err
		}
		e.closers = append(e.closers, e.XRay.Close)
	}
	b := &Binaries{Lambda: lambdalocal.New(), Names: names, Build: time.Since(t)}
	for _, n := range names {
		env, err := e.FunctionEnv(n)
		if err != nil {
			return nil, err
		}
		// What Lambda sets for a function with active tracing.
		env = append(env, "AWS_XRAY_DAEMON_ADDRESS="+e.XRay.Addr(), "AWS_LAMBDA_FUNCTION_NAME=secretsaga-"+n)
		st := functions.MustGet(n)
		b.Lambda.RegisterBinary("secretsaga-"+n, lambdalocal.Binary{
			Bootstrap: filepath.Join(dir, n), RIE: rie, Env: env, MemoryMB: st.MemoryMB, Output: e.Logs, Tracing: true,
		}, st.Timeout)
	}
	if b.URL, err = b.Lambda.Start(); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, b.Lambda.Close)
	return b, nil
}

// FunctionEnv is the whole environment the named function runs with as a
// binary: the variables shared/functions lists for it (the CDK app sets
// the same ones), with this stack's values, and what the Lambda runtime
// provides (region, credentials), with the local endpoints as
// AWS_ENDPOINT_URL_<SERVICE>, which the SDK's default configuration
// honours. The optional bake alarms are left unset, as a stack without
// them deploys.
func (e *Env) FunctionEnv(name string) ([]string, error) {
	values := map[string]string{
		functions.EnvLedgerTable: Table,
		functions.EnvEventBus:    "default", // the bus the in-process handlers use (eventbus.New)
		// As the CDK app deploys by default.
		functions.EnvLedgerRetentionDays: strconv.Itoa(functions.DefaultLedgerRetentionDays),
	}
	st, ok := functions.Get(name)
	if !ok {
		return nil, fmt.Errorf("local: no function %s", name)
	}
	env := []string{
		"AWS_REGION=" + region, "AWS_DEFAULT_REGION=" + region,
		"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + e.SMURL,
		"AWS_ENDPOINT_URL_DYNAMODB=" + e.DynamoDB.Endpoint,
		"AWS_ENDPOINT_URL_EVENTBRIDGE=" + e.EventsURL,
		"AWS_ENDPOINT_URL_CLOUDWATCH=" + e.CloudWatchURL,
	}
	for _, v := range st.Env {
		val, ok := values[v]
		switch {
		case ok:
			env = append(env, v+"="+val)
		case functions.OptionalEnv(v):
		default:
			return nil, fmt.Errorf("local: function %s reads %s, which the local stack has no value for", name, v)
		}
	}
	return env, nil
}

// ExecuteOn runs one execution of the rotation state machine with its
// Tasks invoked at lambdaURL (such as Binaries.URL).
func (e *Env) ExecuteOn(ctx context.Context, lambdaURL, name string, input any) (*sfnlocal.Execution, error) {
	x, err := e.Runner.Execute(ctx, sfnlocal.Request{
		Definition: e.Definition, Name: name, Input: input,
		LambdaEndpoint: lambdaURL, RetryIntervalScale: e.opts.RetryIntervalScale,
	})
	if x != nil {
		e.mu.Lock()
		e.executions = append(e.executions, x)
		e.mu.Unlock()
	}
	return x, err
}

package local

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/config"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/native"
)

// SFNAPI is a local Step Functions API endpoint in front of the Env's
// runner, serving the rotation and fleet state machines (so that secretctl
// and other sfn clients can start and watch rotations).
type SFNAPI struct {
	*sfnlocal.API
	// URL is the endpoint (the sfn client's BaseEndpoint).
	URL string
	// StateMachineArn is the rotation state machine's ARN.
	StateMachineArn string
	// FleetStateMachineArn is the fleet state machine's ARN
	// (statemachines/fleet.asl.json).
	FleetStateMachineArn string
	// EphemeralStateMachineArn is the short-lived login state machine's
	// ARN (statemachines/ephemeral.asl.json), registered as
	// "secretsaga-ephemeral".
	EphemeralStateMachineArn string
}

// StartSFNAPI starts a Step Functions API over the Env's runner with the
// rotation definition registered as name (default sfnlocal.StateMachineName),
// the fleet definition next to it, as FleetName(name), and the short-lived
// login definition as "secretsaga-ephemeral". Env.Close stops
// it.
func (e *Env) StartSFNAPI(name string) (*SFNAPI, error) {
	if name == "" {
		name = sfnlocal.StateMachineName
	}
	api := sfnlocal.NewAPI(e.Runner, sfnlocal.APIOptions{
		Region: region, AccountID: account,
		LambdaEndpoint: e.LambdaURL, RetryIntervalScale: e.opts.RetryIntervalScale,
	})
	arn := api.AddStateMachine(name, e.Definition)
	fleetArn := api.AddStateMachine(FleetName(name), e.FleetDefinition)
	ephArn := api.AddStateMachine("secretsaga-ephemeral", e.EphemeralDefinition)
	url, err := api.Start()
	if err != nil {
		return nil, err
	}
	// Before the runner's closer in Close's newest-first order.
	e.closers = append(e.closers, func() error { api.Close(); return nil })
	return &SFNAPI{API: api, URL: url, StateMachineArn: arn, FleetStateMachineArn: fleetArn, EphemeralStateMachineArn: ephArn}, nil
}

// FleetName is the fleet state machine's name next to the rotation state
// machine name: "secretsaga-rotation" → "secretsaga-fleet", "rotation" →
// "fleet", anything else gets "-fleet" appended.
func FleetName(rotationName string) string {
	if base, ok := strings.CutSuffix(rotationName, "rotation"); ok {
		return base + "fleet"
	}
	return rotationName + "-fleet"
}

// StartWithSFNAPI starts the whole local stack (retry intervals scaled to
// 1%) and its Step Functions API, for tests outside package integration,
// and closes them when t ends.
func StartWithSFNAPI(t testing.TB, ctx context.Context) (*Env, *SFNAPI) {
	t.Helper()
	env, err := Start(ctx, Options{RetryIntervalScale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	api, err := env.StartSFNAPI("secretsaga-rotation")
	if err != nil {
		t.Fatal(err)
	}
	return env, api
}

// NativeFunction is the name of the Secrets Manager native rotation entry
// (functions/nativerotation) in the local Lambda endpoint.
const NativeFunction = "secretsaga-nativerotation"

// RegisterNative registers functions/nativerotation's handler in the local
// Lambda endpoint, starting and watching sagas through api, and returns the
// function's ARN: the RotationLambdaARN that makes the Secrets Manager
// emulator's RotateSecret drive nativerotation → the saga, as Secrets
// Manager drives it in AWS. It polls the execution quicker than the
// deployed function (the local saga takes a second, not a minute), with the
// deployed timeout.
func (e *Env) RegisterNative(api *SFNAPI) string {
	svc := config.NewNative(e.configOptions("nativerotation", true), api.URL, api.StateMachineArn)
	svc.PollInterval, svc.MaxPollInterval = 20*time.Millisecond, 200*time.Millisecond
	// The handler's signature is main.go's (svc.Handle: an error only).
	e.Lambda.Register(NativeFunction, func(ctx context.Context, ev native.Event) error {
		return svc.Handle(faultinject.WithFunction(ctx, "nativerotation"), ev)
	}, functions.MustGet("nativerotation").Timeout)
	return FunctionARN("nativerotation")
}

// Package native is the Secrets Manager native rotation entry: the Lambda
// function a secret's rotation configuration names, which Secrets Manager's
// RotateSecret calls four times (createSecret, setSecret, testSecret,
// finishSecret) with the same ClientRequestToken.
//
// It does no rotation work itself. On createSecret it starts the rotation
// saga (statemachines/rotation.asl.json) for the token, under an execution
// name derived from the token so that a retried call joins the execution
// instead of starting a second one; the other steps only watch that
// execution and turn its failure into an error, so that Secrets Manager
// marks the rotation failed. The saga owns the version labels: its create
// puts AWSPENDING on the token's version, its finish moves AWSCURRENT.
package native

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// SFN is the part of the Step Functions API the entry uses.
type SFN interface {
	StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// The steps Secrets Manager calls a rotation function with.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// ExecutionPrefix starts the name of every execution the entry starts.
const ExecutionPrefix = "native-"

// Defaults of the Service's timing fields.
const (
	DefaultPollInterval    = 500 * time.Millisecond
	DefaultMaxPollInterval = 5 * time.Second
	DefaultMargin          = 5 * time.Second
	DefaultMaxWait         = 14 * time.Minute
)

// Event is what Secrets Manager sends a rotation function.
type Event struct {
	Step               string `json:"Step"`
	SecretId           string `json:"SecretId"`
	ClientRequestToken string `json:"ClientRequestToken"`
	// RotationToken is in the events of recent Secrets Manager rotations.
	// The entry accepts it and has no use for it: it is opaque, never
	// logged, never passed to the saga.
	RotationToken string `json:"RotationToken,omitempty"`
}

// Service is the native rotation entry.
type Service struct {
	SFN             SFN
	StateMachineArn string
	Log             *slog.Logger

	// PollInterval is finishSecret's first wait between DescribeExecution
	// calls; it doubles up to MaxPollInterval.
	PollInterval, MaxPollInterval time.Duration
	// Margin is kept back from the context's deadline (the Lambda
	// function's timeout) to return an error before being killed.
	Margin time.Duration
	// MaxWait bounds finishSecret's wait when the context has no deadline.
	MaxWait time.Duration
	// Sleep waits between polls (default: a timer honouring ctx).
	Sleep func(context.Context, time.Duration) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ExecutionName is the saga execution a rotation token maps to. Names are
// at most 80 characters of letters, digits, '-' and '_'; other characters
// of the token become '_'.
func ExecutionName(token string) string {
	name := []rune(ExecutionPrefix + token)
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			name[i] = '_'
		}
	}
	if len(name) > 80 {
		name = name[:80]
	}
	return string(name)
}

// ExecutionArn is the ARN Step Functions gives the execution named name of
// the state machine.
func ExecutionArn(stateMachineArn, name string) string {
	return strings.Replace(stateMachineArn, ":stateMachine:", ":execution:", 1) + ":" + name
}

// Handle runs one step of a native rotation.
func (s *Service) Handle(ctx context.Context, ev Event) error {
	step := "native " + ev.Step
	if ev.SecretId == "" || ev.ClientRequestToken == "" {
		return &faults.InputError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step,
			Reason: "SecretId and ClientRequestToken are required (the event Secrets Manager sends a rotation function)"}}
	}
	if s.StateMachineArn == "" || s.SFN == nil {
		return &faults.InputError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step,
			Reason: "no rotation state machine configured; set STATE_MACHINE_ARN"}}
	}
	name := ExecutionName(ev.ClientRequestToken)
	arn := ExecutionArn(s.StateMachineArn, name)
	log := s.logger().With("secretId", ev.SecretId, "step", ev.Step, "executionArn", arn)
	var err error
	switch ev.Step {
	case StepCreate:
		err = s.start(ctx, ev, step, name, arn)
	case StepSet:
		err = s.check(ctx, ev, step, arn)
	case StepTest:
		err = s.test(ctx, ev, step, arn, log)
	case StepFinish:
		err = s.wait(ctx, ev, step, arn)
	default:
		err = &faults.InputError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step,
			Reason: fmt.Sprintf("unknown step %q; Secrets Manager calls createSecret, setSecret, testSecret and finishSecret", ev.Step)}}
	}
	if err != nil {
		log.ErrorContext(ctx, "native rotation step failed", "errorType", faults.Name(err), "error", err.Error())
		return err
	}
	log.InfoContext(ctx, "native rotation step done")
	return nil
}

// start starts the saga for the token, or joins the execution an earlier
// call started.
func (s *Service) start(ctx context.Context, ev Event, step, name, arn string) error {
	input, _ := json.Marshal(map[string]string{"SecretId": ev.SecretId, "ClientRequestToken": ev.ClientRequestToken})
	_, err := s.SFN.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(s.StateMachineArn), Name: aws.String(name), Input: aws.String(string(input)),
	})
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		// The same name with another input: join only an execution of this
		// very rotation.
		d, derr := s.describe(ctx, ev, step, arn)
		if derr != nil {
			return derr
		}
		var in struct{ SecretId, ClientRequestToken string }
		if json.Unmarshal([]byte(aws.ToString(d.Input)), &in) != nil || in.ClientRequestToken != ev.ClientRequestToken {
			return &faults.ConflictError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step,
				Reason: "execution " + name + " exists for another rotation; start the rotation again with a new token"}}
		}
		return s.outcome(ev, step, d, false)
	}
	if err != nil {
		return faults.Classify(fmt.Errorf("start execution %s: %w", name, err), ev.SecretId, step)
	}
	return nil
}

// check fails if the execution has already failed.
func (s *Service) check(ctx context.Context, ev Event, step, arn string) error {
	d, err := s.describe(ctx, ev, step, arn)
	if err != nil {
		return err
	}
	return s.outcome(ev, step, d, false)
}

// test is check, except that testSecret for a token no execution was
// started for is Secrets Manager testing the configuration: "if you don't
// immediately rotate the secret, Secrets Manager tests the rotation
// configuration by running the testSecret step of the Lambda rotation
// function. The test creates an AWSPENDING version of the secret and then
// removes it." (RotateSecret, RotateImmediately). In a rotation createSecret
// always comes first and has started the execution, or Secrets Manager
// stopped at its failure. There is nothing to test then (the token's
// version is empty), so it passes once Step Functions answered for the
// state machine, which proves the function's configuration and permission;
// it starts nothing.
func (s *Service) test(ctx context.Context, ev Event, step, arn string, log *slog.Logger) error {
	d, err := s.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var missing *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		log.InfoContext(ctx, "testSecret without a rotation: Secrets Manager's configuration test (RotateImmediately=false); nothing started")
		return nil
	}
	if err != nil {
		return faults.Classify(fmt.Errorf("describe execution %s: %w", executionName(arn), err), ev.SecretId, step)
	}
	return s.outcome(ev, step, d, false)
}

// wait polls until the execution ends or the deadline (the context's, less
// the margin) comes.
func (s *Service) wait(ctx context.Context, ev Event, step, arn string) error {
	now := s.now()
	deadline := now.Add(s.dur(s.MaxWait, DefaultMaxWait))
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl.Add(-s.dur(s.Margin, DefaultMargin))
	}
	interval := s.dur(s.PollInterval, DefaultPollInterval)
	for {
		d, err := s.describe(ctx, ev, step, arn)
		if err != nil {
			return err
		}
		if d.Status != sfntypes.ExecutionStatusRunning && d.Status != sfntypes.ExecutionStatusPendingRedrive {
			return s.outcome(ev, step, d, true)
		}
		left := deadline.Sub(s.now())
		if left <= 0 {
			return &faults.RetryableError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step,
				Reason: "execution " + executionName(arn) + " is still running at the function's deadline; it continues, and its result is in the ledger (secretctl status)"}}
		}
		if err := s.sleep(ctx, min(interval, left)); err != nil {
			return faults.Classify(err, ev.SecretId, step)
		}
		interval = min(2*interval, s.dur(s.MaxPollInterval, DefaultMaxPollInterval))
	}
}

func (s *Service) describe(ctx context.Context, ev Event, step, arn string) (*sfn.DescribeExecutionOutput, error) {
	d, err := s.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var missing *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		return nil, &faults.RetryableError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step,
			Reason: "execution " + executionName(arn) + " does not exist; createSecret starts it (was it called for this token?)"}}
	}
	if err != nil {
		return nil, faults.Classify(fmt.Errorf("describe execution %s: %w", executionName(arn), err), ev.SecretId, step)
	}
	return d, nil
}

// outcome maps an execution's status onto the step's result: nil while it
// runs (unless final) or once it succeeded; the fault of its error if it
// failed. Only the error's name crosses, never its cause.
func (s *Service) outcome(ev Event, step string, d *sfn.DescribeExecutionOutput, final bool) error {
	name := executionName(aws.ToString(d.ExecutionArn))
	switch d.Status {
	case sfntypes.ExecutionStatusSucceeded:
		return nil
	case sfntypes.ExecutionStatusRunning, sfntypes.ExecutionStatusPendingRedrive:
		if !final {
			return nil
		}
		return &faults.RetryableError{Detail: faults.Detail{SecretID: ev.SecretId, Step: step, Reason: "execution " + name + " is still running"}}
	}
	errName := aws.ToString(d.Error)
	reason := fmt.Sprintf("the rotation saga (execution %s) ended %s", name, d.Status)
	if errName != "" {
		reason += " with " + errName
	}
	reason += "; see secretctl status and secretctl history for the secret"
	det := faults.Detail{SecretID: ev.SecretId, Step: step, Reason: reason}
	switch errName {
	case faults.NameConflict:
		return &faults.ConflictError{Detail: det}
	case faults.NameInput:
		return &faults.InputError{Detail: det}
	case faults.NameTestFailed:
		return &faults.TestFailedError{Detail: det}
	case faults.NameCompensationFailed:
		return &faults.CompensationFailedError{Detail: det}
	}
	if d.Status == sfntypes.ExecutionStatusAborted {
		return &faults.ConflictError{Detail: det}
	}
	return &faults.RetryableError{Detail: det}
}

func executionName(arn string) string {
	if i := strings.LastIndexByte(arn, ':'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

func (s *Service) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) dur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// UnmarshalJSON makes an event field of the wrong JSON type an InputError
// naming the field (not encoding/json's UnmarshalTypeError).
func (ev *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	return faults.DecodeInput(b, (*plain)(ev), "native", "the rotation event")
}

// Trace is the secret on the span of the entry's invocation
// (shared/tracing); the rotation token is never on it.
func (ev Event) Trace() tracing.Identity { return tracing.Identity{Secret: ev.SecretId} }

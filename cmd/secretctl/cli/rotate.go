package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

var rotateCmd = &command{
	name: "rotate", args: "<secret> | --tag KEY=VALUE",
	short: "start a rotation, or a fleet rotation by tag (--wait follows it to its end)",
	long: `Starts an execution of the rotation state machine for a secret, with input
{"SecretId": <secret ARN>, "Verify": <--verify>, "ClientRequestToken": <new version id>},
and prints the execution ARN and the new version id.

With --wait it follows the execution, printing each state as it is entered,
until it ends; it exits 1 if the execution did not succeed, with its error.
Needs --state-machine-arn (or SECRETSAGA_STATE_MACHINE_ARN).

With --tag KEY=VALUE instead of a secret it rotates every secret that carries
the tag: it starts the fleet state machine with {"TagKey", "TagValue",
"MaxConcurrency"} (and "Verify" with --verify). With --wait it shows how many
of the selected secrets have ended, then a table of the outcomes (succeeded,
rolled back, abandoned, compensation failed) and each failure's secret and
error; it exits 1 if any secret did not succeed. Needs
--fleet-state-machine-arn (or SECRETSAGA_FLEET_STATE_MACHINE_ARN).

With --require-fresh-consumers it refuses, starting nothing, when a consumer
the access audit recorded has not read the secret since the last rotation
(see secretctl consumers).`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		wait := fs.Bool("wait", false, "wait for the execution to end, printing progress")
		verify := fs.Bool("verify", false, "run the verify (bake) step after finish")
		poll := fs.Duration("poll-interval", 2*time.Second, "how often --wait polls Step Functions")
		timeout := fs.Duration("timeout", 35*time.Minute, "how long --wait waits at most")
		tag := fs.String("tag", "", "rotate every secret tagged `KEY=VALUE` (the fleet state machine)")
		maxConc := fs.Int("max-concurrency", 10, "with --tag: how many secrets rotate at once")
		fresh := fs.Bool("require-fresh-consumers", false, "refuse when a recorded consumer has not read the secret since the last rotation")
		return func(e *env, pos []string) int {
			var err error
			if *poll <= 0 || *timeout <= 0 {
				err = usagef("--poll-interval and --timeout must be positive")
			}
			if err == nil && *tag != "" && *fresh {
				err = usagef("--require-fresh-consumers takes one secret, not --tag")
			}
			if err == nil && *tag != "" {
				if len(pos) > 0 {
					err = usagef("give either a secret or --tag, not both")
				}
				if err == nil {
					err = e.rotateFleet(*tag, *maxConc, *wait, *verify, *poll, *timeout)
				}
				if errors.Is(err, errBreach) {
					return ExitError
				}
				if err != nil {
					return e.fail("rotate", err)
				}
				return ExitOK
			}
			id, err2 := exactlyOne(pos, "secret")
			if err == nil {
				err = err2
			}
			if err == nil && e.g.stateMachineArn == "" {
				err = usagef("no state machine: set --state-machine-arn or %s", EnvStateMachineArn)
			}
			if err == nil && *fresh {
				err = e.staleConsumers(id)
			}
			if err == nil {
				err = e.rotate(id, *wait, *verify, *poll, *timeout)
			}
			if err != nil {
				return e.fail("rotate", err)
			}
			return ExitOK
		}
	},
}

type rotateReport struct {
	Secret       string     `json:"secret"`
	ARN          string     `json:"arn"`
	ExecutionArn string     `json:"executionArn"`
	Version      string     `json:"version"`
	Rollback     bool       `json:"rollback,omitempty"`
	Started      time.Time  `json:"started"`
	Status       string     `json:"status,omitempty"`
	Stopped      *time.Time `json:"stopped,omitempty"`
	States       []string   `json:"states,omitempty"`
	Error        string     `json:"error,omitempty"`
	Cause        string     `json:"cause,omitempty"`
}

func (e *env) rotate(id string, wait, verify bool, poll, timeout time.Duration) error {
	if err := e.needSM(); err != nil {
		return err
	}
	if err := e.needSFN(); err != nil {
		return err
	}
	s, err := e.describe(id)
	if err != nil {
		return err
	}
	token := e.deps.NewToken()
	input := map[string]any{"SecretId": s.ARN, "Verify": verify, "ClientRequestToken": token}
	return e.runSaga(s, sagaRun{what: "rotation", name: "secretctl-" + token, input: input, version: token}, wait, poll, timeout)
}

// sagaRun is one execution of the rotation state machine that rotate and
// rollback start and follow.
type sagaRun struct {
	what     string // "rotation" or "rollback"
	name     string // execution name
	input    map[string]any
	version  string // the version that becomes AWSCURRENT
	rollback bool
}

// runSaga starts the rotation state machine and, with wait, follows the
// execution to its end: the part rotate and rollback share.
func (e *env) runSaga(s secretInfo, r sagaRun, wait bool, poll, timeout time.Duration) error {
	input, _ := json.Marshal(r.input)
	out, err := e.deps.SFN.StartExecution(e.ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(e.g.stateMachineArn), Name: aws.String(r.name), Input: aws.String(string(input)),
	})
	if err != nil {
		return fmt.Errorf("start execution: %w", err)
	}
	rep := rotateReport{Secret: s.Name, ARN: s.ARN, ExecutionArn: aws.ToString(out.ExecutionArn), Version: r.version, Rollback: r.rollback}
	if out.StartDate != nil {
		rep.Started = out.StartDate.UTC()
	}
	if !e.json() {
		fmt.Fprintf(e.stdout, "started %s of %s\n  execution: %s\n  version:   %s\n", r.what, s.Name, rep.ExecutionArn, r.version)
	}
	if !wait {
		if e.json() {
			return writeJSON(e.stdout, rep)
		}
		fmt.Fprintf(e.stdout, "follow it with: secretctl status %s\n", s.ARN)
		return nil
	}

	d, err := e.follow(rep.ExecutionArn, poll, timeout, func(seen int64, _ bool) (int64, error) { return e.progress(rep.ExecutionArn, seen, &rep) })
	if err != nil {
		var st *stillRunning
		if errors.As(err, &st) {
			return fmt.Errorf("%w; follow it with `secretctl status %s`", err, s.ARN)
		}
		return err
	}
	rep.Status = string(d.Status)
	if d.StopDate != nil {
		rep.Stopped = timePtr(*d.StopDate)
	}
	rep.Error, rep.Cause = aws.ToString(d.Error), aws.ToString(d.Cause)
	if e.json() {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%s", rep.Status)
		if rep.Stopped != nil && !rep.Started.IsZero() {
			fmt.Fprintf(e.stdout, " after %s", rep.Stopped.Sub(rep.Started).Round(time.Millisecond))
		}
		fmt.Fprintln(e.stdout)
		if rep.Status == "SUCCEEDED" {
			fmt.Fprintf(e.stdout, "see the result with: secretctl status %s\n", s.ARN)
		}
	}
	if rep.Status != "SUCCEEDED" {
		return errors.New(executionError(rep.ExecutionArn, rep.Status, rep.Error, rep.Cause) + "; see `secretctl status " + s.ARN + "` and `secretctl history " + s.ARN + "`")
	}
	return nil
}

// executionError describes an execution that did not succeed.
func executionError(arn, status, errName, cause string) string {
	msg := fmt.Sprintf("execution %s %s", executionName(arn), status)
	if errName != "" {
		msg += ": " + errName
	}
	if c := strings.TrimPrefix(causeMessage(cause), errName+": "); c != "" {
		msg += ": " + c
	}
	return msg
}

// stillRunning is follow's error when --timeout passed first.
type stillRunning struct {
	arn     string
	timeout time.Duration
}

func (e *stillRunning) Error() string {
	return fmt.Sprintf("execution %s still running after %v", e.arn, e.timeout)
}

// follow polls an execution until it ends (or timeout passes), calling
// progress with the last history event id seen (and whether the execution
// has ended) after every DescribeExecution, and returns the final
// description.
func (e *env) follow(arn string, poll, timeout time.Duration, progress func(seen int64, ended bool) (int64, error)) (*sfn.DescribeExecutionOutput, error) {
	deadline := e.deps.Now().Add(timeout)
	seen := int64(0) // last history event id handled
	for {
		d, err := e.deps.SFN.DescribeExecution(e.ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return nil, fmt.Errorf("describe execution: %w", err)
		}
		// History after Describe: once Describe says it ended, the history
		// read next is complete.
		ended := d.Status != sfntypes.ExecutionStatusRunning && d.Status != sfntypes.ExecutionStatusPendingRedrive
		if seen, err = progress(seen, ended); err != nil {
			return nil, err
		}
		if ended {
			return d, nil
		}
		if e.deps.Now().After(deadline) {
			return nil, &stillRunning{arn: arn, timeout: timeout}
		}
		if err := e.deps.Sleep(e.ctx, poll); err != nil {
			return nil, err
		}
	}
}

// executionEvents calls fn with every event of an execution's history after event
// id seen, and returns the last id.
func (e *env) executionEvents(arn string, seen int64, fn func(sfntypes.HistoryEvent)) (int64, error) {
	p := sfn.NewGetExecutionHistoryPaginator(e.deps.SFN, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn)})
	for p.HasMorePages() {
		pg, err := p.NextPage(e.ctx)
		if err != nil {
			return seen, fmt.Errorf("execution history: %w", err)
		}
		for _, ev := range pg.Events {
			if ev.Id <= seen {
				continue
			}
			seen = ev.Id
			fn(ev)
		}
	}
	return seen, nil
}

// causeMessage extracts errorMessage from a Lambda error cause.
func causeMessage(cause string) string {
	var c struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(cause), &c) == nil && c.ErrorMessage != "" {
		return c.ErrorMessage
	}
	return cause
}

// progress prints the states entered since event id seen.
func (e *env) progress(arn string, seen int64, rep *rotateReport) (int64, error) {
	return e.executionEvents(arn, seen, func(ev sfntypes.HistoryEvent) {
		t := string(ev.Type)
		switch {
		case strings.HasSuffix(t, "StateEntered") && ev.StateEnteredEventDetails != nil:
			name := aws.ToString(ev.StateEnteredEventDetails.Name)
			rep.States = append(rep.States, name)
			if !e.json() {
				fmt.Fprintf(e.stdout, "  %s  %s\n", fmtTime(aws.ToTime(ev.Timestamp)), name)
			}
		case t == string(sfntypes.HistoryEventTypeTaskFailed) && ev.TaskFailedEventDetails != nil && !e.json():
			fmt.Fprintf(e.stdout, "  %s    failed: %s\n", fmtTime(aws.ToTime(ev.Timestamp)), aws.ToString(ev.TaskFailedEventDetails.Error))
		}
	})
}

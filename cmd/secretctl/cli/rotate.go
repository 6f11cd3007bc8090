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
	name: "rotate", args: "<secret>",
	short: "start a rotation (and with --wait, follow it to its end)",
	long: `Starts an execution of the rotation state machine for a secret, with input
{"SecretId": <secret ARN>, "Verify": <--verify>, "ClientRequestToken": <new version id>},
and prints the execution ARN and the new version id.

With --wait it follows the execution, printing each state as it is entered,
until it ends; it exits 1 if the execution did not succeed, with its error.
Needs --state-machine-arn (or SECRETSAGA_STATE_MACHINE_ARN).`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		wait := fs.Bool("wait", false, "wait for the execution to end, printing progress")
		verify := fs.Bool("verify", false, "run the verify (bake) step after finish")
		poll := fs.Duration("poll-interval", 2*time.Second, "how often --wait polls Step Functions")
		timeout := fs.Duration("timeout", 35*time.Minute, "how long --wait waits at most")
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "secret")
			if err == nil && e.g.stateMachineArn == "" {
				err = usagef("no state machine: set --state-machine-arn or %s", EnvStateMachineArn)
			}
			if err == nil && (*poll <= 0 || *timeout <= 0) {
				err = usagef("--poll-interval and --timeout must be positive")
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
	input, _ := json.Marshal(map[string]any{"SecretId": s.ARN, "Verify": verify, "ClientRequestToken": token})
	name := "secretctl-" + token
	out, err := e.deps.SFN.StartExecution(e.ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(e.g.stateMachineArn), Name: aws.String(name), Input: aws.String(string(input)),
	})
	if err != nil {
		return fmt.Errorf("start execution: %w", err)
	}
	rep := rotateReport{Secret: s.Name, ARN: s.ARN, ExecutionArn: aws.ToString(out.ExecutionArn), Version: token}
	if out.StartDate != nil {
		rep.Started = out.StartDate.UTC()
	}
	if !e.json() {
		fmt.Fprintf(e.stdout, "started rotation of %s\n  execution: %s\n  version:   %s\n", s.Name, rep.ExecutionArn, token)
	}
	if !wait {
		if e.json() {
			return writeJSON(e.stdout, rep)
		}
		fmt.Fprintf(e.stdout, "follow it with: secretctl status %s\n", s.ARN)
		return nil
	}

	deadline := e.deps.Now().Add(timeout)
	seen := int64(0) // last history event id printed
	for {
		d, err := e.deps.SFN.DescribeExecution(e.ctx, &sfn.DescribeExecutionInput{ExecutionArn: out.ExecutionArn})
		if err != nil {
			return fmt.Errorf("describe execution: %w", err)
		}
		// History after Describe: once Describe says it ended, the history
		// read next is complete.
		if seen, err = e.progress(rep.ExecutionArn, seen, &rep); err != nil {
			return err
		}
		if d.Status != sfntypes.ExecutionStatusRunning && d.Status != sfntypes.ExecutionStatusPendingRedrive {
			rep.Status = string(d.Status)
			if d.StopDate != nil {
				rep.Stopped = timePtr(*d.StopDate)
			}
			rep.Error, rep.Cause = aws.ToString(d.Error), aws.ToString(d.Cause)
			break
		}
		if e.deps.Now().After(deadline) {
			return fmt.Errorf("execution %s still running after %v; follow it with `secretctl status %s`", rep.ExecutionArn, timeout, s.ARN)
		}
		if err := e.deps.Sleep(e.ctx, poll); err != nil {
			return err
		}
	}
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
		msg := fmt.Sprintf("execution %s %s", executionName(rep.ExecutionArn), rep.Status)
		if rep.Error != "" {
			msg += ": " + rep.Error
		}
		if c := strings.TrimPrefix(causeMessage(rep.Cause), rep.Error+": "); c != "" {
			msg += ": " + c
		}
		return errors.New(msg + "; see `secretctl status " + s.ARN + "` and `secretctl history " + s.ARN + "`")
	}
	return nil
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
		}
	}
	return seen, nil
}

package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/fleet"
)

// fleetReport is rotate --tag's result.
type fleetReport struct {
	TagKey         string         `json:"tagKey"`
	TagValue       string         `json:"tagValue"`
	MaxConcurrency int            `json:"maxConcurrency"`
	ExecutionArn   string         `json:"executionArn"`
	Started        time.Time      `json:"started"`
	Status         string         `json:"status,omitempty"`
	Stopped        *time.Time     `json:"stopped,omitempty"`
	Error          string         `json:"error,omitempty"`
	Cause          string         `json:"cause,omitempty"`
	Summary        *fleet.Summary `json:"summary,omitempty"`
}

// fleetProgress counts the Map iterations that have ended.
type fleetProgress struct {
	selected          int // -1 while unknown
	succeeded, failed int
	lastPrinted       string
}

func (e *env) rotateFleet(tag string, maxConc int, wait, verify bool, poll, timeout time.Duration) error {
	key, value, ok := strings.Cut(tag, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	switch {
	case !ok || key == "" || value == "":
		return usagef("--tag must be KEY=VALUE, not %q", tag)
	case maxConc < 1:
		return usagef("--max-concurrency must be at least 1")
	case e.g.fleetArn == "":
		return usagef("no fleet state machine: set --fleet-state-machine-arn or %s", EnvFleetStateMachineArn)
	}
	if err := e.needSFN(); err != nil {
		return err
	}
	in := map[string]any{"TagKey": key, "TagValue": value, "MaxConcurrency": maxConc}
	if verify {
		in["Verify"] = true
	}
	input, _ := json.Marshal(in)
	name := "secretctl-fleet-" + e.deps.NewToken()
	out, err := e.deps.SFN.StartExecution(e.ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(e.g.fleetArn), Name: aws.String(name), Input: aws.String(string(input)),
	})
	if err != nil {
		return fmt.Errorf("start fleet execution: %w", err)
	}
	rep := fleetReport{TagKey: key, TagValue: value, MaxConcurrency: maxConc, ExecutionArn: aws.ToString(out.ExecutionArn)}
	if out.StartDate != nil {
		rep.Started = out.StartDate.UTC()
	}
	if !e.json() {
		fmt.Fprintf(e.stdout, "started fleet rotation of the secrets tagged %s=%s (at most %d at once)\n  execution: %s\n", key, value, maxConc, rep.ExecutionArn)
	}
	if !wait {
		if e.json() {
			return writeJSON(e.stdout, rep)
		}
		return nil
	}

	p := &fleetProgress{selected: -1}
	d, err := e.follow(rep.ExecutionArn, poll, timeout, func(seen int64, ended bool) (int64, error) {
		seen, err := e.executionEvents(rep.ExecutionArn, seen, p.add)
		if err == nil && !ended && !e.json() {
			p.print(e)
		}
		return seen, err
	})
	if err != nil {
		return err
	}
	rep.Status = string(d.Status)
	if d.StopDate != nil {
		rep.Stopped = timePtr(*d.StopDate)
	}
	rep.Error, rep.Cause = aws.ToString(d.Error), aws.ToString(d.Cause)
	if d.Status == sfntypes.ExecutionStatusSucceeded && d.Output != nil {
		var sum fleet.Summary
		if err := json.Unmarshal([]byte(*d.Output), &sum); err != nil {
			return fmt.Errorf("fleet execution %s: its output is not a summary: %w", executionName(rep.ExecutionArn), err)
		}
		rep.Summary = &sum
		// Locally the history arrives at the end only; the summary has
		// the selected count then.
		if p.selected < 0 {
			p.selected = sum.Total
		}
	}
	if !e.json() {
		p.print(e)
	}
	if e.json() {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		e.printFleet(rep)
	}
	switch {
	case rep.Status != "SUCCEEDED":
		return fmt.Errorf("%s; nothing may have been rotated (each secret's outcome is in its journal: secretctl audit --since 1d)",
			executionError(rep.ExecutionArn, rep.Status, rep.Error, rep.Cause))
	case rep.Summary.Succeeded != rep.Summary.Total:
		fmt.Fprintf(e.stderr, "secretctl rotate: %d of %d secrets did not rotate; see `secretctl status <secret>` and `secretctl history <secret>` for each\n",
			rep.Summary.Total-rep.Summary.Succeeded, rep.Summary.Total)
		return errBreach
	}
	return nil
}

// add counts one history event.
func (p *fleetProgress) add(ev sfntypes.HistoryEvent) {
	switch ev.Type {
	case sfntypes.HistoryEventTypeMapIterationSucceeded:
		p.succeeded++
	case sfntypes.HistoryEventTypeMapIterationFailed, sfntypes.HistoryEventTypeMapIterationAborted:
		p.failed++
	case sfntypes.HistoryEventTypeMapStateStarted:
		// A Map runs one page: its length is the selection's only when
		// listsecrets' Count (the whole selection) was not seen.
		if ev.MapStateStartedEventDetails != nil && p.selected < 0 {
			p.selected = int(ev.MapStateStartedEventDetails.Length)
		}
	case sfntypes.HistoryEventTypeTaskSucceeded:
		// The selection step's output: {"SecretIds": [page], "Count": n, "Next": cursor}.
		if ev.TaskSucceededEventDetails != nil && p.selected < 0 {
			var sel struct {
				SecretIds []string
				Count     *int
			}
			if json.Unmarshal([]byte(aws.ToString(ev.TaskSucceededEventDetails.Output)), &sel) == nil && sel.Count != nil {
				p.selected = *sel.Count
			}
		}
	}
}

// print writes a progress line when the counts changed.
func (p *fleetProgress) print(e *env) {
	done := p.succeeded + p.failed
	if done == 0 && p.selected < 0 {
		return
	}
	var line string
	if p.selected >= 0 {
		const width = 20
		filled := width
		if p.selected > 0 {
			filled = min(width, done*width/p.selected)
		}
		line = fmt.Sprintf("  [%s%s] %d/%d secrets ended", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, p.selected)
	} else {
		line = fmt.Sprintf("  %d secrets ended", done)
	}
	if p.failed > 0 {
		line += fmt.Sprintf(" (%d iterations failed)", p.failed)
	}
	if line == p.lastPrinted {
		return
	}
	p.lastPrinted = line
	fmt.Fprintln(e.stdout, line)
}

func (e *env) printFleet(rep fleetReport) {
	fmt.Fprintf(e.stdout, "%s", rep.Status)
	if rep.Stopped != nil && !rep.Started.IsZero() {
		fmt.Fprintf(e.stdout, " after %s", rep.Stopped.Sub(rep.Started).Round(time.Millisecond))
	}
	fmt.Fprintln(e.stdout)
	if rep.Summary == nil {
		return
	}
	s := rep.Summary
	fmt.Fprintf(e.stdout, "\nSummary: %s\n", s)
	t := newTable(e.stdout, "  OUTCOME", "SECRETS")
	t.row("  "+fleet.OutcomeSucceeded, strconv.Itoa(s.Succeeded))
	t.row("  "+fleet.OutcomeRolledBack, strconv.Itoa(s.RolledBack))
	t.row("  "+fleet.OutcomeAbandoned, strconv.Itoa(s.Abandoned))
	t.row("  "+fleet.OutcomeCompensationFailed, strconv.Itoa(s.CompensationFailed))
	t.row("  total", strconv.Itoa(s.Total))
	t.flush()
	if len(s.Failures) == 0 {
		return
	}
	fmt.Fprintln(e.stdout, "\nFailures:")
	t = newTable(e.stdout, "  SECRET", "OUTCOME", "ERROR")
	for _, f := range s.Failures {
		t.row("  "+f.SecretId, f.Outcome, f.Error)
	}
	t.flush()
}

//go:build integration

package sfnlocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
)

// apiClient starts an API over the shared runner and returns a real sfn
// client pointed at it, plus the ARN of a state machine with definition.
func apiClient(t *testing.T, name, definition string) (*sfn.Client, *sfnlocal.API, string) {
	t.Helper()
	e := setup(t)
	api := sfnlocal.NewAPI(e.runner, sfnlocal.APIOptions{LambdaEndpoint: e.url, RetryIntervalScale: 0.01})
	arn := api.AddStateMachine(name, []byte(definition))
	url, err := api.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	c := sfn.New(sfn.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	return c, api, arn
}

func waitEnd(t *testing.T, c *sfn.Client, arn string) *sfn.DescribeExecutionOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: &arn})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != types.ExecutionStatusRunning {
			return d
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s still running", arn)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestAPIStartDescribeHistory(t *testing.T) {
	c, _, smArn := apiClient(t, "demo", `{
		"StartAt": "Echo",
		"States": {
			"Echo": {"Type": "Task", "Resource": "`+fnARN+`echo", "ResultPath": "$.r", "Next": "Ctx"},
			"Ctx": {"Type": "Task", "Resource": "`+fnARN+`context", "Parameters": {"id.$": "$$.Execution.Id", "sm.$": "$$.StateMachine.Id"}, "ResultPath": "$.ctx", "Next": "Done"},
			"Done": {"Type": "Pass", "End": true}
		}
	}`)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	start, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Name: aws.String("run-1"), Input: aws.String(`{"v": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:states:us-east-1:000000000000:execution:demo:run-1"; aws.ToString(start.ExecutionArn) != want {
		t.Fatalf("arn %s, want %s", aws.ToString(start.ExecutionArn), want)
	}
	if start.StartDate == nil || start.StartDate.Before(before) || start.StartDate.After(time.Now().Add(time.Second)) {
		t.Fatalf("startDate %v", start.StartDate)
	}
	d := waitEnd(t, c, *start.ExecutionArn)
	if d.Status != types.ExecutionStatusSucceeded || aws.ToString(d.Input) != `{"v": 1}` || d.StopDate == nil || d.StopDate.Before(*d.StartDate) {
		t.Fatalf("describe %+v", d)
	}
	var out struct {
		V   int
		Ctx struct{ ID, SM string }
	}
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
		t.Fatal(err)
	}
	if out.V != 1 || out.Ctx.ID != *start.ExecutionArn || out.Ctx.SM != smArn {
		t.Fatalf("output %s", aws.ToString(d.Output))
	}

	h, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: start.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	var typesSeen, entered []string
	for i, ev := range h.Events {
		typesSeen = append(typesSeen, string(ev.Type))
		if ev.Id != int64(i+1) || ev.PreviousEventId != int64(i) || ev.Timestamp == nil {
			t.Fatalf("event %d: id %d prev %d ts %v", i, ev.Id, ev.PreviousEventId, ev.Timestamp)
		}
		if ev.StateEnteredEventDetails != nil {
			entered = append(entered, aws.ToString(ev.StateEnteredEventDetails.Name))
		}
	}
	want := "ExecutionStarted TaskStateEntered TaskScheduled TaskSucceeded TaskStateExited TaskStateEntered TaskScheduled TaskSucceeded TaskStateExited PassStateEntered PassStateExited ExecutionSucceeded"
	if got := strings.Join(typesSeen, " "); got != want {
		t.Fatalf("history\n got %s\nwant %s", got, want)
	}
	if !slices.Equal(entered, []string{"Echo", "Ctx", "Done"}) {
		t.Fatalf("entered %v", entered)
	}
	if h.Events[0].ExecutionStartedEventDetails == nil || aws.ToString(h.Events[0].ExecutionStartedEventDetails.Input) != `{"v": 1}` {
		t.Fatalf("started details %+v", h.Events[0].ExecutionStartedEventDetails)
	}

	// Paging and reverse order, through the SDK's paginator.
	p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: start.ExecutionArn, MaxResults: 5, ReverseOrder: true})
	var ids []int64
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range pg.Events {
			ids = append(ids, ev.Id)
		}
	}
	if len(ids) != 12 || ids[0] != 12 || ids[11] != 1 {
		t.Fatalf("paged ids %v", ids)
	}

	// The execution has ended: its name is taken, whatever the input
	// (TestAPIStartExecutionIdempotence has the whole table).
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Name: aws.String("run-1"), Input: aws.String(`{"v":1}`)})
	var exists *types.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		t.Fatalf("same name as an ended execution: %v", err)
	}

	_, err = c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(strings.Replace(*start.ExecutionArn, "run-1", "nope", 1))})
	var missing *types.ExecutionDoesNotExist
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown execution: %v", err)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn + "x")})
	var noSM *types.StateMachineDoesNotExist
	if !errors.As(err, &noSM) {
		t.Fatalf("unknown state machine: %v", err)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Input: aws.String(`{`)})
	var badInput *types.InvalidExecutionInput
	if !errors.As(err, &badInput) {
		t.Fatalf("bad input: %v", err)
	}
}

func TestAPIFailedListStop(t *testing.T) {
	c, api, smArn := apiClient(t, "mixed", `{
		"StartAt": "Route",
		"States": {
			"Route": {"Type": "Choice", "Choices": [{"Variable": "$.mode", "StringEquals": "wait", "Next": "Sleep"}], "Default": "Conflict"},
			"Sleep": {"Type": "Wait", "Seconds": 30, "End": true},
			"Conflict": {"Type": "Task", "Resource": "`+fnARN+`conflict", "End": true}
		}
	}`)
	ctx := context.Background()
	failed, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Input: aws.String(`{"mode":"fail","Secret":"db"}`)})
	if err != nil {
		t.Fatal(err)
	}
	d := waitEnd(t, c, *failed.ExecutionArn)
	if d.Status != types.ExecutionStatusFailed || aws.ToString(d.Error) != "ConflictError" || !strings.Contains(aws.ToString(d.Cause), "someone else rotated db") || d.Output != nil {
		t.Fatalf("failed: %+v", d)
	}
	h, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: failed.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	last := h.Events[len(h.Events)-1]
	if last.Type != types.HistoryEventTypeExecutionFailed || aws.ToString(last.ExecutionFailedEventDetails.Error) != "ConflictError" {
		t.Fatalf("last event %+v", last)
	}
	if h.Events[1].Type != types.HistoryEventTypeChoiceStateEntered {
		t.Fatalf("second event %s", h.Events[1].Type)
	}

	waiting, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Name: aws.String("sleeper"), Input: aws.String(`{"mode":"wait"}`)})
	if err != nil {
		t.Fatal(err)
	}
	running, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: &smArn, StatusFilter: types.ExecutionStatusRunning})
	if err != nil || len(running.Executions) != 1 || aws.ToString(running.Executions[0].Name) != "sleeper" {
		t.Fatalf("running: %v %+v", err, running)
	}
	all, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: &smArn})
	if err != nil || len(all.Executions) != 2 || aws.ToString(all.Executions[0].Name) != "sleeper" {
		t.Fatalf("all: %v %+v", err, all)
	}
	if _, err := c.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: waiting.ExecutionArn, Error: aws.String("Operator"), Cause: aws.String("test")}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := api.Wait(wctx, *waiting.ExecutionArn); err != nil {
		t.Fatal(err)
	}
	d = waitEnd(t, c, *waiting.ExecutionArn)
	if d.Status != types.ExecutionStatusAborted || aws.ToString(d.Error) != "Operator" || d.StopDate == nil {
		t.Fatalf("stopped: %+v", d)
	}
	aborted, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: &smArn, StatusFilter: types.ExecutionStatusAborted})
	if err != nil || len(aborted.Executions) != 1 {
		t.Fatalf("aborted: %v %+v", err, aborted)
	}
	sm, err := c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: &smArn})
	if err != nil || aws.ToString(sm.Name) != "mixed" || !strings.Contains(aws.ToString(sm.Definition), "Conflict") {
		t.Fatalf("describe state machine: %v %+v", err, sm)
	}
}

// startIdempotence is the AWS API reference's rule for StartExecution with
// an execution name already used, which the API implements.
const startIdempotence = "StartExecution is idempotent for STANDARD workflows. For a STANDARD workflow, if you call StartExecution " +
	"with the same name and input as a running execution, the call succeeds and return the same response as the original request. " +
	"If the execution is closed or if the input is different, it returns a 400 ExecutionAlreadyExists error."

// TestAPIStartExecutionIdempotence starts an execution that waits, then
// starts the same name again while it runs and after it was stopped.
func TestAPIStartExecutionIdempotence(t *testing.T) {
	c, api, smArn := apiClient(t, "idem", `{"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 60, "End": true}}}`)
	ctx := context.Background()
	first, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Name: aws.String("once"), Input: aws.String(`{"a": 1, "b": [2]}`)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: first.ExecutionArn})
	})
	stop := func(t *testing.T) {
		if _, err := c.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: first.ExecutionArn}); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := api.Wait(wctx, *first.ExecutionArn); err != nil {
			t.Fatal(err)
		}
	}
	// In order: the first rows need the execution running, the last ones
	// need it closed (stopped by the row that says so).
	tests := []struct {
		name, input string
		stopFirst   bool
		wantExists  bool
		cite        string
	}{
		{name: "running, same input", input: `{"a": 1, "b": [2]}`, cite: startIdempotence},
		{name: "running, same input written differently", input: `{"b":[2],"a":1}`, cite: startIdempotence + " (input compared as JSON)"},
		{name: "running, different input", input: `{"a": 2}`, wantExists: true, cite: startIdempotence},
		{name: "closed, same input", input: `{"a": 1, "b": [2]}`, stopFirst: true, wantExists: true, cite: startIdempotence},
		{name: "closed, different input", input: `{"a": 3}`, wantExists: true, cite: startIdempotence},
	}
	for _, tt := range tests {
		if tt.stopFirst {
			stop(t)
		}
		out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: &smArn, Name: aws.String("once"), Input: aws.String(tt.input)})
		var exists *types.ExecutionAlreadyExists
		switch {
		case tt.wantExists && !errors.As(err, &exists):
			t.Errorf("%s: err %v, want ExecutionAlreadyExists (%s)", tt.name, err, tt.cite)
		case !tt.wantExists && err != nil:
			t.Errorf("%s: %v, want the original response (%s)", tt.name, err, tt.cite)
		case !tt.wantExists && (aws.ToString(out.ExecutionArn) != *first.ExecutionArn || !out.StartDate.Equal(*first.StartDate)):
			t.Errorf("%s: got %s at %v, want the original %s at %v (%s)", tt.name, aws.ToString(out.ExecutionArn), out.StartDate, *first.ExecutionArn, first.StartDate, tt.cite)
		}
	}
	// Refused starts changed nothing: one execution, aborted.
	all, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: &smArn})
	if err != nil || len(all.Executions) != 1 || all.Executions[0].Status != types.ExecutionStatusAborted {
		t.Fatalf("executions after the refused starts: %v %+v", err, all)
	}
}

//go:build integration

package sfnlocal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/lambdalocal"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/statemachines"
)

type ConflictError struct{ msg string }

func (e *ConflictError) Error() string { return e.msg }

type RetryableError struct{}

func (*RetryableError) Error() string { return "try again" }

const fnARN = "arn:aws:lambda:us-east-1:000000000000:function:"

type env struct {
	runner *sfnlocal.Runner
	lambda *lambdalocal.Server
	url    string
	flaky  atomic.Int32 // failures left for "flaky"
}

var (
	shared     *env
	sharedErr  error
	sharedOnce sync.Once
)

// setup starts one runner and one Lambda endpoint for all the tests.
func setup(t testing.TB) *env {
	t.Helper()
	sharedOnce.Do(func() {
		e := &env{lambda: lambdalocal.New()}
		e.lambda.Register("echo", func(in map[string]any) (map[string]any, error) {
			return map[string]any{"echoed": in}, nil
		}, 0)
		e.lambda.Register("flaky", func() (string, error) {
			if e.flaky.Add(-1) >= 0 {
				return "", &RetryableError{}
			}
			return "ok", nil
		}, 0)
		e.lambda.Register("conflict", func(in struct{ Secret string }) error {
			return &ConflictError{msg: "someone else rotated " + in.Secret}
		}, 0)
		e.lambda.Register("context", func(in map[string]any) (map[string]any, error) { return in, nil }, 0)
		e.lambda.Register("slow", func(ctx context.Context, in struct{ MS int }) (int, error) {
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
			case <-ctx.Done():
			}
			return in.MS, nil
		}, 0)
		if e.url, sharedErr = e.lambda.Start(); sharedErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.runner, sharedErr = sfnlocal.Start(ctx, sfnlocal.Options{Stderr: os.Stderr})
		shared = e
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if shared.runner != nil {
			_ = shared.runner.Close()
		}
		_ = shared.lambda.Close()
	}
	os.Exit(code)
}

func (e *env) run(t *testing.T, def string, input any, scale float64) *sfnlocal.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	x, err := e.runner.Execute(ctx, sfnlocal.Request{
		Definition: []byte(def), Input: input, LambdaEndpoint: e.url, RetryIntervalScale: scale,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s %s %s\n%s", x.Name, x.Status, x.Error, x.Cause, x.Timeline())
	return x
}

func count(x *sfnlocal.Execution, typ string) int {
	n := 0
	for _, e := range x.Events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestTaskResultPath(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{
		"StartAt": "Echo",
		"States": {
			"Echo": {"Type": "Task", "Resource": "`+fnARN+`echo", "Parameters": {"v.$": "$.v"}, "ResultPath": "$.result", "End": true}
		}
	}`, map[string]any{"v": 42}, 0)
	if x.Status != "SUCCEEDED" || x.Error != "" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	var out map[string]any
	if err := json.Unmarshal(x.Output, &out); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(out); got != "map[result:map[echoed:map[v:42]] v:42]" {
		t.Fatalf("output %s", x.Output)
	}
	var types []string
	for _, ev := range x.Events {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, " "); got != "ExecutionStarted StateEntered StateExited ExecutionSucceeded" {
		t.Fatalf("events %s", got)
	}
	if x.Transitions() != 1 || x.Events[1].State != "Echo" {
		t.Fatalf("transitions %d, events %+v", x.Transitions(), x.Events)
	}
	if !strings.HasPrefix(x.Arn, "arn:aws:states:us-east-1:000000000000:execution:rotation:") || !strings.HasSuffix(x.Arn, ":"+x.Name) || x.Name == "" {
		t.Fatalf("arn %s name %s", x.Arn, x.Name)
	}
	if x.Duration < 0 || x.Duration > 30*time.Second {
		t.Fatalf("duration %v", x.Duration)
	}
}

func TestRetryThenSucceed(t *testing.T) {
	e := setup(t)
	e.flaky.Store(2)
	x := e.run(t, `{
		"StartAt": "Flaky",
		"States": {
			"Flaky": {
				"Type": "Task", "Resource": "`+fnARN+`flaky", "Next": "Done",
				"Retry": [
					{"ErrorEquals": ["ConflictError"], "MaxAttempts": 0},
					{"ErrorEquals": ["RetryableError"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2, "MaxDelaySeconds": 20, "JitterStrategy": "FULL"}
				]
			},
			"Done": {"Type": "Succeed"}
		}
	}`, nil, 0.005)
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	if string(x.Output) != `"ok"` {
		t.Fatalf("output %s", x.Output)
	}
	if n := count(x, "StateRetried"); n != 2 {
		t.Fatalf("StateRetried %d, want 2", n)
	}
	if n := count(x, "StateFailed"); n != 2 {
		t.Fatalf("StateFailed %d, want 2", n)
	}
	attempt := 0
	for _, ev := range x.Events {
		switch ev.Type {
		case "StateFailed":
			if ev.State != "Flaky" || ev.Error != "RetryableError" || ev.Cause != `{"errorMessage":"try again","errorType":"RetryableError"}` {
				t.Fatalf("failure event %+v", ev)
			}
		case "StateRetried":
			attempt++
			if ev.State != "Flaky" || ev.Attempt != attempt || ev.Error != "RetryableError" {
				t.Fatalf("retry event %+v", ev)
			}
		case "StateExited":
			if ev.State == "Flaky" && ev.Next != "Done" {
				t.Fatalf("exit event %+v", ev)
			}
		}
	}
	// Two states entered, two retries.
	if x.Transitions() != 4 {
		t.Fatalf("transitions %d", x.Transitions())
	}
	tl := x.Timeline()
	if !strings.Contains(tl, "StateRetried") || !strings.Contains(tl, "attempt 2 after RetryableError") || strings.HasSuffix(tl, "\n\n") {
		t.Fatalf("timeline:\n%s", tl)
	}
	for _, line := range strings.Split(strings.TrimSuffix(tl, "\n"), "\n") {
		if !strings.HasPrefix(line, "+") || strings.HasSuffix(line, " ") {
			t.Fatalf("timeline line %q", line)
		}
	}
}

func TestRetryExhausted(t *testing.T) {
	e := setup(t)
	e.flaky.Store(100)
	defer e.flaky.Store(0)
	x := e.run(t, `{
		"StartAt": "Flaky",
		"States": {
			"Flaky": {"Type": "Task", "Resource": "`+fnARN+`flaky", "End": true,
				"Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}]}
		}
	}`, nil, 0.01)
	if x.Status != "FAILED" || x.Error != "RetryableError" || x.Cause != `{"errorMessage":"try again","errorType":"RetryableError"}` {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	if count(x, "StateRetried") != 2 || count(x, "ExecutionFailed") != 1 || x.Output != nil {
		t.Fatalf("events:\n%s", x.Timeline())
	}
}

func TestCatchToFailState(t *testing.T) {
	e := setup(t)
	def := `{
		"StartAt": "Rotate",
		"States": {
			"Rotate": {
				"Type": "Task", "Resource": "` + fnARN + `conflict", "Next": "Done",
				"Retry": [{"ErrorEquals": ["RetryableError"], "MaxAttempts": 3}],
				"Catch": [
					{"ErrorEquals": ["ConflictError"], "ResultPath": "$.error", "Next": "LeaseHeld"},
					{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Other"}
				]
			},
			"Done": {"Type": "Succeed"},
			"LeaseHeld": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
			"Other": {"Type": "Fail", "Error": "OtherError", "Cause": "something else"}
		}
	}`
	x := e.run(t, def, map[string]any{"Secret": "db"}, 0)
	if x.Status != "FAILED" || x.Error != "ConflictError" {
		t.Fatalf("status %s error %s cause %s", x.Status, x.Error, x.Cause)
	}
	var cause struct{ ErrorMessage, ErrorType string }
	if err := json.Unmarshal([]byte(x.Cause), &cause); err != nil || cause.ErrorMessage != "someone else rotated db" || cause.ErrorType != "ConflictError" {
		t.Fatalf("cause %q (%v)", x.Cause, err)
	}
	var caught *sfnlocal.Event
	for i := range x.Events {
		if x.Events[i].Type == "StateCaught" {
			caught = &x.Events[i]
		}
	}
	if caught == nil || caught.State != "Rotate" || caught.Next != "LeaseHeld" || caught.Error != "ConflictError" {
		t.Fatalf("caught %+v\n%s", caught, x.Timeline())
	}
	if count(x, "StateRetried") != 0 || !strings.Contains(x.Timeline(), "ConflictError -> LeaseHeld") {
		t.Fatalf("timeline:\n%s", x.Timeline())
	}

	// A Fail state with literal Error and Cause, reached through States.ALL.
	x = e.run(t, strings.Replace(def, `"ConflictError"], "ResultPath"`, `"NoSuchError"], "ResultPath"`, 1), map[string]any{"Secret": "db"}, 0)
	if x.Status != "FAILED" || x.Error != "OtherError" || x.Cause != "something else" {
		t.Fatalf("status %s error %s cause %s", x.Status, x.Error, x.Cause)
	}
}

func TestFailStateWithoutCause(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope"}}}`, nil, 0)
	if x.Status != "FAILED" || x.Error != "Nope" || x.Cause != "" {
		t.Fatalf("status %s error %q cause %q", x.Status, x.Error, x.Cause)
	}
}

func TestContextObject(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{
		"StartAt": "Ctx",
		"States": {
			"Ctx": {"Type": "Task", "Resource": "`+fnARN+`context", "End": true,
				"Parameters": {"id.$": "$$.Execution.Id", "name.$": "$$.Execution.Name", "sm.$": "$$.StateMachine.Id", "input.$": "$$.Execution.Input"}}
		}
	}`, map[string]string{"a": "b"}, 0)
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	var out struct {
		ID, Name, SM string
		Input        map[string]string
	}
	if err := json.Unmarshal(x.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != x.Arn || out.Name != x.Name || out.SM != "arn:aws:states:us-east-1:000000000000:stateMachine:rotation" || out.Input["a"] != "b" {
		t.Fatalf("context %+v, execution %s", out, x.Arn)
	}
}

func TestLambdaInvokeIntegrationAndNested(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{
		"StartAt": "Both",
		"States": {
			"Both": {
				"Type": "Parallel", "Next": "Each",
				"Branches": [
					{"StartAt": "Invoke", "States": {"Invoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
						"Parameters": {"FunctionName": "`+fnARN+`echo", "Payload": {"x": 1}}, "ResultSelector": {"p.$": "$.Payload"}, "End": true}}},
					{"StartAt": "Direct", "States": {"Direct": {"Type": "Task", "Resource": "`+fnARN+`echo", "End": true}}}
				]
			},
			"Each": {
				"Type": "Map", "ItemsPath": "$", "MaxConcurrency": 2, "End": true,
				"ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Item", "States": {"Item": {"Type": "Task", "Resource": "`+fnARN+`echo", "End": true}}}
			}
		}
	}`, map[string]int{"n": 1}, 0)
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	want := `[{"echoed":{"p":{"echoed":{"x":1}}}},{"echoed":{"echoed":{"n":1}}}]`
	var got, w any
	_ = json.Unmarshal(x.Output, &got)
	_ = json.Unmarshal([]byte(want), &w)
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("output %s, want %s", x.Output, want)
	}
	// Both, Invoke, Direct, Each and two Items.
	if x.Transitions() != 6 {
		t.Fatalf("transitions %d\n%s", x.Transitions(), x.Timeline())
	}
	// The Map's two iterations' Item events name their iteration; the
	// Parallel's branches and the root's states are in none.
	items := map[int]int{}
	for _, ev := range x.Events {
		switch {
		case ev.State == "Item":
			items[ev.Iteration]++
		case ev.Iteration != 0 && ev.State != "Each":
			t.Errorf("%s %s: iteration %d, outside any Map iteration", ev.Type, ev.State, ev.Iteration)
		}
	}
	if len(items) != 2 || items[1] == 0 || items[2] == 0 {
		t.Errorf("Item events by iteration %v, want iterations 1 and 2\n%s", items, x.Timeline())
	}
}

func TestUnknownFunctionAndUnsupported(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "`+fnARN+`missing", "End": true}}}`, nil, 0)
	if x.Status != "FAILED" || x.Error != "Lambda.ResourceNotFoundException" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	x = e.run(t, `{"StartAt": "T", "States": {"T": {"Type": "Pass", "Assign": {"a": 1}, "End": true}}}`, nil, 0)
	if x.Status != "FAILED" || x.Error != "Runner.Error" || !strings.Contains(x.Cause, "Assign") {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	x = e.run(t, `{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": true}}}`, nil, 0)
	if x.Status != "FAILED" || x.Error != "Runner.Error" || !strings.Contains(x.Cause, "dynamodb:putItem") {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	x = e.run(t, `{"StartAt": "Nowhere", "States": {"T": {"Type": "Pass", "End": true}}}`, nil, 0)
	if x.Status != "FAILED" || x.Error != "Runner.Error" || !strings.Contains(x.Cause, "invalid") {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
}

func TestTaskTimeout(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "`+fnARN+`slow", "TimeoutSeconds": 1, "End": true,
		"Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Wrong"}, {"ErrorEquals": ["States.Timeout"], "Next": "Timeout"}]},
		"Wrong": {"Type": "Fail", "Error": "Wrong"}, "Timeout": {"Type": "Fail", "Error": "TimedOut"}}}`,
		map[string]int{"MS": 3000}, 0)
	if x.Status != "FAILED" || x.Error != "TimedOut" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
}

func TestConcurrentExecutions(t *testing.T) {
	e := setup(t)
	def := `{
		"StartAt": "Slow",
		"States": {
			"Slow": {"Type": "Task", "Resource": "` + fnARN + `slow", "Parameters": {"MS": 500}, "ResultPath": "$.slept", "Next": "Ctx"},
			"Ctx": {"Type": "Task", "Resource": "` + fnARN + `context", "Parameters": {"name.$": "$$.Execution.Name", "i.$": "$.i"}, "End": true}
		}
	}`
	const n = 10
	var wg sync.WaitGroup
	xs := make([]*sfnlocal.Execution, n)
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			xs[i], errs[i] = e.runner.Execute(context.Background(), sfnlocal.Request{
				Definition: []byte(def), Name: fmt.Sprintf("exec-%d", i), Input: map[string]int{"i": i}, LambdaEndpoint: e.url,
			})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, x := range xs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		want := fmt.Sprintf(`{"i":%d,"name":"exec-%d"}`, i, i)
		if x.Status != "SUCCEEDED" || string(x.Output) != want || x.Name != fmt.Sprintf("exec-%d", i) || !strings.HasSuffix(x.Arn, ":exec-"+fmt.Sprint(i)) {
			t.Fatalf("%d: %s %s output %s, want %s", i, x.Status, x.Error, x.Output, want)
		}
	}
	if elapsed > 4*time.Second { // one after the other: over 5 s
		t.Fatalf("%d executions of 500 ms took %v: not concurrent", n, elapsed)
	}
}

func TestExecuteContextCancelled(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.runner.Execute(ctx, sfnlocal.Request{
		Definition:     []byte(`{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": true}}}`),
		LambdaEndpoint: e.url,
	})
	if err == nil {
		t.Fatal("Execute returned no error for a cancelled context")
	}
	// The runner still works.
	x := e.run(t, `{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}`, nil, 0)
	if x.Status != "SUCCEEDED" || string(x.Output) != "{}" {
		t.Fatalf("status %s output %s", x.Status, x.Output)
	}
}

func TestSubstitute(t *testing.T) {
	def := []byte(`{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${FnArn}", "Parameters": {"T": "${Table}", "U": "${Table}"}, "End": true}}}`)
	out, err := sfnlocal.Substitute(def, map[string]string{"FnArn": fnARN + "a", "Table": `odd"name`, "Unused": "x"})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		States map[string]struct {
			Resource   string
			Parameters map[string]string
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if a := v.States["A"]; a.Resource != fnARN+"a" || a.Parameters["T"] != `odd"name` || a.Parameters["U"] != `odd"name` {
		t.Fatalf("substituted %s", out)
	}
	_, err = sfnlocal.Substitute(def, map[string]string{"Other": "x"})
	if err == nil || !strings.Contains(err.Error(), "${FnArn}") || !strings.Contains(err.Error(), "${Table}") {
		t.Fatalf("missing placeholders: err %v", err)
	}
}

func TestSubstituteRotation(t *testing.T) {
	subs := map[string]string{}
	for _, p := range statemachines.Placeholders(statemachines.Rotation) {
		if strings.HasSuffix(p, "FunctionArn") {
			subs[p] = fnARN + "secretsaga-" + strings.ToLower(strings.TrimSuffix(p, "FunctionArn"))
		} else {
			subs[p] = "secretsaga-" + p
		}
	}
	out, err := sfnlocal.Substitute(statemachines.Rotation, subs)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("${")) || !json.Valid(out) {
		t.Fatalf("placeholders remain or invalid JSON:\n%s", out)
	}
	if _, err := sfnlocal.Substitute(statemachines.Rotation, map[string]string{}); err == nil {
		t.Fatal("Substitute accepted the rotation definition with no values")
	}
}

func TestRotationDefinitionRuns(t *testing.T) {
	// The real definition passes the library's validation and starts; with
	// no functions behind it the lease Task fails and is caught (NotStarted).
	e := setup(t)
	subs := map[string]string{}
	for _, p := range statemachines.Placeholders(statemachines.Rotation) {
		subs[p] = fnARN + "nope-" + strings.ToLower(p)
	}
	def, err := sfnlocal.Substitute(statemachines.Rotation, subs)
	if err != nil {
		t.Fatal(err)
	}
	x := e.run(t, string(def), map[string]string{"SecretId": "s"}, 0.001)
	if x.Status != "FAILED" || x.Error != "Lambda.ResourceNotFoundException" || count(x, "StateCaught") != 1 {
		t.Fatalf("status %s %s %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
	}
}

func TestExecutionTimeout(t *testing.T) {
	e := setup(t)
	x := e.run(t, `{"TimeoutSeconds": 1, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}}`, nil, 0)
	if x.Status != "TIMED_OUT" || x.Error != "States.Timeout" || count(x, "ExecutionTimeout") != 1 {
		t.Fatalf("status %s %s %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
	}
	if x.Duration < 900*time.Millisecond || x.Duration > 5*time.Second {
		t.Fatalf("duration %v", x.Duration)
	}
}

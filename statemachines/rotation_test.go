package statemachines

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
)

type catcher struct {
	ErrorEquals []string
	Next        string
	ResultPath  *string
}

type state struct {
	Type     string
	Resource string
	Next     string
	End      bool
	Default  string
	Retry    []struct {
		ErrorEquals    []string
		MaxAttempts    int
		BackoffRate    float64
		JitterStrategy string
	}
	Catch     []catcher
	Choices   []struct{ Next string }
	Error     string
	ErrorPath string
}

type machine struct {
	StartAt string
	States  map[string]state
}

func load(t *testing.T) machine {
	t.Helper()
	var m machine
	if err := json.Unmarshal(Rotation, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (s state) successors() []string {
	var n []string
	for _, x := range []string{s.Next, s.Default} {
		if x != "" {
			n = append(n, x)
		}
	}
	for _, c := range s.Choices {
		n = append(n, c.Next)
	}
	for _, c := range s.Catch {
		n = append(n, c.Next)
	}
	return n
}

// reach returns the states reachable from start.
func (m machine) reach(start string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, x := range m.States[n].successors() {
			walk(x)
		}
	}
	walk(start)
	return seen
}

func TestEveryTaskRetriesAndCatches(t *testing.T) {
	m := load(t)
	for name, s := range m.States {
		if s.Type != "Task" {
			continue
		}
		if len(s.Retry) == 0 || len(s.Catch) == 0 {
			t.Errorf("task %s lacks Retry or Catch", name)
		}
		retriesOurs := false
		for _, r := range s.Retry {
			retriesOurs = retriesOurs || slices.Contains(r.ErrorEquals, faults.NameRetryable)
			if r.MaxAttempts < 1 || r.MaxAttempts > 10 || r.BackoffRate < 1 || r.JitterStrategy != "FULL" {
				t.Errorf("task %s: retry %+v is not bounded exponential backoff with jitter", name, r)
			}
		}
		if !retriesOurs {
			t.Errorf("task %s does not retry %s", name, faults.NameRetryable)
		}
		if last := s.Catch[len(s.Catch)-1]; !slices.Equal(last.ErrorEquals, []string{"States.ALL"}) {
			t.Errorf("task %s: the last Catch must be States.ALL so no error escapes the saga", name)
		}
	}
}

// lambdaPlatformErrors are the errors the Lambda service itself reports
// (function timed out or crashed, service hiccup, throttled invoke). Every
// step is idempotent, so each Task re-runs on them: that is the crash
// recovery of a step.
var lambdaPlatformErrors = []string{"Sandbox.Timedout", "Lambda.Unknown", "Lambda.ServiceException",
	"Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"}

func TestTasksRetryLambdaPlatformErrors(t *testing.T) {
	m := load(t)
	for n, s := range m.States {
		if s.Type != "Task" {
			continue
		}
		var covered []string
		for _, r := range s.Retry {
			covered = append(covered, r.ErrorEquals...)
		}
		for _, e := range lambdaPlatformErrors {
			if !slices.Contains(covered, e) {
				t.Errorf("task %s does not retry %s", n, e)
			}
		}
	}
}

func TestErrorNamesExist(t *testing.T) {
	m := load(t)
	check := func(where, name string) {
		if !strings.HasPrefix(name, "States.") && !slices.Contains(faults.Names, name) && !slices.Contains(lambdaPlatformErrors, name) {
			t.Errorf("%s names error %q, which is neither in shared/faults, States.* nor a Lambda platform error", where, name)
		}
	}
	for n, s := range m.States {
		for _, r := range s.Retry {
			for _, e := range r.ErrorEquals {
				check(n+" Retry", e)
			}
		}
		for _, c := range s.Catch {
			for _, e := range c.ErrorEquals {
				check(n+" Catch", e)
			}
		}
		if s.Type == "Fail" && s.Error != "" {
			check(n+" Fail", s.Error)
		}
	}
}

func TestTransitionsAreClosed(t *testing.T) {
	m := load(t)
	if _, ok := m.States[m.StartAt]; !ok {
		t.Fatalf("StartAt %q is not a state", m.StartAt)
	}
	for n, s := range m.States {
		for _, x := range s.successors() {
			if _, ok := m.States[x]; !ok {
				t.Errorf("%s → %q: no such state", n, x)
			}
		}
	}
	seen := m.reach(m.StartAt)
	for n := range m.States {
		if !seen[n] {
			t.Errorf("state %s is unreachable", n)
		}
	}
}

// Every forward step from create on has a path to compensation on failure,
// and a ConflictError never reaches compensation (it abandons instead).
func TestEveryForwardStepCompensates(t *testing.T) {
	m := load(t)
	forward := []string{"CreateSecret", "SetSecret", "TestSecret", "FinishSecret", "Verify", "ReleaseLease"}
	for _, n := range forward {
		s, ok := m.States[n]
		if !ok {
			t.Fatalf("no state %s", n)
		}
		var all, conflict string
		for _, c := range s.Catch {
			if slices.Contains(c.ErrorEquals, "States.ALL") {
				all = c.Next
			}
			if slices.Contains(c.ErrorEquals, faults.NameConflict) {
				conflict = c.Next
			}
			if c.ResultPath == nil || *c.ResultPath != "$.error" {
				t.Errorf("%s: Catch must keep the state and put the error at $.error", n)
			}
		}
		if all != "Compensate" {
			t.Errorf("%s: States.ALL goes to %q, want Compensate", n, all)
		}
		if conflict != "Abandon" {
			t.Errorf("%s: ConflictError goes to %q, want Abandon", n, conflict)
		}
	}
	// Compensation ends in a Fail state in every branch, and a failed
	// compensation records itself and fails with CompensationFailedError.
	for n := range m.reach("Compensate") {
		s := m.States[n]
		if s.Type == "Succeed" {
			t.Errorf("compensation can reach Succeed state %s", n)
		}
	}
	if m.States["CompensationFailed"].Error != faults.NameCompensationFailed {
		t.Error("CompensationFailed must fail with CompensationFailedError")
	}
	for _, c := range m.States["Compensate"].Catch {
		if slices.Contains(c.ErrorEquals, "States.ALL") && c.Next != "RecordCompensationFailed" {
			t.Errorf("a failed compensation goes to %s, not RecordCompensationFailed", c.Next)
		}
	}
	if m.States["RolledBack"].ErrorPath != "$.error.Error" {
		t.Error("RolledBack must fail with the original error class")
	}
}

func TestPlaceholders(t *testing.T) {
	got := Placeholders(Rotation)
	want := []string{"AcquireLeaseFunctionArn", "CompensateFunctionArn", "CreateSecretFunctionArn", "FinishSecretFunctionArn",
		"LedgerTableName", "ReleaseLeaseFunctionArn", "SetSecretFunctionArn", "TestSecretFunctionArn", "VerifyFunctionArn"}
	if !slices.Equal(got, want) {
		t.Fatalf("placeholders = %v\nwant %v", got, want)
	}
	m := load(t)
	for n, s := range m.States {
		if s.Type == "Task" && !(strings.HasPrefix(s.Resource, "${") && strings.HasSuffix(s.Resource, "FunctionArn}")) {
			t.Errorf("task %s resource %q is not a function ARN placeholder", n, s.Resource)
		}
	}
}

//go:build integration

package integration

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// expectedErrorTypes are infra/rotation.ExpectedErrorTypes (the infra
// module's TestOperationalAlarms asserts the deployed metric filter's
// pattern names exactly these): the errors a step returns by design.
var expectedErrorTypes = []string{faults.NameRetryable, faults.NameConflict, faults.NameInput, faults.NameTestFailed}

// alarmWindow computes, over the invocations since it was opened, what each
// function's ErrorsAlarm computes in AWS: Lambda Errors (the local Lambda
// endpoint's count) minus the function's log lines that the
// `<function>ExpectedErrors` metric filter matches (a JSON line whose
// top-level errorType is one of expectedErrorTypes; each function has its
// own log group, here the line's "function" attribute).
type alarmWindow struct {
	errors  map[string]int
	logFrom int
}

func openAlarmWindow() alarmWindow {
	return alarmWindow{errors: env.Lambda.Errors(), logFrom: len(env.Logs.String())}
}

// unexpected returns, per function, Errors minus expected lines, for the
// functions where that is not zero, and the raw Errors.
func (w alarmWindow) unexpected(t *testing.T) (unexpected, errs map[string]int) {
	t.Helper()
	unexpected, errs = map[string]int{}, map[string]int{}
	for name, n := range env.Lambda.Errors() {
		if d := n - w.errors[name]; d != 0 {
			fn := strings.TrimPrefix(name, "secretsaga-")
			errs[fn] = d
			unexpected[fn] += d
		}
	}
	for line := range strings.SplitSeq(env.Logs.String()[w.logFrom:], "\n") {
		var l struct {
			Function  string `json:"function"`
			ErrorType any    `json:"errorType"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if s, ok := l.ErrorType.(string); ok && slices.Contains(expectedErrorTypes, s) {
			unexpected[l.Function]--
		}
	}
	maps.DeleteFunc(unexpected, func(_ string, n int) bool { return n == 0 })
	return unexpected, errs
}

// TestAlarmNoise: the function alarms' metric math, played over real
// rotations: a rollback, a retried step and a held lease make functions
// fail by design and page no one (every Lambda error has its expected
// log line), while a compensation that fails for good
// (CompensationFailedError) and a step that dies (a timeout: no log line)
// page the function's alarm.
func TestAlarmNoise(t *testing.T) {
	tests := []struct {
		name     string
		rules    []faultinject.Rule
		hold     bool   // another execution holds the lease: ConflictError at acquire
		status   string // the execution's end
		failing  string // a function that must have failed
		wantPage map[string]int
	}{
		{name: "rollback after a failed test", status: "FAILED", failing: "testsecret",
			rules: []faultinject.Rule{{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed}}},
		{name: "retried step", status: "SUCCEEDED", failing: "setsecret",
			rules: []faultinject.Rule{{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Err: target.ErrUnreachable}}},
		{name: "lease held", status: "FAILED", failing: "acquirelease", hold: true},
		{name: "compensation fails", status: "FAILED", failing: "compensate",
			rules: []faultinject.Rule{{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed},
				{Function: "compensate", Call: "Secrets Manager.UpdateSecretVersionStage", Phase: faultinject.Before, Err: apiError("AccessDeniedException")}},
			wantPage: map[string]int{"compensate": 1}}, // CompensationFailedError: a person may have to act
		{name: "step dies after changing the password", status: "SUCCEEDED", failing: "setsecret",
			rules:    []faultinject.Rule{{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Crash}},
			wantPage: map[string]int{"setsecret": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t, tt.rules...)
			s := newScenario(t, "alarms: expected errors page no one")
			var held *ledger.Lease
			if tt.hold {
				l, err := env.Ledger.Acquire(s.ctx, ledger.AcquireRequest{Secret: s.arn, Execution: "arn:aws:states:us-east-1:000000000000:execution:rotation:someone-else",
					Token: uuid.NewString(), Actor: "test", PreviousVersion: s.orig})
				if err != nil {
					t.Fatal(err)
				}
				held = &l
			}
			w := openAlarmWindow()
			x := s.run(map[string]any{})
			if x.Status != tt.status {
				t.Fatalf("ended %s %s (%s), want %s", x.Status, x.Error, x.Cause, tt.status)
			}
			page, errs := w.unexpected(t)
			if errs[tt.failing] == 0 {
				t.Fatalf("%s never failed (errors %v): the scenario tests nothing", tt.failing, errs)
			}
			want := tt.wantPage
			if want == nil {
				want = map[string]int{}
			}
			if !maps.Equal(page, want) {
				t.Errorf("errors alarms would count %v (Lambda errors %v), want %v", page, errs, want)
			}
			t.Logf("Lambda errors %v; unexpected (paged) %v", errs, page)
			// The rotation machine's ExecutionsFailedAlarm counts failed
			// executions minus Fail states entered: a failure by design
			// must end in one of the definition's Fail states.
			if x.Status == "FAILED" && !enteredFailState(t, x.Events) {
				t.Errorf("the execution failed (%s) without entering a Fail state: ExecutionsFailedAlarm would page\n%s", x.Error, x.Timeline())
			}
			if held != nil { // the other execution ends
				if err := env.Ledger.Append(s.ctx, held, ledger.Record{State: ledger.RolledBack, Actor: "test"}, ledger.Change{Release: true}); err != nil {
					t.Fatal(err)
				}
			}
			s.invariants(x)
		})
	}
}

// enteredFailState reports whether events enter one of the rotation
// definition's top-level Fail states.
func enteredFailState(t *testing.T, events []sfnlocal.Event) bool {
	t.Helper()
	var def struct {
		States map[string]struct{ Type string }
	}
	if err := json.Unmarshal(env.Definition, &def); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Type == "StateEntered" && def.States[ev.State].Type == "Fail" {
			return true
		}
	}
	return false
}

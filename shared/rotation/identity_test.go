package rotation

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// A terminal step (release, compensate) acts only for the rotation that
// holds the lease, which it knows by fencing token, holder and version id
// together: a version id comes back (a rollback's token is an earlier
// rotation's version) and an execution ARN does too (a redriven
// execution), so neither alone identifies a rotation.
func TestTerminalStepsKnowTheirRotationByFencingToken(t *testing.T) {
	tests := []struct {
		name  string
		lease func(l *ledger.Lease) // what the lease is now
		in    func(rc Context) CloseInput
	}{
		{
			name: "release: the version id ended again in a later rotation (a rollback to it)",
			lease: func(l *ledger.Lease) {
				l.Fencing, l.Holder, l.State = l.Fencing+2, "", ledger.Finished
			},
			in: func(rc Context) CloseInput { return CloseInput{Rotation: rc, Outcome: OutcomeFinished} },
		},
		{
			name: "release: the same execution ARN holds a later lease",
			lease: func(l *ledger.Lease) {
				l.Fencing, l.Token, l.State, l.FinishMayHaveRun = l.Fencing+1, "99999999-2222-3333-4444-555555555555", ledger.FinishDone, true
			},
			in: func(rc Context) CloseInput { return CloseInput{Rotation: rc, Outcome: OutcomeFinished} },
		},
		{
			name: "rollback by a zombie",
			lease: func(l *ledger.Lease) {
				l.Fencing, l.Holder, l.Token = l.Fencing+1, "arn:other", "99999999-2222-3333-4444-555555555555"
			},
			in: func(rc Context) CloseInput {
				return CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rc := f.acquire(t)
			s := f.svc
			f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
			l := f.led.lease[arn]
			tt.lease(&l)
			f.led.lease[arn] = l
			journal, stages := len(f.led.journal), f.sm.holder("AWSCURRENT")
			in := tt.in(rc)
			var err error
			if in.Outcome != "" {
				_, err = s.Release(context.Background(), in)
			} else {
				_, err = s.Compensate(context.Background(), in)
			}
			if faults.Name(err) != faults.NameConflict {
				t.Fatalf("err = %v, want ConflictError", err)
			}
			if len(f.led.journal) != journal || f.sm.holder("AWSCURRENT") != stages || f.bus.types() != "" || f.db.sets != 1 {
				t.Fatalf("changed something: journal %d → %d, AWSCURRENT %s → %s, events %q, sets %d",
					journal, len(f.led.journal), stages, f.sm.holder("AWSCURRENT"), f.bus.types(), f.db.sets)
			}
		})
	}
}

// An undo that cannot complete for a reason that is neither transient nor
// a conflict (here Secrets Manager says the secret is gone) is a
// CompensationFailedError: the state machine records it, keeps the lease
// and alerts, rather than failing fast as for bad input.
func TestCompensationThatCannotCompleteIsCompensationFailed(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set)
	f.sm.failNext["Describe"] = &types.ResourceNotFoundException{Message: new(string)}
	_, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}})
	if faults.Name(err) != faults.NameCompensationFailed {
		t.Fatalf("compensate = %v, want CompensationFailedError", err)
	}
}

// Compensation classifies a Secrets Manager error before deciding: a
// throttled call is retried by the state machine (RetryableError) and the
// retry completes the undo; an error no retry can fix is
// CompensationFailedError at once.
func TestCompensationRetriesTransientAWSErrors(t *testing.T) {
	tests := []struct {
		name, op string
		err      error
		want     string
	}{
		{"throttled describe", "Describe", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, faults.NameRetryable},
		{"throttled stage removal", "RemoveStage", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, faults.NameRetryable},
		{"service unavailable", "Describe", &types.InternalServiceError{Message: new(string)}, faults.NameRetryable},
		{"secret gone", "Describe", &types.ResourceNotFoundException{Message: new(string)}, faults.NameCompensationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rc := f.acquire(t)
			s := f.svc
			f.steps(t, rc, s.Create, s.Set)
			f.sm.failNext[tt.op] = tt.err
			in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}
			if _, err := s.Compensate(context.Background(), in); faults.Name(err) != tt.want {
				t.Fatalf("compensate = %v, want %s", err, tt.want)
			}
			if tt.want != faults.NameRetryable {
				return
			}
			out, err := s.Compensate(context.Background(), in)
			if err != nil || out.State != string(ledger.RolledBack) || !out.TargetReverted {
				t.Fatalf("retried compensate = %+v, %v", out, err)
			}
		})
	}
}

// A compensation retried after a transient failure (the database was
// unreachable while reverting) journals COMPENSATE_STARTED once and then
// completes.
func TestRetriedCompensationJournalsOnce(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create)
	// As the state machine does, compensation gets set's output (the
	// failed test left it as Context.Last): set's SET_DONE is journaled
	// with COMPENSATE_STARTED.
	set, err := s.Set(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	rc.Last = &set
	f.db.down = true
	in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}
	if _, err := s.Compensate(context.Background(), in); faults.Name(err) != faults.NameRetryable {
		t.Fatalf("compensate with the database down = %v, want RetryableError", err)
	}
	f.db.down = false
	out, err := s.Compensate(context.Background(), in)
	if err != nil || out.State != string(ledger.RolledBack) || !out.TargetReverted {
		t.Fatalf("retried compensate = %+v, %v", out, err)
	}
	var states []ledger.State
	for _, r := range f.led.journal {
		states = append(states, r.State)
	}
	want := []ledger.State{ledger.Started, ledger.Created, ledger.SetStarted, ledger.SetDone, ledger.CompensateStarted, ledger.RolledBack}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("journal = %v, want %v", states, want)
	}
}

// The same execution can hold the lease again under a new fencing token
// (its lease expired, someone took it and ended, and its retried acquire
// took it anew): an invocation still carrying the old token is a zombie
// and every step refuses it, although holder and version id match.
func TestStepsRefuseAnOldFencingTokenOfTheSameExecution(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	l := f.led.lease[arn]
	l.Fencing += 2
	f.led.lease[arn] = l
	journal := len(f.led.journal)
	for _, step := range []func(context.Context, Context) (StepOutput, error){s.Create, s.Set, s.Test, s.Finish} {
		if _, err := step(context.Background(), rc); faults.Name(err) != faults.NameConflict {
			t.Fatalf("step with an old fencing token = %v, want ConflictError", err)
		}
	}
	if len(f.led.journal) != journal || len(f.sm.generated) != 0 || f.db.sets != 0 {
		t.Fatal("an old fencing token changed something")
	}
}

// Rolling back a finished rotation puts AWSPREVIOUS back on the version
// that held it at the start (Secrets Manager had moved it onto the
// rotation's version).
func TestRollbackRestoresThePreviousPrevious(t *testing.T) {
	const v0 = "v0-00000000000000000000000000000000"
	f := newFixture(t)
	f.sm.values[v0] = f.sm.values[v1]
	f.sm.stages[v0] = []string{"AWSPREVIOUS"}
	f.bake = true // rolled back after finish: the bake failed
	rc := f.acquire(t)
	if rc.PreviousPreviousVersionId != v0 {
		t.Fatalf("PreviousPreviousVersionId = %q", rc.PreviousPreviousVersionId)
	}
	s := f.svc
	f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
	if _, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}); err != nil {
		t.Fatal(err)
	}
	if f.sm.holder("AWSCURRENT") != v1 || f.sm.holder("AWSPREVIOUS") != v0 {
		t.Fatalf("AWSCURRENT %s AWSPREVIOUS %s, want %s and %s", f.sm.holder("AWSCURRENT"), f.sm.holder("AWSPREVIOUS"), v1, v0)
	}
}

// Rolling back after finish, the password the target has stays under a
// label until the target is back: while AWSCURRENT (back on the old value)
// is refused, AWSPREVIOUS holds the rotation's version, which logs in. An
// application that tries the labels (shared/client) never finds none that
// works. The soak found the window when AWSPREVIOUS went back first.
func TestRollbackKeepsTheWorkingPasswordLabelled(t *testing.T) {
	const v0 = "v0-00000000000000000000000000000000"
	f := newFixture(t)
	f.sm.values[v0] = f.sm.values[v1]
	f.sm.stages[v0] = []string{"AWSPREVIOUS"}
	f.bake = true // rolled back after finish: the bake failed
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
	newPW := f.db.password
	var at []string
	f.db.beforeSet = func() {
		for _, stage := range []string{"AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"} {
			if v, err := f.sm.Value(context.Background(), arn, f.sm.holder(stage), ""); err == nil && passwordOf(v) == newPW {
				at = append(at, stage)
			}
		}
	}
	if _, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}); err != nil {
		t.Fatal(err)
	}
	if len(at) != 1 || at[0] != "AWSPREVIOUS" {
		t.Fatalf("while the target was set back, the password it had was under %v, want AWSPREVIOUS", at)
	}
	if f.sm.holder("AWSCURRENT") != v1 || f.sm.holder("AWSPREVIOUS") != v0 {
		t.Fatalf("AWSCURRENT %s AWSPREVIOUS %s, want %s and %s", f.sm.holder("AWSCURRENT"), f.sm.holder("AWSPREVIOUS"), v1, v0)
	}
}

// Reverting the target is checked by logging in with AWSCURRENT: a revert
// that took but does not log in is a failed compensation, not a rollback.
func TestRevertIsVerified(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set)
	f.db.failTest = fmt.Errorf("login: %w", target.ErrAuthFailed)
	_, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}})
	if faults.Name(err) != faults.NameCompensationFailed {
		t.Fatalf("compensate = %v, want CompensationFailedError", err)
	}
}

// Errors from before the secret's ARN is known name the SecretId given.
func TestEarlyErrorsNameTheSecretId(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: "short", ExecutionArn: execution})
	if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), `"app/db"`) {
		t.Fatalf("acquire = %v, want an InputError naming app/db", err)
	}
}

// The state machine names the ledger table; the function's own table must
// be the same one (one stack), and then the rotation starts.
func TestLedgerTableMustMatch(t *testing.T) {
	for _, tt := range []struct {
		table string
		want  string
	}{{"", ""}, {"ledger", ""}, {"another-stack-ledger", faults.NameInput}} {
		f := newFixture(t)
		_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, LedgerTable: tt.table})
		if faults.Name(err) != tt.want {
			t.Errorf("LedgerTable %q: %v, want %q", tt.table, err, tt.want)
		}
	}
}

// Errors and log lines name the step: an abandon is "abandon", not
// "compensate".
func TestAbandonNamesItsStep(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	f.steps(t, rc, f.svc.Create)
	f.sm.failNext["Describe"] = errBoom
	_, err := f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeAbandon, Error: &TaskError{Error: faults.NameConflict}})
	if err == nil || !strings.Contains(err.Error(), "step abandon") {
		t.Fatalf("abandon = %v, want an error of step abandon", err)
	}
}

// A re-run of this very acquire (the same execution and token) finds its
// own lease and returns the same context, even once its version exists:
// the version id is then this rotation's, not a reused one.
func TestAcquireRerunAfterCreate(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	f.steps(t, rc, f.svc.Create)
	if again := f.acquire(t); again.Fencing != rc.Fencing || again.PreviousVersionId != rc.PreviousVersionId {
		t.Fatalf("re-acquire = %+v, want %+v", again, rc)
	}
}

// The bake's limits are inclusive: MaxBakeAlarms alarms, and names of
// exactly maxAlarmName characters, are accepted; one more is refused.
func TestBakeAlarmLimitsAreInclusive(t *testing.T) {
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("alarm-%d", i)
		}
		return out
	}
	for _, tt := range []struct {
		name   string
		alarms []string
		want   string
	}{
		{"MaxBakeAlarms alarms", names(MaxBakeAlarms), ""},
		{"one alarm too many", names(MaxBakeAlarms + 1), faults.NameInput},
		{"longest name", []string{strings.Repeat("a", maxAlarmName)}, ""},
		{"name too long", []string{strings.Repeat("a", maxAlarmName+1)}, faults.NameInput},
	} {
		f := newFixture(t)
		_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, BakeAlarms: tt.alarms})
		if faults.Name(err) != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// HealthCheckUrl must be an absolute http(s) URL.
func TestHealthCheckUrlMustBeHTTP(t *testing.T) {
	for _, tt := range []struct {
		url, want string
	}{
		{"https://health.example/ok", ""},
		{"http://health.example/ok", ""},
		{"ftp://health.example/ok", faults.NameInput},
		{"http://[::1", faults.NameInput}, // does not parse
		{"/relative", faults.NameInput},
	} {
		f := newFixture(t)
		_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, HealthCheckUrl: tt.url})
		if faults.Name(err) != tt.want {
			t.Errorf("%q: %v, want %q", tt.url, err, tt.want)
		}
	}
}

package rotation

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
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

// A compensation retried after a transient failure (the database was
// unreachable while reverting) journals COMPENSATE_STARTED once and then
// completes.
func TestRetriedCompensationJournalsOnce(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set)
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

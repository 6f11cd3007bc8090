package rotation

import (
	"context"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// Outcome events are not fire-and-forget: when PutEvents fails, the step
// that ended the rotation returns RetryableError (the state machine
// retries it), and the retry publishes the event without journaling the
// outcome a second time. Compensation Failed already worked so; these are
// the other outcomes.
func TestOutcomeEventIsRetriedWhenPublishFails(t *testing.T) {
	const foreign = "foreign-0000000000000000000000000000"
	moveCurrentToForeign := func(f *fixture, from string) {
		f.sm.values[foreign] = f.sm.values[v1]
		if err := f.sm.MoveStage(context.Background(), arn, "AWSCURRENT", foreign, from); err != nil {
			panic(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture, rc Context) // runs the steps up to the ending one
		end   func(f *fixture, rc Context) (CloseOutput, error)
		state ledger.State
		event string
		// retryErr is what the retry returns once the event is out: an
		// abandoned rollback stays a conflict.
		retryErr string
		bake     bool // acquire asks for the bake (compensation after finish follows a failed bake)
	}{
		{
			name: "Rotation Succeeded",
			setup: func(t *testing.T, f *fixture, rc Context) {
				f.steps(t, rc, f.svc.Create, f.svc.Set, f.svc.Test, f.svc.Finish)
			},
			end: func(f *fixture, rc Context) (CloseOutput, error) {
				return f.svc.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished})
			},
			state: ledger.Finished, event: "Rotation Succeeded",
		},
		{
			name: "Rotation Succeeded after a bake (release journals FINISHED)",
			setup: func(t *testing.T, f *fixture, rc Context) {
				f.steps(t, rc, f.svc.Create, f.svc.Set, f.svc.Test, f.svc.Finish, f.svc.Verify)
			},
			end: func(f *fixture, rc Context) (CloseOutput, error) {
				return f.svc.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished})
			},
			state: ledger.Finished, event: "Rotation Succeeded", bake: true,
		},
		{
			name: "Rotation Rolled Back",
			setup: func(t *testing.T, f *fixture, rc Context) {
				f.steps(t, rc, f.svc.Create, f.svc.Set)
			},
			end: func(f *fixture, rc Context) (CloseOutput, error) {
				return f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}})
			},
			state: ledger.RolledBack, event: "Rotation Rolled Back",
		},
		{
			name: "Rotation Abandoned (abandon)",
			setup: func(t *testing.T, f *fixture, rc Context) {
				f.steps(t, rc, f.svc.Create, f.svc.Set, f.svc.Test)
				moveCurrentToForeign(f, v1)
			},
			end: func(f *fixture, rc Context) (CloseOutput, error) {
				return f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeAbandon, Error: &TaskError{Error: faults.NameConflict}})
			},
			state: ledger.Abandoned, event: "Rotation Abandoned",
		},
		{
			name: "Rotation Abandoned (a rollback over someone else's move)",
			setup: func(t *testing.T, f *fixture, rc Context) {
				f.steps(t, rc, f.svc.Create, f.svc.Set, f.svc.Test, f.svc.Finish)
				moveCurrentToForeign(f, token)
			},
			end: func(f *fixture, rc Context) (CloseOutput, error) {
				return f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}})
			},
			state: ledger.Abandoned, event: "Rotation Abandoned", retryErr: faults.NameConflict, bake: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.bake = tt.bake
			rc := f.acquire(t)
			tt.setup(t, f, rc)
			f.bus.fail = 1
			_, err := tt.end(f, rc)
			if faults.Name(err) != faults.NameRetryable {
				t.Fatalf("with PutEvents failing: %v, want RetryableError", err)
			}
			if f.bus.types() != "" {
				t.Fatalf("events = %s", f.bus.types())
			}
			// The state machine retries the step.
			out, err := tt.end(f, rc)
			if faults.Name(err) != tt.retryErr {
				t.Fatalf("retry: %v, want %q", err, tt.retryErr)
			}
			if out.State != string(tt.state) || f.last() != tt.state {
				t.Fatalf("retry ended %s, journal ends %s; want %s", out.State, f.last(), tt.state)
			}
			if f.bus.types() != tt.event {
				t.Fatalf("events = %s, want %s", f.bus.types(), tt.event)
			}
			n := 0
			for _, r := range f.led.journal {
				if r.State == tt.state {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%s journaled %d times", tt.state, n)
			}
			if !strings.Contains(f.logs.String(), "event not published") {
				t.Error("the failed publish was not logged")
			}
		})
	}
}

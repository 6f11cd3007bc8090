//go:build integration

package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
)

// TestRecoveryOfADeadRotation: an execution dies in the middle of a
// rotation (aborted, timed out, out of retries) and never ends it. Once its
// lease has expired, the next rotation takes the lease over, cleans up
// after it (undoing its work, or keeping it if it had already moved
// AWSCURRENT) and rotates: a dead rotation never blocks the ones after it.
func TestRecoveryOfADeadRotation(t *testing.T) {
	type step func(*rotation.Service, context.Context, rotation.Context) (rotation.StepOutput, error)
	create, set, test, finish := (*rotation.Service).Create, (*rotation.Service).Set, (*rotation.Service).Test, (*rotation.Service).Finish
	// The successor's own acquire crashing right after it took the lease
	// over: the retried acquire must still know what to clean up.
	crashAfterTakeover := []faultinject.Rule{{Function: "acquirelease", Call: "DynamoDB.TransactWriteItems", Nth: 1, Phase: faultinject.Crash}}
	for _, tt := range []struct {
		name      string
		steps     []step
		committed bool // the dead rotation had moved AWSCURRENT
		faults    []faultinject.Rule
	}{
		{"died after create", []step{create}, false, nil},
		{"died after set changed the password", []step{create, set}, false, nil},
		{"died after test", []step{create, set, test}, false, nil},
		{"died after finish moved AWSCURRENT", []step{create, set, test, finish}, true, nil},
		{"died after set, and the successor's acquire crashed after the takeover", []step{create, set}, false, crashAfterTakeover},
	} {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t, tt.faults...)
			s := newScenario(t, "recovery: a dead rotation")
			// The dead execution ran an hour ago; its 15-minute lease has expired.
			dead, err := env.ServiceWithClock("dead-execution", func() time.Time { return time.Now().Add(-time.Hour) })
			if err != nil {
				t.Fatal(err)
			}
			rc, err := dead.Acquire(s.ctx, rotation.AcquireInput{SecretId: s.arn, ClientRequestToken: uuid.NewString(),
				ExecutionArn: "arn:aws:states:us-east-1:000000000000:execution:rotation:dead-" + uuid.NewString()[:8], LedgerTable: local.Table,
				// With a bake: a finish without one ends the rotation
				// itself (ReleaseAtFinish) and leaves nothing to recover.
				Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range tt.steps {
				if _, err := st(dead, s.ctx, rc); err != nil {
					t.Fatal(err)
				}
			}
			x := s.run(map[string]any{})
			if x.Status != "SUCCEEDED" {
				t.Fatalf("the next rotation ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
			}
			if fired := env.Faults.Fired(); fired != len(tt.faults) {
				t.Fatalf("%d faults fired, want %d", fired, len(tt.faults))
			}
			if j := s.journal(); !slices.Contains(j, ledger.Recovered) {
				t.Errorf("journal %v has no RECOVERED", j)
			}
			cur := s.current()
			prev := holdersOf(t, s, "AWSPREVIOUS")
			switch {
			case cur == s.orig || cur == rc.ClientRequestToken:
				t.Errorf("AWSCURRENT is %s: the next rotation did not rotate", cur)
			case tt.committed && !slices.Equal(prev, []string{rc.ClientRequestToken}):
				t.Errorf("AWSPREVIOUS %v, want the dead rotation's committed version %s", prev, rc.ClientRequestToken)
			case !tt.committed && !slices.Equal(prev, []string{s.orig}):
				t.Errorf("AWSPREVIOUS %v, want the original %s (the dead rotation undone)", prev, s.orig)
			}
			s.invariants(x)
		})
	}
}

// A rotation that died while undoing itself after it had moved AWSCURRENT
// (its bake failed, say) is not guessed about: the next rotation stops,
// records COMPENSATION_FAILED, keeps the lease and alerts.
func TestRecoveryRefusesToGuess(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "recovery: a dead rotation")
	dead, err := env.ServiceWithClock("dead-execution", func() time.Time { return time.Now().Add(-time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dead.Acquire(s.ctx, rotation.AcquireInput{SecretId: s.arn, ClientRequestToken: uuid.NewString(),
		ExecutionArn: "arn:aws:states:us-east-1:000000000000:execution:rotation:dead-" + uuid.NewString()[:8], LedgerTable: local.Table,
		Verify: true}) // its bake failed it after finish
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []func(context.Context, rotation.Context) (rotation.StepOutput, error){dead.Create, dead.Set, dead.Test, dead.Finish} {
		if _, err := st(s.ctx, rc); err != nil {
			t.Fatal(err)
		}
	}
	// It begins undoing itself, then dies (on its clock, an hour ago).
	past := ledger.New(env.DDB, local.Table, ledger.Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	lease, _, err := past.Get(s.ctx, s.arn)
	if err != nil {
		t.Fatal(err)
	}
	if err := past.Append(s.ctx, &lease, ledger.Record{State: ledger.CompensateStarted, Actor: "dead-execution", ErrorClass: "TestFailedError"}, ledger.Change{}); err != nil {
		t.Fatal(err)
	}
	x := s.run(map[string]any{})
	if x.Status != "FAILED" || x.Error != "CompensationFailedError" {
		t.Fatalf("ended %s %s, want FAILED CompensationFailedError", x.Status, x.Error)
	}
	if cur := s.current(); cur != rc.ClientRequestToken {
		t.Errorf("AWSCURRENT moved to %s; nothing may change", cur)
	}
	l, _, _ := env.Ledger.Get(s.ctx, s.arn)
	if l.State != ledger.CompensationFailed || l.Holder == "" {
		t.Errorf("lease %s held by %q, want COMPENSATION_FAILED and held", l.State, l.Holder)
	}
	s.invariants(x)
}

package rotation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Native rotation: Secrets Manager's RotateSecret first creates the token's
// version with AWSPENDING and no value ("During rotation, Secrets Manager
// creates an AWSPENDING version ID before creating the new secret version",
// DescribeSecret, VersionIdsToStages), then invokes the rotation function,
// which starts the saga with that token.

const (
	token2     = "22222222-3333-4444-5555-666666666666"
	execution2 = "arn:aws:states:us-east-1:000000000000:execution:rotation:two"
)

// noPending fails unless no version carries AWSPENDING (invariant 3).
func (f *fixture) noPending(t *testing.T) {
	t.Helper()
	if p := f.sm.holder(secretstore.Pending); p != "" {
		t.Errorf("AWSPENDING left on %s: %v", p, f.sm.stages)
	}
}

func TestNativeEmptyPendingVersionRotates(t *testing.T) {
	f := newFixture(t)
	f.sm.rotateSecret(token)
	rc := f.acquire(t)
	s := f.svc
	out, err := s.Create(context.Background(), rc)
	if err != nil || !out.Changed {
		t.Fatalf("create = %+v, %v; want the empty version filled", out, err)
	}
	pw := f.pendingPassword(t)
	// A retried create sees the value and does nothing.
	if out, err := s.Create(context.Background(), rc); err != nil || out.Changed {
		t.Fatalf("create again = %+v, %v; want no change", out, err)
	}
	if len(f.sm.generated) != 1 || f.pendingPassword(t) != pw || !slices.Equal(f.sm.stages[token], []string{secretstore.Pending}) {
		t.Fatalf("create again generated %d passwords; token stages %v", len(f.sm.generated), f.sm.stages[token])
	}
	f.steps(t, rc, s.Set, s.Test, s.Finish)
	if _, err := s.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	if f.sm.holder(secretstore.Current) != token || f.sm.holder(secretstore.Previous) != v1 || f.db.password != pw || f.last() != ledger.Finished {
		t.Errorf("AWSCURRENT %s, AWSPREVIOUS %s, journal ends %s", f.sm.holder(secretstore.Current), f.sm.holder(secretstore.Previous), f.last())
	}
	f.noPending(t)
}

// A rotation that fails after set is rolled back: AWSPENDING comes off the
// token's version (which keeps the value create stored, unlabelled, for
// Secrets Manager to delete), so the next RotateSecret may start, and does.
func TestNativeRolledBackThenNextRotates(t *testing.T) {
	f := newFixture(t)
	f.sm.rotateSecret(token)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set)
	f.db.failTest = fmt.Errorf("probe: %w", target.ErrAuthFailed)
	if _, err := s.Test(context.Background(), rc); faults.Name(err) != faults.NameTestFailed {
		t.Fatalf("test = %v", err)
	}
	if out, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}); err != nil || out.State != string(ledger.RolledBack) {
		t.Fatalf("compensate = %+v, %v", out, err)
	}
	f.noPending(t)
	if len(f.sm.stages[token]) != 0 || f.sm.holder(secretstore.Current) != v1 || f.db.password != original {
		t.Fatalf("after rollback: token stages %v, AWSCURRENT %s", f.sm.stages[token], f.sm.holder(secretstore.Current))
	}

	f.sm.rotateSecret(token2)
	rc2, err := s.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token2, ExecutionArn: execution2})
	if err != nil {
		t.Fatal(err)
	}
	f.steps(t, rc2, s.Create, s.Set, s.Test, s.Finish)
	if _, err := s.Release(context.Background(), CloseInput{Rotation: rc2, Outcome: OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	if f.sm.holder(secretstore.Current) != token2 || f.sm.holder(secretstore.Previous) != v1 {
		t.Errorf("AWSCURRENT %s, AWSPREVIOUS %s", f.sm.holder(secretstore.Current), f.sm.holder(secretstore.Previous))
	}
	f.noPending(t)
}

// Compensation before create stored anything leaves the version as AWS
// would after a failed rotation, less the label: empty and unlabelled.
func TestNativeCompensationBeforeCreate(t *testing.T) {
	f := newFixture(t)
	f.sm.rotateSecret(token)
	rc := f.acquire(t)
	f.db.down = true
	if _, err := f.svc.Create(context.Background(), rc); faults.Name(err) != faults.NameRetryable {
		t.Fatalf("create = %v, want RetryableError", err)
	}
	if out, err := f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameRetryable}}); err != nil || out.State != string(ledger.RolledBack) {
		t.Fatalf("compensate = %+v, %v", out, err)
	}
	f.noPending(t)
	if _, filled := f.sm.values[token]; filled || len(f.sm.stages[token]) != 0 {
		t.Errorf("token version: filled %v, stages %v; want empty and unlabelled", filled, f.sm.stages[token])
	}
}

// Only the empty AWSPENDING version RotateSecret creates is accepted; any
// other existing version is still refused, changing nothing.
func TestExistingTokenVersionsStillRefused(t *testing.T) {
	tests := []struct {
		name   string
		value  string // "" for an empty version
		stages []string
	}{
		{name: "AWSPENDING with a value (another rotation's)", value: "{}", stages: []string{secretstore.Pending}},
		{name: "unlabelled with a value", value: "{}", stages: nil},
		{name: "AWSPREVIOUS", value: "{}", stages: []string{secretstore.Previous}},
		{name: "empty but labelled otherwise", stages: []string{"release-2024"}},
		{name: "empty AWSPENDING with another label too", stages: []string{secretstore.Pending, "release-2024"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.sm.stages[token] = tt.stages
			if tt.value != "" {
				f.sm.values[token] = tt.value
			}
			before := fmt.Sprint(f.sm.stages, f.sm.values, f.led.lease)
			_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution})
			if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), "version") {
				t.Fatalf("acquire = %v, want the InputError for an existing version", err)
			}
			if after := fmt.Sprint(f.sm.stages, f.sm.values, f.led.lease); after != before || len(f.led.journal) != 0 {
				t.Fatalf("refusal changed state:\n%s\n%s", before, after)
			}
		})
	}
}

// AWSPENDING left on the AWSCURRENT version by a rotation function that
// does not remove it (AWS's templates) does not block, as it does not block
// RotateSecret ("When rotation is successful, the AWSPENDING staging label
// might be attached to the same version as the AWSCURRENT version"); the
// rotation ends with no AWSPENDING anywhere, whether it finishes or rolls
// back, before or after create.
func TestPendingLeftOnCurrent(t *testing.T) {
	tests := []struct {
		name string
		// native: RotateSecret made the token's empty version, which moved
		// AWSPENDING off AWSCURRENT first.
		native bool
		run    func(t *testing.T, f *fixture, rc Context)
		want   string // AWSCURRENT at the end
	}{
		{name: "finishes", run: func(t *testing.T, f *fixture, rc Context) {
			s := f.svc
			f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
			if _, err := s.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
				t.Fatal(err)
			}
		}, want: token},
		{name: "native, finishes", native: true, run: func(t *testing.T, f *fixture, rc Context) {
			s := f.svc
			f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
			if _, err := s.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
				t.Fatal(err)
			}
		}, want: token},
		{name: "rolls back before create", run: func(t *testing.T, f *fixture, rc Context) {
			f.db.down = true
			if _, err := f.svc.Create(context.Background(), rc); faults.Name(err) != faults.NameRetryable {
				t.Fatalf("create = %v", err)
			}
			f.db.down = false
			if _, err := f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback}); err != nil {
				t.Fatal(err)
			}
		}, want: v1},
		{name: "rolls back after set", run: func(t *testing.T, f *fixture, rc Context) {
			f.steps(t, rc, f.svc.Create, f.svc.Set)
			if _, err := f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback}); err != nil {
				t.Fatal(err)
			}
		}, want: v1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.sm.stages[v1] = []string{secretstore.Current, secretstore.Pending}
			if tt.native {
				f.sm.rotateSecret(token)
			}
			tt.run(t, f, f.acquire(t))
			if got := f.sm.holder(secretstore.Current); got != tt.want {
				t.Errorf("AWSCURRENT on %s, want %s", got, tt.want)
			}
			if l := f.led.lease[arn]; l.Holder != "" || !l.State.Terminal() {
				t.Errorf("lease %+v", l)
			}
			f.noPending(t)
		})
	}
}

// A native rotation the saga refuses at acquire takes AWSPENDING off the
// empty version RotateSecret created for it: nothing will fill that version,
// and while it carries AWSPENDING every later RotateSecret refuses ("a
// previous rotation request is still in progress"). Only that version, and
// only on a refusal the state machine does not retry, is touched.
func TestRefusedNativeRotationDropsItsEmptyVersion(t *testing.T) {
	other := "arn:aws:states:us-east-1:000000000000:execution:rotation:other"
	tests := []struct {
		name    string
		setup   func(f *fixture)
		wantErr string
		dropped bool // AWSPENDING taken off the token's version
	}{
		{name: "lease held by another rotation", wantErr: faults.NameConflict, dropped: true, setup: func(f *fixture) {
			f.led.lease[arn] = ledger.Lease{Secret: arn, Fencing: 1, Holder: other, Token: token2, State: ledger.Started}
		}},
		{name: "malformed AWSCURRENT", wantErr: faults.NameInput, dropped: true, setup: func(f *fixture) {
			f.sm.values[v1] = `{"engine":"fake"`
		}},
		{name: "lease held by another execution of the same token", wantErr: faults.NameConflict, setup: func(f *fixture) {
			f.led.lease[arn] = ledger.Lease{Secret: arn, Fencing: 1, Holder: other, Token: token, State: ledger.Started}
		}},
		{name: "retryable refusal (the state machine retries acquire)", wantErr: faults.NameRetryable, setup: func(f *fixture) {
			f.sm.failNext["Filled"] = fmt.Errorf("read: %w", context.DeadlineExceeded)
		}},
		{name: "rollback", wantErr: faults.NameInput, setup: func(*fixture) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.sm.rotateSecret(token)
			tt.setup(f)
			in := AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, Rollback: tt.name == "rollback"}
			_, err := f.svc.Acquire(context.Background(), in)
			if faults.Name(err) != tt.wantErr {
				t.Fatalf("acquire = %v, want %s", err, tt.wantErr)
			}
			if _, filled := f.sm.values[token]; filled {
				t.Fatal("the refused rotation filled the token's version")
			}
			pending := slices.Equal(f.sm.stages[token], []string{secretstore.Pending})
			if pending == tt.dropped {
				t.Errorf("token version stages %v; want AWSPENDING dropped: %v", f.sm.stages[token], tt.dropped)
			}
			if f.sm.holder(secretstore.Current) != v1 {
				t.Errorf("AWSCURRENT moved to %s", f.sm.holder(secretstore.Current))
			}
		})
	}
}

// The drop is a compare-and-swap: AWSPENDING that moved to another version
// between the refusal's read and the removal stays where it is.
func TestRefusedNativeRotationDropIsCompareAndSwap(t *testing.T) {
	f := newFixture(t)
	f.sm.rotateSecret(token)
	f.led.lease[arn] = ledger.Lease{Secret: arn, Fencing: 1, Holder: execution2, Token: token2, State: ledger.Started}
	// The holder's create moves AWSPENDING to its token while the refusal
	// is being decided (right after the refusal's own Describe).
	f.sm.afterDescribe = func() {
		f.sm.afterDescribe = func() { f.sm.move(secretstore.Pending, token2) }
	}
	if _, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution}); faults.Name(err) != faults.NameConflict {
		t.Fatalf("acquire = %v", err)
	}
	if f.sm.holder(secretstore.Pending) != token2 {
		t.Errorf("AWSPENDING on %q, want it left on the holder's %s", f.sm.holder(secretstore.Pending), token2)
	}
}

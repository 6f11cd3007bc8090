//go:build integration

package integration

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
)

// TestStepsInOrderAndIdempotent drives the handlers' code directly, in the
// order Secrets Manager's native rotation would call them, against the real
// stand-ins. After every step it runs the step again and checks that the
// second run changed nothing: not the versions, not the journal, not the
// database.
func TestStepsInOrderAndIdempotent(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "steps: in order, each re-run")
	svc := env.Service
	in := rotation.AcquireInput{SecretId: s.arn, ClientRequestToken: uuid.NewString(),
		ExecutionArn: "arn:aws:states:us-east-1:000000000000:execution:rotation:steps-" + uuid.NewString()[:8], LedgerTable: local.Table}

	type snapshot struct {
		stages  string
		journal []ledger.State
		login   map[string]bool // which versions' passwords log in
	}
	snap := func() snapshot {
		st, err := env.Stages(s.ctx, s.arn)
		if err != nil {
			t.Fatal(err)
		}
		login := map[string]bool{}
		for id := range st {
			login[id] = env.CanLogin(s.ctx, s.arn, id, "") == nil
		}
		return snapshot{stages: fmt.Sprint(st), journal: s.journal(), login: login}
	}

	rc, err := svc.Acquire(s.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		run  func(context.Context) (bool, error)
	}{
		{"acquire", func(ctx context.Context) (bool, error) {
			again, err := svc.Acquire(ctx, in)
			return !reflect.DeepEqual(again, rc), err
		}},
		{"create", func(ctx context.Context) (bool, error) { o, err := svc.Create(ctx, rc); return o.Changed, err }},
		{"set", func(ctx context.Context) (bool, error) { o, err := svc.Set(ctx, rc); return o.Changed, err }},
		{"test", func(ctx context.Context) (bool, error) { o, err := svc.Test(ctx, rc); return o.Changed, err }},
		{"finish", func(ctx context.Context) (bool, error) { o, err := svc.Finish(ctx, rc); return o.Changed, err }},
		{"release", func(ctx context.Context) (bool, error) {
			o, err := svc.Release(ctx, rotation.CloseInput{Rotation: rc, Outcome: string(ledger.Finished)})
			return o.State != string(ledger.Finished), err
		}},
	}
	for i, st := range steps {
		if i > 0 { // acquire ran above
			if _, err := st.run(s.ctx); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		before := snap()
		changed, err := st.run(s.ctx)
		if err != nil {
			t.Fatalf("%s, run again: %v", st.name, err)
		}
		after := snap()
		if changed || before.stages != after.stages || !slices.Equal(before.journal, after.journal) || fmt.Sprint(before.login) != fmt.Sprint(after.login) {
			t.Errorf("%s is not idempotent: a second run changed=%v\n versions %s → %s\n journal %v → %v\n logins %v → %v",
				st.name, changed, before.stages, after.stages, before.journal, after.journal, before.login, after.login)
		}
	}

	// The end state a successful rotation must leave.
	cur := s.current()
	if cur != rc.ClientRequestToken {
		t.Errorf("AWSCURRENT is %s, want the token %s", cur, rc.ClientRequestToken)
	}
	if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
		t.Errorf("the new AWSCURRENT does not log in: %v", err)
	}
	if err := env.CanLogin(s.ctx, s.arn, "", "AWSPREVIOUS"); err == nil {
		t.Error("the old password (AWSPREVIOUS) still logs in")
	}
	if prev := holdersOf(t, s, "AWSPREVIOUS"); !slices.Equal(prev, []string{s.orig}) {
		t.Errorf("AWSPREVIOUS is on %v, want the original version %s", prev, s.orig)
	}
	if j := s.journal(); j[len(j)-1] != ledger.Finished {
		t.Errorf("journal %v does not end FINISHED", j)
	}
	s.invariants()
}

func holdersOf(t *testing.T, s *scenario, stage string) []string {
	t.Helper()
	st, err := env.Stages(s.ctx, s.arn)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id, stages := range st {
		if slices.Contains(stages, stage) {
			ids = append(ids, id)
		}
	}
	return ids
}

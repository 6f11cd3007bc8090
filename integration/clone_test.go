//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/shared/faults"
)

// TestCloneOwnership: an alternating-users secret whose other user
// (<user>_clone) already exists and that secretsaga did not create (no
// ledger record, no mark on the server) is refused with InputError at
// create, the earliest step that logs in as the master; the role keeps its
// password, and the secret, its journal aside, is unchanged. A clone that
// carries the server's mark (PostgreSQL's role comment, what a person adds
// for a clone an earlier version made) is accepted.
func TestCloneOwnership(t *testing.T) {
	engines := []struct {
		engine string
		create func(ctx context.Context, name, user string) (string, error)
	}{
		{"postgres", env.PostgresAlternatingSecret},
		{"mariadb", env.MariaDBAlternatingSecret},
	}
	for _, e := range engines {
		t.Run(e.engine+"/foreign clone refused", func(t *testing.T) {
			withFaults(t)
			s := newScenarioWith(t, "clone ownership: a foreign <user>_clone is refused", "own_", e.create)
			pw := "Foreign-" + uuid.NewString()
			if err := env.ForeignUser(s.ctx, e.engine, s.role+"_clone", pw, ""); err != nil {
				t.Fatal(err)
			}
			s.baseline() // the foreign role is part of the world the product must leave alone
			x := s.run(map[string]any{})
			if x.Status != "FAILED" || x.Error != faults.NameInput || !strings.Contains(x.Cause, "step create") ||
				!strings.Contains(x.Cause, "which secretsaga did not create") || !strings.Contains(x.Cause, s.role+"_clone") {
				t.Fatalf("ended %s %s (%s), want InputError at create naming the clone", x.Status, x.Error, x.Cause)
			}
			if strings.Contains(x.Cause, pw) {
				t.Fatal("the refusal holds the foreign role's password")
			}
			if err := env.CanLoginTo(s.ctx, e.engine, s.role+"_clone", pw); err != nil {
				t.Fatalf("the foreign role's password no longer works: %v", err)
			}
			now, err := env.Baseline(s.ctx, s.arn)
			if err != nil {
				t.Fatal(err)
			}
			if changes := s.before.Changes(now); len(changes) > 0 {
				t.Fatalf("the refused rotation changed %v", changes)
			}
			s.verdict.refusedUnchanged = true
			s.invariants(x)
		})
	}
	t.Run("postgres/marked clone accepted", func(t *testing.T) {
		withFaults(t)
		s := newScenarioWith(t, "clone ownership: a marked <user>_clone is adopted", "own_", env.PostgresAlternatingSecret)
		if err := env.ForeignUser(s.ctx, "postgres", s.role+"_clone", "Old-"+uuid.NewString(), "secretsaga:clone-of="+s.role); err != nil {
			t.Fatal(err)
		}
		s.baseline()
		x := s.run(map[string]any{})
		if x.Status != "SUCCEEDED" {
			t.Fatalf("ended %s %s: %s", x.Status, x.Error, x.Cause)
		}
		if u := username(t, s.ctx, s.arn); u != s.role+"_clone" {
			t.Fatalf("AWSCURRENT is user %s", u)
		}
		s.invariants(x)
	})
}

//go:build integration

package integration

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// TestOperatorRollback: after a successful rotation, a rollback through
// the same saga makes AWSPREVIOUS the AWSCURRENT again and sets its
// password on the database, so the old value works again.
func TestOperatorRollback(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "operations: rollback and bake")
	if x := s.run(map[string]any{}); x.Status != "SUCCEEDED" {
		t.Fatalf("rotation: %s %s", x.Status, x.Error)
	}
	rotated := s.current()
	x := s.run(map[string]any{"Rollback": true, "ClientRequestToken": s.orig})
	if x.Status != "SUCCEEDED" {
		t.Fatalf("rollback ended %s %s: %s", x.Status, x.Error, x.Cause)
	}
	if cur := s.current(); cur != s.orig {
		t.Fatalf("AWSCURRENT is %s, want the original %s", cur, s.orig)
	}
	if prev := holdersOf(t, s, "AWSPREVIOUS"); !slices.Equal(prev, []string{rotated}) {
		t.Errorf("AWSPREVIOUS on %v, want the rolled-back version %s", prev, rotated)
	}
	if err := env.CanLogin(s.ctx, s.arn, s.orig, ""); err != nil {
		t.Fatalf("the original password does not log in after the rollback: %v", err)
	}
	if err := env.CanLogin(s.ctx, s.arn, rotated, ""); err == nil {
		t.Error("the rolled-back password still logs in")
	}
	found := false
	for _, e := range env.Events.Entries() {
		found = found || (e.DetailType == events.RollbackCompleted && slices.Contains(e.Resources, s.arn))
	}
	if !found {
		t.Errorf("no %q event", events.RollbackCompleted)
	}
	s.invariants(x)
}

func TestRollbackRefusedWithoutPrevious(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "operations: rollback and bake")
	x := s.run(map[string]any{"Rollback": true, "ClientRequestToken": uuid.NewString()})
	if x.Status != "FAILED" || x.Error != faults.NameInput {
		t.Fatalf("ended %s %s, want FAILED InputError", x.Status, x.Error)
	}
	if s.current() != s.orig || len(s.journal()) != 0 {
		t.Fatalf("a refused rollback changed something: journal %v", s.journal())
	}
	s.invariants(x)
}

// TestBake: after finish, the health check must stay green for the bake
// time; when it does not, the rotation is rolled back, database included.
func TestBake(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		want   string
	}{
		{"healthy", http.StatusOK, "SUCCEEDED"},
		{"unhealthy during the bake", http.StatusServiceUnavailable, "FAILED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t)
			var checks atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				// Green at first, then the configured answer: the bake must
				// keep watching, not check once.
				if checks.Add(1) == 1 {
					return
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			s := newScenario(t, "operations: rollback and bake")
			x := s.run(map[string]any{"HealthCheckUrl": srv.URL + "/health", "BakeSeconds": 3})
			if x.Status != tt.want {
				t.Fatalf("ended %s %s (%s), want %s", x.Status, x.Error, x.Cause, tt.want)
			}
			if checks.Load() < 2 {
				t.Errorf("the health check was called %d times in a 3 s bake", checks.Load())
			}
			j := s.journal()
			switch tt.want {
			case "SUCCEEDED":
				if !slices.Contains(j, ledger.Verified) || s.current() == s.orig {
					t.Errorf("journal %v, AWSCURRENT %s", j, s.current())
				}
			default:
				if x.Error != faults.NameTestFailed || j[len(j)-1] != ledger.RolledBack || s.current() != s.orig {
					t.Errorf("error %s, journal %v, AWSCURRENT %s: want a rollback", x.Error, j, s.current())
				}
				if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSCURRENT"); err != nil {
					t.Errorf("the original password does not log in after the rollback: %v", err)
				}
			}
			s.invariants(x)
		})
	}
}

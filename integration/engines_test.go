//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// engineCell is one engine × strategy: the fixture that makes its secret.
type engineCell struct {
	engine, strategy string
	prefix           string // of the user names the fixture creates
	create           func(ctx context.Context, name, user string) (string, error)
	alternating      bool
	// grants: the fixture gives the user privileges that CanUseGrants
	// checks (every cell but PostgreSQL single user).
	grants bool
}

func engineCells() []engineCell {
	return []engineCell{
		{engine: "postgres", strategy: "single user", prefix: "psql_", create: env.PostgresSecret},
		{engine: "postgres", strategy: "alternating users", prefix: "psqlalt_", create: env.PostgresAlternatingSecret, alternating: true, grants: true},
		{engine: "mariadb", strategy: "single user", prefix: "my_", create: env.MariaDBSecret, grants: true},
		{engine: "mariadb", strategy: "alternating users", prefix: "myalt_", create: env.MariaDBAlternatingSecret, alternating: true, grants: true},
		{engine: "redis", strategy: "single user", prefix: "rd_", create: env.RedisSecret, grants: true},
		{engine: "redis", strategy: "alternating users", prefix: "rdalt_", create: env.RedisAlternatingSecret, alternating: true, grants: true},
	}
}

// TestEngines runs every engine × strategy through the state machine: a
// rotation that succeeds and one whose test step fails and rolls back,
// with the invariants checked after each.
func TestEngines(t *testing.T) {
	for _, c := range engineCells() {
		family := "engine: " + c.engine + " × " + c.strategy
		t.Run(c.engine+" × "+c.strategy, func(t *testing.T) {
			t.Run("rotation", func(t *testing.T) {
				withFaults(t)
				s := newScenarioWith(t, family, c.prefix, c.create)
				logSecretShape(t, s)
				users := []string{s.role}
				if c.alternating {
					// Out to the clone and back: the second rotation has
					// the master set the original user's password.
					users = []string{s.role + "_clone", s.role}
				}
				for i, user := range users {
					before := s.current()
					x := s.run(map[string]any{})
					if x.Status != "SUCCEEDED" {
						t.Fatalf("rotation %d: %s %s: %s", i+1, x.Status, x.Error, x.Cause)
					}
					t.Logf("%s: rotation %d took %v (%d state transitions)", family, i+1, x.Duration, x.Transitions())
					cur := s.current()
					if cur == before {
						t.Fatalf("rotation %d: AWSCURRENT did not move", i+1)
					}
					if got := s.username("AWSCURRENT"); got != user {
						t.Fatalf("rotation %d: AWSCURRENT is user %s, want %s", i+1, got, user)
					}
					if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
						t.Fatalf("rotation %d: AWSCURRENT does not log in: %v", i+1, err)
					}
					err := env.CanLogin(s.ctx, s.arn, before, "")
					switch {
					case c.alternating && err != nil:
						t.Fatalf("rotation %d: the previous user no longer logs in: %v", i+1, err)
					case !c.alternating && err == nil:
						t.Fatalf("rotation %d: the old password still logs in", i+1)
					}
					if c.grants {
						if err := env.CanUseGrants(s.ctx, s.arn, "", "AWSCURRENT", s.role); err != nil {
							t.Fatalf("rotation %d: AWSCURRENT (%s) lacks the user's grants: %v", i+1, user, err)
						}
						if c.alternating {
							if err := env.CanUseGrants(s.ctx, s.arn, before, "", s.role); err != nil {
								t.Fatalf("rotation %d: the previous user lost its grants: %v", i+1, err)
							}
						}
					}
					if j := s.journal(); j[len(j)-1] != ledger.Finished {
						t.Fatalf("rotation %d: journal %v", i+1, j)
					}
					s.invariants(x)
				}
			})
			t.Run("failed test step rolls back", func(t *testing.T) {
				withFaults(t, faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed})
				s := newScenarioWith(t, family, c.prefix, c.create)
				x := s.run(map[string]any{})
				if x.Status != "FAILED" || x.Error != faults.NameTestFailed {
					t.Fatalf("ended %s %s (%s), want FAILED %s", x.Status, x.Error, x.Cause, faults.NameTestFailed)
				}
				t.Logf("%s: rolled-back rotation took %v", family, x.Duration)
				if env.Faults.Fired() != 1 {
					t.Fatalf("fault fired %d times", env.Faults.Fired())
				}
				if s.current() != s.orig || s.username("AWSCURRENT") != s.role {
					t.Fatalf("AWSCURRENT moved")
				}
				if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSCURRENT"); err != nil {
					t.Fatalf("AWSCURRENT no longer logs in: %v", err)
				}
				if c.grants {
					if err := env.CanUseGrants(s.ctx, s.arn, "", "AWSCURRENT", s.role); err != nil {
						t.Fatalf("AWSCURRENT lost its grants: %v", err)
					}
				}
				if j := s.journal(); j[len(j)-1] != ledger.RolledBack {
					t.Fatalf("journal %v", j)
				}
				s.invariants(x)
			})
		})
	}
}

// logSecretShape logs the secret's AWSCURRENT value with the password
// blanked: the shape a README shows for the cell.
func logSecretShape(t *testing.T, s *scenario) {
	t.Helper()
	v, err := env.SMClient.GetSecretValue(s.ctx, secretValueInput(s.arn, "AWSCURRENT"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(*v.SecretString), &m); err != nil {
		t.Fatal(err)
	}
	m["password"] = "…"
	raw, _ := json.Marshal(m)
	t.Logf("secret: %s", raw)
}

//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

// newAlternating is a scenario whose secret uses the alternating-users
// strategy (masterarn).
func newAlternating(t *testing.T, family string) *scenario {
	t.Helper()
	return newScenarioWith(t, family, "alt_", env.PostgresAlternatingSecret)
}

func (s *scenario) username(versionOrStage string) string {
	s.t.Helper()
	v, err := env.SMClient.GetSecretValue(s.ctx, secretValueInput(s.arn, versionOrStage))
	if err != nil {
		s.t.Fatal(err)
	}
	val, err := secret.Parse(*v.SecretString)
	if err != nil {
		s.t.Fatal(err)
	}
	return val.Username
}

// TestAlternatingUsers: the first rotation clones the user as <user>_clone
// (with the user's privileges) and makes it AWSCURRENT; the next goes back
// to the user. Each time the previous user keeps working.
func TestAlternatingUsers(t *testing.T) {
	withFaults(t)
	s := newAlternating(t, "strategy: alternating users (PostgreSQL)")
	want := []string{s.role + "_clone", s.role, s.role + "_clone"}
	for i, user := range want {
		before := s.current()
		x := s.run(map[string]any{})
		if x.Status != "SUCCEEDED" {
			t.Fatalf("rotation %d: %s %s: %s", i+1, x.Status, x.Error, x.Cause)
		}
		if got := s.username("AWSCURRENT"); got != user {
			t.Fatalf("rotation %d: AWSCURRENT is user %s, want %s", i+1, got, user)
		}
		if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
			t.Fatalf("rotation %d: AWSCURRENT does not log in: %v", i+1, err)
		}
		if err := env.CanLogin(s.ctx, s.arn, before, ""); err != nil {
			t.Fatalf("rotation %d: the previous user no longer logs in: %v", i+1, err)
		}
		if err := env.CanRead(s.ctx, s.arn, "", "AWSCURRENT", s.role); err != nil {
			t.Fatalf("rotation %d: %s lacks the user's grants: %v", i+1, user, err)
		}
		s.invariants(x)
	}
}

// A failed test step undoes an alternating rotation without touching the
// user AWSCURRENT names.
func TestAlternatingUsersRollback(t *testing.T) {
	withFaults(t, faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed})
	s := newAlternating(t, "strategy: alternating users (PostgreSQL)")
	x := s.run(map[string]any{})
	if x.Status != "FAILED" || x.Error != faults.NameTestFailed {
		t.Fatalf("ended %s %s, want FAILED TestFailedError", x.Status, x.Error)
	}
	if s.current() != s.orig || s.username("AWSCURRENT") != s.role {
		t.Fatalf("AWSCURRENT moved")
	}
	if err := env.CanLogin(s.ctx, s.arn, s.orig, ""); err != nil {
		t.Fatalf("the user lost its login: %v", err)
	}
	if j := s.journal(); j[len(j)-1] != ledger.RolledBack {
		t.Fatalf("journal %v", j)
	}
	s.invariants(x)
}

// A masterarn that names no secret is refused with a clear error before
// anything changes.
func TestAlternatingMasterMissing(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "strategy: alternating users (PostgreSQL)")
	v, err := env.PostgresRole(s.ctx, s.role)
	if err != nil {
		t.Fatal(err)
	}
	v["masterarn"] = "arn:aws:secretsmanager:us-east-1:000000000000:secret:no-such-master-AbCdEf"
	arn := putJSON(t, s, v)
	x, err := env.Execute(s.ctx, "master-missing-"+uuid.NewString()[:8], map[string]any{"SecretId": arn})
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "FAILED" || x.Error != faults.NameInput || !strings.Contains(x.Cause, "master secret") {
		t.Fatalf("ended %s %s (%s), want InputError naming the master secret", x.Status, x.Error, x.Cause)
	}
}

func putJSON(t *testing.T, s *scenario, v map[string]any) string {
	t.Helper()
	raw, _ := json.Marshal(v)
	arn, err := env.CreateSecret(s.ctx, "it/"+secretName(t.Name())+"/"+uuid.NewString()[:8], string(raw), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	trackSecret(arn)
	return arn
}

func secretValueInput(arn, versionOrStage string) *secretsmanager.GetSecretValueInput {
	in := &secretsmanager.GetSecretValueInput{SecretId: &arn}
	if strings.HasPrefix(versionOrStage, "AWS") {
		in.VersionStage = &versionOrStage
	} else {
		in.VersionId = &versionOrStage
	}
	return in
}

//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/outage"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
)

// repairBackoff stands in for the deployment's hour: the first repair
// attempt is due this long after COMPENSATION_FAILED, doubling after each.
const repairBackoff = 2 * time.Second

// proxied creates a PostgreSQL secret whose host and port name an outage
// proxy in front of the local PostgreSQL, so a test can cut the database
// off the network and bring it back.
func proxied(t *testing.T) (*outage.Proxy, func(ctx context.Context, name, role string) (string, error)) {
	t.Helper()
	p, err := outage.Start(net.JoinHostPort(env.Postgres.Host, strconv.Itoa(env.Postgres.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, func(ctx context.Context, name, role string) (string, error) {
		v, err := env.PostgresRole(ctx, role)
		if err != nil {
			return "", err
		}
		v["host"], v["port"] = p.Host(), p.Port()
		raw, _ := json.Marshal(v)
		return env.CreateSecret(ctx, name, string(raw), "secretsaga local: login of role "+role+" behind an outage proxy")
	}
}

// storedPassword is a digest of the role's stored password, read as the
// administrator straight from PostgreSQL (not through the proxy): it
// changes whenever anyone sets the password.
func storedPassword(t *testing.T, s *scenario) string {
	t.Helper()
	conn, err := pgx.Connect(s.ctx, env.Postgres.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(s.ctx)
	var pw string
	if err := conn.QueryRow(s.ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", s.role).Scan(&pw); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(pw))
	return fmt.Sprintf("%x", h[:8])
}

// repairUntilHealthy runs the repair function for the secret as its
// schedule would (every 100 ms here) until the secret has left
// COMPENSATION_FAILED, and returns the results of the runs.
func repairUntilHealthy(t *testing.T, s *scenario, svc *rotation.Service, limit time.Duration) []rotation.RepairResult {
	t.Helper()
	var results []rotation.RepairResult
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		out, err := svc.Repair(s.ctx, rotation.RepairInput{SecretId: s.arn})
		if err != nil {
			t.Fatalf("repair: %v", err)
		}
		results = append(results, out.Results...)
		if l, _, _ := env.Ledger.Get(s.ctx, s.arn); l.State != ledger.CompensationFailed && !l.Queued() {
			return results
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not healthy within %s: %+v", limit, results)
	return nil
}

// healedAtFirstDueAttempt asserts that the first attempt due after the
// database returned healed the secret: every earlier run found it not due.
// That is "within one backoff period" without a wall-clock bound, which a
// loaded machine would break.
func healedAtFirstDueAttempt(t *testing.T, results []rotation.RepairResult) {
	t.Helper()
	for i, r := range results[:len(results)-1] {
		if r.Outcome != rotation.RepairNotDue {
			t.Errorf("run %d after the database returned: %q (%s), want %q until the first due attempt heals it", i, r.Outcome, r.Reason, rotation.RepairNotDue)
		}
	}
	if last := results[len(results)-1]; last.Outcome == rotation.RepairNotDue || last.Outcome == rotation.RepairDeferred {
		t.Errorf("last run %+v: not healed", last)
	}
}

// compensationFailed runs a rotation whose database goes away at cut
// (a fault rule's call, after it took effect) and stays away through
// compensation's retries: it must end COMPENSATION_FAILED.
func compensationFailed(t *testing.T, s *scenario, p *outage.Proxy, rules ...faultinject.Rule) {
	t.Helper()
	withFaults(t, rules...)
	x := s.run(map[string]any{})
	if x.Status != "FAILED" || x.Error != "CompensationFailedError" {
		t.Fatalf("ended %s %s, want FAILED CompensationFailedError: %s", x.Status, x.Error, x.Cause)
	}
	if !p.IsCut() {
		t.Fatal("the outage never began")
	}
	l, _, err := env.Ledger.Get(s.ctx, s.arn)
	if err != nil || l.State != ledger.CompensationFailed || l.Holder == "" || !l.Queued() {
		t.Fatalf("lease %+v (%v): want COMPENSATION_FAILED, held, in the repair queue", l, err)
	}
	q, err := env.Ledger.RepairQueue(s.ctx)
	if err != nil || !slices.ContainsFunc(q, func(l ledger.Lease) bool { return l.Secret == s.arn }) {
		t.Fatalf("the repair index does not list the secret (%v)", err)
	}
	s.invariants(x) // COMPENSATION_FAILED: held and alerted
}

// healthy asserts invariants 1-5 and 7: the secret left COMPENSATION_FAILED
// on its own, AWSCURRENT logs in, the lease is released.
func healthy(t *testing.T, s *scenario, want ledger.State) {
	t.Helper()
	l, _, err := env.Ledger.Get(s.ctx, s.arn)
	if err != nil || l.State != want || l.Holder != "" || l.Queued() {
		t.Fatalf("lease %s held by %q queued %v (%v), want %s, released, out of the queue", l.State, l.Holder, l.Queued(), err, want)
	}
	if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
		t.Fatalf("invariant 7: AWSCURRENT does not log in after the repair: %v", err)
	}
	j := s.journal()
	if i := slices.Index(j, ledger.RepairStarted); i < 0 || j[len(j)-1] != want {
		t.Errorf("journal %v: want REPAIR_STARTED … %s", j, want)
	}
	repaired := 0
	for _, e := range env.Events.Entries() {
		var d events.Detail
		if e.DetailType == events.RotationRepaired && json.Unmarshal(e.Detail, &d) == nil && d.SecretARN == s.arn {
			repaired++
		}
		if e.DetailType == events.RepairNeeded && json.Unmarshal(e.Detail, &d) == nil && d.SecretARN == s.arn {
			t.Errorf("a person was called: %s", e.Detail)
		}
	}
	if repaired != 1 {
		t.Errorf("%d %q events, want 1", repaired, events.RotationRepaired)
	}
	s.invariants()
}

// TestOutageThroughCompensation: the database goes away after set changed
// the password and stays away through test's and compensation's retries,
// so the rotation ends COMPENSATION_FAILED with the database on the new
// password. When it returns, the repair function heals the secret on its
// own within one backoff period (invariant 7): no manual step.
func TestOutageThroughCompensation(t *testing.T) {
	cutAfter := func(p *outage.Proxy, function string, call string) faultinject.Rule {
		return faultinject.Rule{Function: function, Call: call, Nth: 1, Phase: faultinject.After,
			Hook: func(context.Context) error { p.Cut(); return nil }}
	}
	svc, err := env.RepairService(rotation.RepairPolicy{Backoff: repairBackoff, MaxBackoff: 8 * repairBackoff, AlertAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the database returns: reverted within one backoff period", func(t *testing.T) {
		p, create := proxied(t)
		s := newScenarioWith(t, "outage through compensation", "role_", create)
		compensationFailed(t, s, p, cutAfter(p, "setsecret", "target.SetPassword"))
		if err := p.Restore(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		results := repairUntilHealthy(t, s, svc, 10*repairBackoff)
		took := time.Since(back)
		t.Logf("healthy %s after the database returned (backoff %s) after %d runs; the last: %+v", took.Round(time.Millisecond), repairBackoff, len(results), results[len(results)-1])
		fmt.Printf("outage through compensation: healthy %s after the database returned (one backoff period: %s)\n", took.Round(time.Millisecond), repairBackoff)
		healedAtFirstDueAttempt(t, results)
		if last := results[len(results)-1]; last.Outcome != rotation.RepairReverted {
			t.Errorf("outcome %q, want %q (the new password was never tested)", last.Outcome, rotation.RepairReverted)
		}
		if cur := s.current(); cur != s.orig {
			t.Errorf("AWSCURRENT is %s, want the original %s", cur, s.orig)
		}
		healthy(t, s, ledger.RolledBack)
	})

	t.Run("the repair runs while the database is still down: rescheduled, nothing changes", func(t *testing.T) {
		p, create := proxied(t)
		s := newScenarioWith(t, "outage through compensation", "role_", create)
		compensationFailed(t, s, p, cutAfter(p, "setsecret", "target.SetPassword"))
		stages, _ := env.Stages(s.ctx, s.arn)
		stored := storedPassword(t, s)
		time.Sleep(repairBackoff)
		out, err := svc.Repair(s.ctx, rotation.RepairInput{SecretId: s.arn})
		if err != nil || len(out.Results) != 1 || out.Results[0].Outcome != rotation.RepairDeferred {
			t.Fatalf("repair while down: %+v, %v", out, err)
		}
		next, err := time.Parse(time.RFC3339, out.Results[0].NextAttempt)
		if err != nil || next.Before(time.Now().Add(repairBackoff)) {
			t.Errorf("next attempt %q, want at least a doubled backoff away", out.Results[0].NextAttempt)
		}
		after, _ := env.Stages(s.ctx, s.arn)
		if fmt.Sprint(stages) != fmt.Sprint(after) || storedPassword(t, s) != stored {
			t.Fatalf("a deferred repair changed something: %v → %v", stages, after)
		}
		l, _, _ := env.Ledger.Get(s.ctx, s.arn)
		if l.State != ledger.CompensationFailed || l.Holder == "" || l.Repair.Attempts != 1 {
			t.Fatalf("lease after the deferral: %s %q, %d attempts", l.State, l.Holder, l.Repair.Attempts)
		}
		// Too early for the next attempt: nothing at all is done.
		if out, err := svc.Repair(s.ctx, rotation.RepairInput{SecretId: s.arn}); err != nil || out.Results[0].Outcome != rotation.RepairNotDue {
			t.Fatalf("second run %+v, %v", out, err)
		}
		if err := p.Restore(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		results := repairUntilHealthy(t, s, svc, 10*repairBackoff)
		took := time.Since(back)
		t.Logf("healthy %s after the database returned (current backoff %s)", took.Round(time.Millisecond), 2*repairBackoff)
		healedAtFirstDueAttempt(t, results)
		healthy(t, s, ledger.RolledBack)
	})

	t.Run("tested, then finish and the database failed: rolled forward", func(t *testing.T) {
		p, create := proxied(t)
		s := newScenarioWith(t, "outage through compensation", "role_", create)
		// The database goes away right after test proved the new password,
		// and Secrets Manager refuses finish's move throughout its retries.
		compensationFailed(t, s, p, cutAfter(p, "testsecret", "target.Verify"),
			faultinject.Rule{Function: "finishsecret", Call: "Secrets Manager.UpdateSecretVersionStage", Phase: faultinject.Before, Err: apiError("InternalServiceError")})
		if err := p.Restore(); err != nil {
			t.Fatal(err)
		}
		env.Faults.Reset()
		results := repairUntilHealthy(t, s, svc, 10*repairBackoff)
		if last := results[len(results)-1]; last.Outcome != rotation.RepairRolledForward {
			t.Errorf("outcome %q, want %q", last.Outcome, rotation.RepairRolledForward)
		}
		l, _, _ := env.Ledger.Get(s.ctx, s.arn)
		if cur := s.current(); cur != l.Token || cur == s.orig {
			t.Errorf("AWSCURRENT is %s, want the rotation's version %s", cur, l.Token)
		}
		healthy(t, s, ledger.Finished)
	})
}

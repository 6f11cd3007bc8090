//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
)

// eventFor returns the secret's events of one detail type.
func eventFor(arn, detailType string) []events.Detail {
	var out []events.Detail
	for _, e := range env.Events.Entries() {
		var d events.Detail
		if e.DetailType == detailType && json.Unmarshal(e.Detail, &d) == nil && d.SecretARN == arn {
			out = append(out, d)
		}
	}
	return out
}

// TestDeletedMidRotation: the secret is deleted while its rotation runs,
// right after set changed the password. Secrets Manager then refuses to
// read or relabel it ("If a secret is scheduled for deletion, then its
// details, including the encrypted secret information, is not accessible.
// To cancel a scheduled deletion and restore access, use RestoreSecret",
// DescribeSecret's DeletedDate; the emulator answers InvalidRequestException
// "marked for deletion" as AWS does), so the undo cannot complete: the
// rotation ends COMPENSATION_FAILED, and the alert says what to do.
func TestDeletedMidRotation(t *testing.T) {
	svc, err := env.RepairService(rotation.RepairPolicy{Backoff: repairBackoff, MaxBackoff: 8 * repairBackoff, AlertAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	afterSet := func(hook func(ctx context.Context) error) faultinject.Rule {
		return faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.After, Hook: hook}
	}

	t.Run("with a recovery window: restore it and the repair finishes the undo", func(t *testing.T) {
		s := newScenario(t, "deleted mid-rotation")
		withFaults(t, afterSet(func(ctx context.Context) error {
			_, err := env.SMClient.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: &s.arn, RecoveryWindowInDays: aws.Int64(7)})
			return err
		}))
		x := s.run(map[string]any{})
		if x.Status != "FAILED" || x.Error != "CompensationFailedError" {
			t.Fatalf("ended %s %s, want FAILED CompensationFailedError: %s", x.Status, x.Error, x.Cause)
		}
		cf := eventFor(s.arn, events.CompensationFailed)
		if len(cf) != 1 || !strings.Contains(cf[0].Action, "restore-secret") || !strings.Contains(cf[0].Action, "repair function then finishes the undo") {
			t.Fatalf("Compensation Failed events %+v: want one saying to restore the secret", cf)
		}
		if l, _, _ := env.Ledger.Get(s.ctx, s.arn); l.State != ledger.CompensationFailed || l.Holder == "" || !l.Queued() {
			t.Fatalf("lease %s held by %q queued %v", l.State, l.Holder, l.Queued())
		}
		// Still deleted: the repair waits, changing nothing, and calls no one
		// (the alert already said what to do).
		time.Sleep(repairBackoff)
		out, err := svc.Repair(s.ctx, rotation.RepairInput{SecretId: s.arn})
		if err != nil || len(out.Results) != 1 || out.Results[0].Outcome != rotation.RepairDeferred || !strings.Contains(out.Results[0].Reason, "scheduled for deletion") {
			t.Fatalf("repair of a secret scheduled for deletion: %+v, %v", out, err)
		}
		if n := len(eventFor(s.arn, events.RepairNeeded)); n != 0 {
			t.Fatalf("%d Repair Needed events while the restore advice stands", n)
		}
		// The operator restores it, as the alert said.
		if _, err := env.SMClient.RestoreSecret(s.ctx, &secretsmanager.RestoreSecretInput{SecretId: &s.arn}); err != nil {
			t.Fatal(err)
		}
		restored := time.Now()
		results := repairUntilHealthy(t, s, svc, 10*repairBackoff)
		t.Logf("healthy %s after the restore; last run: %+v", time.Since(restored).Round(time.Millisecond), results[len(results)-1])
		if last := results[len(results)-1]; last.Outcome != rotation.RepairReverted {
			t.Errorf("outcome %q, want %q: set had changed the password, test never ran", last.Outcome, rotation.RepairReverted)
		}
		if cur := s.current(); cur != s.orig {
			t.Errorf("AWSCURRENT is %s, want the original %s", cur, s.orig)
		}
		healthy(t, s, ledger.RolledBack)
		// And it rotates again.
		if x := s.run(map[string]any{}); x.Status != "SUCCEEDED" {
			t.Fatalf("the next rotation ended %s %s: %s", x.Status, x.Error, x.Cause)
		}
		s.invariants()
	})

	t.Run("without recovery (ForceDeleteWithoutRecovery): the one case for a person", func(t *testing.T) {
		s := newScenario(t, "deleted mid-rotation")
		withFaults(t, afterSet(func(ctx context.Context) error { return env.ForceDelete(ctx, s.arn) }))
		x := s.run(map[string]any{})
		if x.Status != "FAILED" || x.Error != "CompensationFailedError" {
			t.Fatalf("ended %s %s, want FAILED CompensationFailedError: %s", x.Status, x.Error, x.Cause)
		}
		cf := eventFor(s.arn, events.CompensationFailed)
		if len(cf) != 1 || !strings.Contains(cf[0].Action, "ForceDeleteWithoutRecovery") || !strings.Contains(cf[0].Action, "a person must") {
			t.Fatalf("Compensation Failed events %+v: want one saying a person must act", cf)
		}
		time.Sleep(repairBackoff)
		out, err := svc.Repair(s.ctx, rotation.RepairInput{SecretId: s.arn})
		if err != nil || len(out.Results) != 1 || out.Results[0].Outcome != rotation.RepairNeedsPerson {
			t.Fatalf("repair of a force-deleted secret: %+v, %v", out, err)
		}
		need := eventFor(s.arn, events.RepairNeeded)
		if len(need) != 1 || need[0].Severity != "critical" || !strings.Contains(need[0].Action, "ForceDeleteWithoutRecovery") {
			t.Fatalf("Repair Needed events %+v", need)
		}
		// The lease ends (nothing is left to heal) and leaves the queue, so
		// the person is called once, not every run.
		l, _, _ := env.Ledger.Get(s.ctx, s.arn)
		if l.State != ledger.Abandoned || l.Holder != "" || l.Queued() {
			t.Fatalf("lease %s held by %q queued %v, want ABANDONED, released, out of the queue", l.State, l.Holder, l.Queued())
		}
		if out, err := svc.Repair(s.ctx, rotation.RepairInput{SecretId: s.arn}); err != nil || out.Results[0].Outcome != rotation.RepairSkipped {
			t.Fatalf("second run %+v, %v", out, err)
		}
		if n := len(eventFor(s.arn, events.RepairNeeded)); n != 1 {
			t.Fatalf("%d Repair Needed events, want 1", n)
		}
		// Invariant 5 still holds for the passwords Secrets Manager forgot.
		secrets, pws, leaks := env.LeakScan(s.ctx, []string{s.arn})
		if pws < 2 || len(leaks) != 0 {
			t.Fatalf("leak scan of %d secrets, %d passwords: %v", secrets, pws, leaks)
		}
	})
}

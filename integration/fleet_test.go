//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// TestFleetRotation runs statemachines/fleet.asl.json over the secrets of
// one tag: the healthy ones rotate, one whose AWSCURRENT no longer logs in
// fails and is rolled back, one whose lease someone holds is left alone,
// and none of that stops or undoes the others.
func TestFleetRotation(t *testing.T) {
	withFaults(t)
	group := "fleet-" + uuid.NewString()[:8]
	tag := func(s *scenario) {
		t.Helper()
		if _, err := env.SMClient.TagResource(s.ctx, &secretsmanager.TagResourceInput{SecretId: &s.arn,
			Tags: []smtypes.Tag{{Key: aws.String("secretsaga:rotation-group"), Value: aws.String(group)}}}); err != nil {
			t.Fatal(err)
		}
	}
	var healthy []*scenario
	for range 4 {
		s := newScenario(t, "fleet")
		tag(s)
		healthy = append(healthy, s)
	}
	broken := newScenario(t, "fleet")
	tag(broken)
	if err := env.SetRolePassword(broken.ctx, broken.role, "changed-behind-our-back-"+uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	broken.baseline() // it never works from here on
	held := newScenario(t, "fleet")
	tag(held)
	lease, err := env.Ledger.Acquire(held.ctx, ledger.AcquireRequest{Secret: held.arn, Execution: "arn:aws:states:us-east-1:000000000000:execution:rotation:operator",
		Token: uuid.NewString(), Actor: "test", PreviousVersion: held.orig})
	if err != nil {
		t.Fatal(err)
	}
	untagged := newScenario(t, "fleet")

	x, err := env.ExecuteFleet(untagged.ctx, "fleet-"+group, map[string]any{
		"TagKey": "secretsaga:rotation-group", "TagValue": group, "MaxConcurrency": 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet: %s in %v, %d transitions", x.Status, x.Duration, x.Transitions())
	if x.Status != "SUCCEEDED" {
		t.Fatalf("fleet ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
	}
	var sum fleet.Summary
	if err := json.Unmarshal(x.Output, &sum); err != nil {
		t.Fatalf("output %s: %v", x.Output, err)
	}
	t.Logf("summary: %s", sum)
	if sum.Total != 6 || sum.Succeeded != 4 || sum.RolledBack != 1 || sum.Abandoned != 1 || sum.CompensationFailed != 0 {
		t.Errorf("summary %+v, want 6 = 4 succeeded + 1 rolled back + 1 abandoned", sum)
	}
	for _, f := range sum.Failures {
		if (f.SecretId == broken.arn && f.Outcome != fleet.OutcomeRolledBack) || (f.SecretId == held.arn && f.Outcome != fleet.OutcomeAbandoned) {
			t.Errorf("failure %+v has the wrong outcome", f)
		}
		if strings.Contains(f.SecretId, untagged.arn) {
			t.Error("the untagged secret was selected")
		}
	}
	for _, s := range healthy {
		if s.current() == s.orig {
			t.Errorf("%s did not rotate", s.arn)
		}
		s.invariants(x)
	}
	if broken.current() != broken.orig {
		t.Error("the broken secret's AWSCURRENT moved")
	}
	if untagged.current() != untagged.orig {
		t.Error("the untagged secret rotated")
	}
	if held.current() != held.orig {
		t.Error("the held secret rotated")
	}
	if err := env.Ledger.Append(held.ctx, &lease, ledger.Record{State: ledger.RolledBack, Actor: "test"}, ledger.Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	held.invariants(x)
	untagged.invariants()
	// The broken secret is refused and left alone: not a violation.
	broken.invariants(x)
	if !broken.verdict.refusedUnchanged {
		t.Error("the secret whose AWSCURRENT never logged in is not reported as refused and unchanged")
	}
}

// TestFleetFailedChildPublishes: every failed fleet child publishes a Fleet
// Rotation Failed event, in particular on the saga's paths that announce
// nothing themselves. Each case is a fleet of one secret, so that the
// injected faults strike only its rotation.
func TestFleetFailedChildPublishes(t *testing.T) {
	other := "arn:aws:states:us-east-1:000000000000:execution:rotation:someone-else"
	tests := []struct {
		name string
		// setup spoils the secret's rotation; it returns a cleanup that
		// ends what it started (a lease someone else holds).
		setup     func(t *testing.T, s *scenario) func()
		wantError string
		// sagaEvent is the saga's own event on this path ("": none).
		sagaEvent string
	}{
		{
			name: "lease held at acquire",
			setup: func(t *testing.T, s *scenario) func() {
				lease, err := env.Ledger.Acquire(s.ctx, ledger.AcquireRequest{Secret: s.arn, Execution: other, Token: uuid.NewString(), Actor: "test", PreviousVersion: s.orig})
				if err != nil {
					t.Fatal(err)
				}
				withFaults(t)
				return func() {
					if err := env.Ledger.Append(s.ctx, &lease, ledger.Record{State: ledger.RolledBack, Actor: "test"}, ledger.Change{Release: true}); err != nil {
						t.Error(err)
					}
				}
			},
			wantError: faults.NameConflict,
		},
		{
			name: "acquire fails",
			setup: func(t *testing.T, s *scenario) func() {
				withFaults(t, faultinject.Rule{Function: "acquirelease", Call: "Secrets Manager.DescribeSecret", Err: apiError("AccessDeniedException"), Times: 100})
				return func() {}
			},
			wantError: faults.NameInput,
		},
		{
			name: "compensation finds the lease taken over",
			setup: func(t *testing.T, s *scenario) func() {
				var lease ledger.Lease
				// set fails; before it does, the lease expires and
				// another execution takes it (as after a long stall).
				withFaults(t, faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Err: target.ErrInvalid,
					Hook: func(ctx context.Context) error {
						if err := env.ExpireLease(ctx, s.arn); err != nil {
							return err
						}
						var err error
						lease, err = env.Ledger.Acquire(ctx, ledger.AcquireRequest{Secret: s.arn, Execution: other, Token: uuid.NewString(), Actor: "test", PreviousVersion: s.orig})
						return err
					}})
				return func() {
					if lease.Holder == "" {
						return
					}
					if err := env.Ledger.Append(s.ctx, &lease, ledger.Record{State: ledger.RolledBack, Actor: "test"}, ledger.Change{Release: true}); err != nil {
						t.Error(err)
					}
				}
			},
			wantError: faults.NameConflict,
		},
		{
			name: "compensation failed and its alert could not be published",
			setup: func(t *testing.T, s *scenario) func() {
				withFaults(t,
					faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Err: target.ErrInvalid},
					faultinject.Rule{Function: "compensate", Call: "Secrets Manager.DescribeSecret", Err: apiError("AccessDeniedException"), Times: 100},
					faultinject.Rule{Function: "releaselease", Call: "EventBridge.PutEvents", Err: apiError("InternalException"), Times: 100})
				return func() {}
			},
			wantError: faults.NameCompensationFailed,
		},
		{
			// A path on which the saga announces itself: the fleet's
			// event comes besides it.
			name: "rolled back",
			setup: func(t *testing.T, s *scenario) func() {
				withFaults(t, faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Err: target.ErrInvalid})
				return func() {}
			},
			wantError: faults.NameInput,
			sagaEvent: events.RotationRolledBack,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group := "fleet-" + uuid.NewString()[:8]
			s := newScenario(t, "fleet")
			if _, err := env.SMClient.TagResource(s.ctx, &secretsmanager.TagResourceInput{SecretId: &s.arn,
				Tags: []smtypes.Tag{{Key: aws.String("secretsaga:rotation-group"), Value: aws.String(group)}}}); err != nil {
				t.Fatal(err)
			}
			done := tt.setup(t, s)
			x, err := env.ExecuteFleet(s.ctx, "fleet-"+group, map[string]any{"TagKey": "secretsaga:rotation-group", "TagValue": group})
			done()
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != "SUCCEEDED" {
				t.Fatalf("fleet ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
			}
			var sum fleet.Summary
			if err := json.Unmarshal(x.Output, &sum); err != nil {
				t.Fatalf("output %s: %v", x.Output, err)
			}
			if sum.Total != 1 || len(sum.Failures) != 1 || sum.Failures[0].Error != tt.wantError {
				t.Fatalf("summary %+v, want the one secret failed with %s\n%s", sum, tt.wantError, x.Timeline())
			}
			got := eventFor(s.arn, events.FleetRotationFailed)
			if len(got) != 1 {
				t.Fatalf("%d Fleet Rotation Failed events for the secret, want 1\n%s", len(got), x.Timeline())
			}
			if d := got[0]; d.ErrorClass != tt.wantError || d.Outcome != sum.Failures[0].Outcome || d.ExecutionARN == "" || d.Severity == "" {
				t.Errorf("event %+v, want error class %s, outcome %s", d, tt.wantError, sum.Failures[0].Outcome)
			}
			for _, dt := range []string{events.RotationRolledBack, events.RotationAbandoned, events.CompensationFailed} {
				n := len(eventFor(s.arn, dt))
				if want := dt == tt.sagaEvent; (n > 0) != want {
					t.Errorf("%d %q events from the saga on this path, want %v", n, dt, want)
				}
			}
		})
	}
}

// TestFleetPages: a fleet larger than one page (5 secrets, pages of 2)
// rotates every secret exactly once: the page loop takes each secret in
// one page only, and the Totals count all pages.
func TestFleetPages(t *testing.T) {
	withFaults(t)
	group := "fleet-" + uuid.NewString()[:8]
	var secrets []*scenario
	for range 5 {
		s := newScenario(t, "fleet")
		if _, err := env.SMClient.TagResource(s.ctx, &secretsmanager.TagResourceInput{SecretId: &s.arn,
			Tags: []smtypes.Tag{{Key: aws.String("secretsaga:rotation-group"), Value: aws.String(group)}}}); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	x, err := env.ExecuteFleet(secrets[0].ctx, "fleet-"+group, map[string]any{
		"TagKey": "secretsaga:rotation-group", "TagValue": group, "MaxConcurrency": 2, "PageSize": 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "SUCCEEDED" {
		t.Fatalf("fleet ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
	}
	pages := 0
	for _, e := range x.Events {
		if e.Type == "StateEntered" && e.State == "ListSecrets" {
			pages++
		}
	}
	var sum fleet.Summary
	if err := json.Unmarshal(x.Output, &sum); err != nil {
		t.Fatalf("output %s: %v", x.Output, err)
	}
	t.Logf("%d pages; summary: %s", pages, sum)
	if pages != 3 {
		t.Errorf("%d pages, want 3 (2 + 2 + 1)", pages)
	}
	if sum.Total != 5 || sum.Succeeded != 5 {
		t.Errorf("summary %+v, want 5 succeeded", sum)
	}
	for _, s := range secrets {
		if s.current() == s.orig {
			t.Errorf("%s did not rotate", s.arn)
		}
		// One rotation: one FINISHED in its journal, one version made.
		finished := 0
		for _, st := range s.journal() {
			if st == ledger.Finished {
				finished++
			}
		}
		if finished != 1 {
			t.Errorf("%s: journal %v, want exactly one rotation FINISHED", s.arn, s.journal())
		}
		s.invariants(x)
	}
}

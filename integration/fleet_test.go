//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/ledger"
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

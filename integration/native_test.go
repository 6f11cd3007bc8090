//go:build integration

package integration

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/target"
)

// leavePendingOnCurrent puts AWSPENDING on the AWSCURRENT version, where a
// rotation function that never removes it leaves it: AWS's own templates
// end finishSecret by moving AWSCURRENT only, and "When rotation is
// successful, the AWSPENDING staging label might be attached to the same
// version as the AWSCURRENT version" (RotateSecret).
func (s *scenario) leavePendingOnCurrent() {
	s.t.Helper()
	if _, err := env.SMClient.UpdateSecretVersionStage(s.ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: &s.arn, VersionStage: aws.String("AWSPENDING"), MoveToVersionId: &s.orig,
	}); err != nil {
		s.t.Fatal(err)
	}
	st, err := env.Stages(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	if !slices.Contains(st[s.orig], "AWSPENDING") || !slices.Contains(st[s.orig], "AWSCURRENT") {
		s.t.Fatalf("set-up: %s carries %v", s.orig, st[s.orig])
	}
}

// TestPendingLeftOnCurrent: a secret last rotated by a function that left
// AWSPENDING on the AWSCURRENT version is rotated by the saga as Secrets
// Manager would let it be (RotateSecret starts then), and whether the
// rotation finishes or rolls back, before or after create, it ends with no
// AWSPENDING anywhere (invariant 3) and the other invariants.
func TestPendingLeftOnCurrent(t *testing.T) {
	tests := []struct {
		name    string
		rules   []faultinject.Rule
		status  string
		wantErr string
	}{
		{name: "finishes", status: "SUCCEEDED"},
		{name: "rolled back after set", status: "FAILED", wantErr: "TestFailedError",
			rules: []faultinject.Rule{{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed}}},
		{name: "rolled back before create stored anything", status: "FAILED", wantErr: "InputError",
			rules: []faultinject.Rule{{Function: "createsecret", Call: "Secrets Manager.PutSecretValue", Nth: 1, Phase: faultinject.Before, Err: apiError("AccessDeniedException")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t, tt.rules...)
			s := newScenario(t, "native: AWSPENDING left on AWSCURRENT")
			s.leavePendingOnCurrent()
			x := s.run(map[string]any{})
			if x.Status != tt.status || x.Error != tt.wantErr {
				t.Fatalf("status %s error %s (%s), want %s %s", x.Status, x.Error, x.Cause, tt.status, tt.wantErr)
			}
			if moved := s.current() != s.orig; moved != (tt.status == "SUCCEEDED") {
				t.Errorf("AWSCURRENT moved: %v, status %s", moved, x.Status)
			}
			s.invariants(x)
		})
	}
}

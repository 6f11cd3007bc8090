//go:build integration

package integration

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/smlocal"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/native"
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

// The native path as Secrets Manager drives it: RotateSecret on the
// emulator (through the real SDK client) creates the token's empty
// AWSPENDING version and invokes functions/nativerotation's handler through
// the local Lambda endpoint, createSecret to finishSecret; the handler
// starts the saga through the local Step Functions API and reports its end.

var nativeStack struct {
	once sync.Once
	api  *local.SFNAPI
	fn   string // the nativerotation function's ARN
	err  error
}

// nativeFunction starts the Step Functions API and registers the native
// entry, once for the package, and returns the function's ARN.
func nativeFunction(t *testing.T) (string, *local.SFNAPI) {
	t.Helper()
	nativeStack.once.Do(func() {
		nativeStack.api, nativeStack.err = env.StartSFNAPI("")
		if nativeStack.err == nil {
			nativeStack.fn = env.RegisterNative(nativeStack.api)
		}
	})
	if nativeStack.err != nil {
		t.Fatal(nativeStack.err)
	}
	return nativeStack.fn, nativeStack.api
}

// rotateSecret calls RotateSecret with the native function and waits for
// the rotation it started to end; it returns the new version's id and what
// the emulator recorded of the rotation.
func (s *scenario) rotateSecret(fn string, immediately bool) (string, smlocal.Rotation) {
	s.t.Helper()
	start := time.Now()
	out, err := env.SMClient.RotateSecret(s.ctx, &secretsmanager.RotateSecretInput{
		SecretId: &s.arn, RotationLambdaARN: &fn, RotateImmediately: &immediately,
	})
	if err != nil {
		s.t.Fatalf("RotateSecret: %v", err)
	}
	token := aws.ToString(out.VersionId)
	for _, r := range slices.Backward(env.SM.WaitRotations()) {
		if r.Token == token {
			s.t.Logf("RotateSecret (immediately %v): steps %v, error %v, %v", immediately, r.Steps, r.Err, time.Since(start).Round(time.Millisecond))
			return token, r
		}
	}
	s.t.Fatalf("no rotation recorded for version %s", token)
	return "", smlocal.Rotation{}
}

func (s *scenario) describe() *secretsmanager.DescribeSecretOutput {
	s.t.Helper()
	d, err := env.SMClient.DescribeSecret(s.ctx, &secretsmanager.DescribeSecretInput{SecretId: &s.arn})
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// labelled is the secret's versions that carry a label, with their labels.
func (s *scenario) labelled() map[string][]string {
	s.t.Helper()
	st, err := env.Stages(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string][]string{}
	for v, l := range st {
		if len(l) > 0 {
			slices.Sort(l)
			out[v] = l
		}
	}
	return out
}

// rotated checks a RotateSecret that succeeded: the four steps ran, the
// token is AWSCURRENT and logs in, the old password does not, the ledger
// says FINISHED and released the lease, LastRotatedDate is set.
func (s *scenario) rotated(token string, r smlocal.Rotation, from string, since time.Time) {
	s.t.Helper()
	if r.Err != nil || !slices.Equal(r.Steps, []string{native.StepCreate, native.StepSet, native.StepTest, native.StepFinish}) {
		s.t.Fatalf("rotation: steps %v, error %v; want the four steps and no error", r.Steps, r.Err)
	}
	if cur := s.current(); cur != token {
		s.t.Fatalf("AWSCURRENT is %s, want the new version %s", cur, token)
	}
	if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
		s.t.Errorf("the new AWSCURRENT does not log in: %v", err)
	}
	if err := env.CanLogin(s.ctx, s.arn, from, ""); err == nil {
		s.t.Errorf("the replaced password (version %s) still logs in", from)
	}
	d := s.describe()
	if d.LastRotatedDate == nil || d.LastRotatedDate.Before(since.Truncate(time.Second)) {
		s.t.Errorf("LastRotatedDate %v, want at or after %v", d.LastRotatedDate, since)
	}
	if !aws.ToBool(d.RotationEnabled) || aws.ToString(d.RotationLambdaARN) != r.FunctionARN {
		s.t.Errorf("RotationEnabled %v, RotationLambdaARN %s", aws.ToBool(d.RotationEnabled), aws.ToString(d.RotationLambdaARN))
	}
	l, _, err := env.Ledger.Get(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	if l.State != ledger.Finished || l.Token != token || l.Holder != "" {
		s.t.Errorf("lease %s token %s holder %q; want FINISHED, %s, released", l.State, l.Token, l.Holder, token)
	}
	if p := holders(s.labelled(), "AWSPENDING"); len(p) > 0 {
		s.t.Errorf("AWSPENDING left on %v", p)
	}
}

func holders(stages map[string][]string, stage string) []string {
	var out []string
	for v, l := range stages {
		if slices.Contains(l, stage) {
			out = append(out, v)
		}
	}
	return out
}

// functionError is the error type the rotation function returned.
func functionError(r smlocal.Rotation) string {
	var fe *smlocal.FunctionError
	if errors.As(r.Err, &fe) {
		return fe.Type
	}
	return fmt.Sprint(r.Err)
}

func TestRotateSecretNative(t *testing.T) {
	const family = "native: RotateSecret → nativerotation → saga"

	t.Run("rotates", func(t *testing.T) {
		withFaults(t)
		fn, _ := nativeFunction(t)
		s := newScenario(t, family)
		since := time.Now()
		token, r := s.rotateSecret(fn, true)
		s.rotated(token, r, s.orig, since)
		s.invariants()
	})

	t.Run("rolled back, then the next RotateSecret rotates", func(t *testing.T) {
		withFaults(t, faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed})
		fn, _ := nativeFunction(t)
		s := newScenario(t, family)
		token, r := s.rotateSecret(fn, true)
		if got := functionError(r); got != "TestFailedError" {
			t.Fatalf("rotation error %q (steps %v), want the function's TestFailedError", got, r.Steps)
		}
		if cur := s.current(); cur != s.orig {
			t.Fatalf("AWSCURRENT moved to %s after a rolled-back rotation", cur)
		}
		if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
			t.Errorf("AWSCURRENT does not log in after the rollback: %v", err)
		}
		if p := holders(s.labelled(), "AWSPENDING"); len(p) > 0 {
			t.Errorf("AWSPENDING left on %v (token %s)", p, token)
		}
		if d := s.describe(); d.LastRotatedDate != nil {
			t.Errorf("LastRotatedDate %v after a failed rotation", d.LastRotatedDate)
		}
		if j := s.journal(); len(j) == 0 || j[len(j)-1] != ledger.RolledBack {
			t.Errorf("journal %v, want it to end ROLLED_BACK", j)
		}
		s.invariants()

		env.Faults.Reset()
		since := time.Now()
		next, r := s.rotateSecret(fn, true)
		s.rotated(next, r, s.orig, since)
		s.invariants()
	})

	t.Run("AWSPENDING left on AWSCURRENT by another rotation function", func(t *testing.T) {
		withFaults(t)
		fn, _ := nativeFunction(t)
		s := newScenario(t, family)
		s.leavePendingOnCurrent()
		since := time.Now()
		token, r := s.rotateSecret(fn, true)
		s.rotated(token, r, s.orig, since)
		s.invariants()
	})

	t.Run("RotateImmediately=false runs only the configuration test", func(t *testing.T) {
		withFaults(t)
		fn, api := nativeFunction(t)
		s := newScenario(t, family)
		before := s.labelled()
		token, r := s.rotateSecret(fn, false)
		if r.Err != nil || !slices.Equal(r.Steps, []string{native.StepTest}) {
			t.Fatalf("steps %v, error %v; want testSecret alone, passing", r.Steps, r.Err)
		}
		if after := s.labelled(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("labels changed: %v → %v", before, after)
		}
		if _, leased, err := env.Ledger.Get(s.ctx, s.arn); err != nil || leased {
			t.Errorf("a lease was taken (%v, %v)", leased, err)
		}
		x := native.ExecutionArn(api.StateMachineArn, native.ExecutionName(token))
		if err := api.Wait(s.ctx, x); err == nil {
			t.Errorf("execution %s was started", x)
		}
		if d := s.describe(); d.LastRotatedDate != nil || !aws.ToBool(d.RotationEnabled) {
			t.Errorf("LastRotatedDate %v, RotationEnabled %v", d.LastRotatedDate, aws.ToBool(d.RotationEnabled))
		}
		s.invariants()
	})

	// The saga refuses at acquire (another rotation holds the lease): the
	// empty AWSPENDING version RotateSecret made is not left behind, so the
	// next RotateSecret starts ("If the AWSPENDING staging label is present
	// but not attached to the same version as AWSCURRENT, then any later
	// invocation of RotateSecret assumes that a previous rotation request
	// is still in progress and returns an error").
	t.Run("refused at acquire, then the next RotateSecret rotates", func(t *testing.T) {
		withFaults(t)
		fn, _ := nativeFunction(t)
		s := newScenario(t, family)
		other := "arn:aws:states:us-east-1:000000000000:execution:rotation:someone-else"
		lease, err := env.Ledger.Acquire(s.ctx, ledger.AcquireRequest{Secret: s.arn, Execution: other, Token: uuid.NewString(), Actor: "test", PreviousVersion: s.orig})
		if err != nil {
			t.Fatal(err)
		}
		before := s.labelled()
		_, r := s.rotateSecret(fn, true)
		if got := functionError(r); got != "ConflictError" {
			t.Fatalf("rotation error %q (steps %v), want ConflictError", got, r.Steps)
		}
		if after := s.labelled(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("labels after the refusal %v, want them as before %v", after, before)
		}
		if got, _, _ := env.Ledger.Get(s.ctx, s.arn); got.Holder != other || got.Fencing != lease.Fencing {
			t.Fatalf("the refusal changed the other rotation's lease: %+v", got)
		}
		// The other rotation ends.
		if err := env.Ledger.Append(s.ctx, &lease, ledger.Record{State: ledger.RolledBack, Actor: "test"}, ledger.Change{Release: true}); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		next, r := s.rotateSecret(fn, true)
		s.rotated(next, r, s.orig, since)
		s.invariants()
	})
}

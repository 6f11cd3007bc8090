//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// TestLoginLockSharedLogin: twenty secrets name ONE PostgreSQL login (the
// alternating users <role> / <role>_clone, one login copied into twenty
// secrets), and all twenty rotations start at once through the state
// machine. The login lock lets exactly one change the login; the other
// nineteen are refused at acquire with ConflictError naming the winner's
// secret and the login, and change nothing. At the end every secret's
// AWSCURRENT logs in (the winner's on <role>_clone, the others' still on
// <role>, which no rotation touched), no two rotations changed the login
// at the same time (invariant 6), and every other invariant holds.
func TestLoginLockSharedLogin(t *testing.T) {
	const n = 20
	// Hold the winner inside its test step until every other execution
	// has ended: they all meet its login lock, never a released one.
	ended := make(chan struct{}, n)
	withFaults(t, faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before,
		Hook: func(ctx context.Context) error {
			for range n - 1 {
				select {
				case <-ended:
				case <-time.After(60 * time.Second):
					return nil // the assertions below say what went wrong
				}
			}
			return nil
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	role := "shared_" + id
	first, err := env.PostgresAlternatingSecret(ctx, "it/"+secretName(t.Name())+"/"+id+"-00", role)
	if err != nil {
		t.Fatal(err)
	}
	trackSecret(first)
	value, err := env.SMClient.GetSecretValue(ctx, secretValueInput(first, "AWSCURRENT"))
	if err != nil {
		t.Fatal(err)
	}
	arns := []string{first}
	for i := 1; i < n; i++ {
		arn, err := env.CreateSecret(ctx, fmt.Sprintf("it/%s/%s-%02d", secretName(t.Name()), id, i), aws.ToString(value.SecretString),
			"secretsaga local: one login copied into several secrets")
		if err != nil {
			t.Fatal(err)
		}
		trackSecret(arn)
		arns = append(arns, arn)
	}
	before := make([]*local.Baseline, n)
	for i, arn := range arns {
		if before[i], err = env.Baseline(ctx, arn); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	xs := make([]*sfnlocal.Execution, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, arn := range arns {
		wg.Go(func() {
			xs[i], errs[i] = env.Execute(ctx, fmt.Sprintf("login-lock-%02d-%s", i, uuid.NewString()[:8]), map[string]any{"SecretId": arn})
			ended <- struct{}{}
		})
	}
	wg.Wait()
	t.Logf("%d executions on one login in %v", n, time.Since(start).Round(time.Millisecond))
	winner := -1
	for i, x := range xs {
		if errs[i] != nil {
			t.Fatalf("execution %d: %v", i, errs[i])
		}
		if x.Status == "SUCCEEDED" {
			if winner >= 0 {
				t.Fatalf("secrets %d and %d both rotated the login", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	// Either user of the pair: a start that read the first lock before
	// the winner's write and the second after it names the second.
	names := func(cause string) bool {
		return strings.Contains(cause, "postgres://"+role+"@") || strings.Contains(cause, "postgres://"+role+"_clone@")
	}
	serialized := env.CheckLogins(ctx, arns)
	for i, arn := range arns {
		t.Run(fmt.Sprintf("secret-%02d", i), func(t *testing.T) {
			v := cell(t, "login lock: 20 secrets × 1 PostgreSQL login")
			x := xs[i]
			got := env.CheckAgainst(ctx, before[i], arn, x)
			if i == winner {
				// Invariant 6 is about all of them; it is counted once.
				got.Violations = append(got.Violations, serialized...)
				if u := username(t, ctx, arn); u != role+"_clone" {
					t.Errorf("the winner's AWSCURRENT is user %s, want %s_clone", u, role)
				}
			} else {
				switch {
				case x.Status != "FAILED" || x.Error != faults.NameConflict:
					t.Errorf("ended %s %s (%s), want FAILED ConflictError", x.Status, x.Error, x.Cause)
				case !strings.Contains(x.Cause, arns[winner]) || !names(x.Cause) || !strings.Contains(x.Cause, "same database login"):
					t.Errorf("the refusal does not name the other secret %s and the login (user %s or its clone): %s", arns[winner], role, x.Cause)
				}
				now, err := env.Baseline(ctx, arn)
				if err != nil {
					t.Fatal(err)
				}
				changes := before[i].SecretChanges(now)
				if hist, _ := env.Ledger.History(ctx, arn); len(hist) > 0 {
					changes = append(changes, fmt.Sprintf("%d journal records", len(hist)))
				}
				if len(changes) > 0 {
					t.Errorf("the refused rotation changed %s", strings.Join(changes, ", "))
				} else {
					v.refusedUnchanged = true
				}
			}
			for _, msg := range got.Violations {
				v.violations++
				t.Error(msg)
			}
		})
	}
}

func username(t *testing.T, ctx context.Context, arn string) string {
	t.Helper()
	out, err := env.SMClient.GetSecretValue(ctx, secretValueInput(arn, "AWSCURRENT"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := secret.Parse(aws.ToString(out.SecretString))
	if err != nil {
		t.Fatal(err)
	}
	return v.Username
}

// TestLoginLockTakenOverFromADeadRotation: a rotation of one secret died
// holding the lock of a login that another secret names too, and its lease
// has expired. The other secret's rotation takes the lock over: its acquire
// checks, in the same transaction, that the dead rotation's lease is still
// as it read it (a ConditionCheck), then rotates; the dead rotation's
// secret keeps working (alternating users: the rotation changed the clone).
func TestLoginLockTakenOverFromADeadRotation(t *testing.T) {
	withFaults(t)
	dead := newScenarioWith(t, "login lock: taken over from a dead rotation", "shl_", env.PostgresAlternatingSecret)
	value, err := env.SMClient.GetSecretValue(dead.ctx, secretValueInput(dead.arn, "AWSCURRENT"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := env.CreateSecret(dead.ctx, "it/"+secretName(t.Name())+"/"+uuid.NewString()[:8], aws.ToString(value.SecretString),
		"secretsaga local: one login copied into two secrets")
	if err != nil {
		t.Fatal(err)
	}
	trackSecret(other)
	s := &scenario{t: t, ctx: dead.ctx, arn: other, role: dead.role, verdict: dead.verdict}
	s.orig = s.current()
	s.baseline()

	// The dead execution ran an hour ago; its 15-minute lease has expired.
	past, err := env.ServiceWithClock("dead-execution", func() time.Time { return time.Now().Add(-time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := past.Acquire(dead.ctx, rotation.AcquireInput{SecretId: dead.arn, ClientRequestToken: uuid.NewString(),
		ExecutionArn: "arn:aws:states:us-east-1:000000000000:execution:rotation:dead-" + uuid.NewString()[:8], LedgerTable: local.Table}); err != nil {
		t.Fatal(err)
	}
	x := s.run(map[string]any{})
	if x.Status != "SUCCEEDED" {
		t.Fatalf("the other secret's rotation ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
	}
	checked := false
	for _, c := range env.Faults.Calls() {
		if c.Function == "acquirelease" && c.Name == "DynamoDB.TransactWriteItems" && slices.Contains(c.Items, "ConditionCheck") {
			checked = true
		}
	}
	if !checked {
		t.Error("acquire took the lock over without checking the dead rotation's lease in its transaction")
	}
	if err := env.CanLogin(s.ctx, dead.arn, "", "AWSCURRENT"); err != nil {
		t.Errorf("the dead rotation's secret no longer logs in: %v", err)
	}
	s.invariants(x)
}

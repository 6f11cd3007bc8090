//go:build integration

package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// TestRealBinaries runs the rotation state machine with every Task backed
// by the built bootstrap of its function (this machine's architecture,
// -tags lambda.norpc) behind the Lambda Runtime API, with the environment
// the CDK app sets: main.go's wiring, lambdaenv and the aws-lambda-go
// runtime's error reporting (the errorType the Retry and Catch match) are
// what runs. A rotation succeeds and one whose bake fails rolls back, and
// the invariants hold after each.
func TestRealBinaries(t *testing.T) {
	withFaults(t) // none reaches the binaries; none may linger for the others
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bins, err := env.StartBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %d bootstraps and the RIE in %v", len(bins.Names), bins.Build.Round(time.Millisecond))
	inProcess := env.Lambda.Invocations()

	run := func(s *scenario, input map[string]any) (*sfnlocal.Execution, time.Duration) {
		t.Helper()
		input["SecretId"] = s.arn
		t0 := time.Now()
		x, err := env.ExecuteOn(s.ctx, bins.URL, "bin-"+uuid.NewString()[:8], input)
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(t0)
		t.Logf("%s %s in %v; timeline:\n%s", x.Status, x.Error, d.Round(time.Millisecond), x.Timeline())
		return x, d
	}
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer failing.Close()

	const family = "real binaries behind the Lambda Runtime API"
	t.Run("rotation", func(t *testing.T) {
		s := newScenario(t, family)
		x, d := run(s, map[string]any{"HealthCheckUrl": healthy.URL})
		if x.Status != "SUCCEEDED" {
			t.Fatalf("ended %s %s (%s)", x.Status, x.Error, x.Cause)
		}
		if s.current() == s.orig {
			t.Error("AWSCURRENT did not move")
		}
		if err := env.CanLogin(s.ctx, s.arn, "", "AWSCURRENT"); err != nil {
			t.Errorf("the new AWSCURRENT does not log in: %v", err)
		}
		if j := s.journal(); j[len(j)-1] != ledger.Finished || !slices.Contains(j, ledger.Verified) {
			t.Errorf("journal %v, want verified and FINISHED", j)
		}
		s.invariants(x)
		// A second rotation runs on warm processes.
		s.orig = s.current()
		s.baseline()
		x, warm := run(s, map[string]any{})
		if x.Status != "SUCCEEDED" {
			t.Fatalf("second rotation ended %s %s (%s)", x.Status, x.Error, x.Cause)
		}
		s.invariants(x)
		t.Logf("MEASURED real-binary rotation: first (cold processes, with verify) %v, second (warm) %v", d.Round(time.Millisecond), warm.Round(time.Millisecond))
	})

	t.Run("rollback", func(t *testing.T) {
		s := newScenario(t, family)
		x, d := run(s, map[string]any{"HealthCheckUrl": failing.URL})
		if x.Status != "FAILED" || x.Error != faults.NameTestFailed {
			t.Fatalf("ended %s %s (%s), want FAILED %s", x.Status, x.Error, x.Cause, faults.NameTestFailed)
		}
		if s.current() != s.orig {
			t.Errorf("AWSCURRENT is %s, want the original %s back", s.current(), s.orig)
		}
		if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSCURRENT"); err != nil {
			t.Errorf("the original password does not log in after the rollback: %v", err)
		}
		if j := s.journal(); j[len(j)-1] != ledger.RolledBack || !slices.Contains(j, ledger.FinishDone) {
			t.Errorf("journal %v, want finished, then ROLLED_BACK", j)
		}
		s.invariants(x)
		t.Logf("MEASURED real-binary rollback (after finish and a failed bake) %v", d.Round(time.Millisecond))
	})

	// Every Task ran as a binary, none in this process.
	got := bins.Lambda.Invocations()
	for _, fn := range []string{"acquirelease", "createsecret", "setsecret", "testsecret", "finishsecret", "verify", "releaselease", "compensate"} {
		if got["secretsaga-"+fn] == 0 {
			t.Errorf("%s never ran as a binary (%v)", fn, got)
		}
		if n := env.Lambda.Invocations()["secretsaga-"+fn]; n != inProcess["secretsaga-"+fn] {
			t.Errorf("%s ran in process during the binaries' executions", fn)
		}
		t.Logf("%s: %d invocations, %d processes", fn, got["secretsaga-"+fn], bins.Lambda.Started("secretsaga-"+fn))
	}
}

//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/tracing"
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
		checkTraces(t, s.arn, x.Arn)
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

// checkTraces asserts what the built functions sent the X-Ray daemon for
// the rotation execution of the secret arn: per step, a subsegment of the
// function segment Lambda's trace header named; under it, a subsegment
// per Secrets Manager and DynamoDB call (namespace aws) and per database
// operation (namespace remote, sql.url); every one carries the secret's
// and the execution's ARN as annotations. That no password is in any
// datagram is the leak scan's part ("x-ray segments").
func checkTraces(t *testing.T, arn, execution string) {
	t.Helper()
	if bad := env.XRay.Malformed(); len(bad) > 0 {
		t.Errorf("%d datagrams the X-Ray daemon would drop, the first: %.300s", len(bad), bad[0])
	}
	var mine []tracing.Document
	for _, d := range env.XRay.Documents() {
		if d.Annotations["secretsaga_execution_arn"] == execution {
			mine = append(mine, d)
		}
	}
	byID := map[string]tracing.Document{}
	steps := map[string]tracing.Document{}
	for _, d := range mine {
		byID[d.ID] = d
		if s, ok := d.Annotations["secretsaga_step"].(string); ok {
			steps[s] = d
		}
		if d.Annotations["secretsaga_secret_arn"] != arn {
			t.Errorf("%s: secret annotation %v, want %s", d.Name, d.Annotations["secretsaga_secret_arn"], arn)
		}
		if d.Type != "subsegment" || d.ParentID == "" || !strings.HasPrefix(d.TraceID, "1-") || d.EndTime < d.StartTime {
			t.Errorf("%s: not a complete subsegment: %+v", d.Name, d)
		}
	}
	calls := map[string]int{}
	for _, d := range mine {
		if _, ok := d.Annotations["secretsaga_step"]; ok {
			continue
		}
		parent, ok := byID[d.ParentID]
		if !ok || parent.TraceID != d.TraceID {
			t.Errorf("%s: parent %s is not a span of this rotation in its trace", d.Name, d.ParentID)
			continue
		}
		switch d.Namespace {
		case "aws":
			calls[d.Name+"."+fmt.Sprint(d.AWS["operation"])]++
		case "remote":
			if d.SQL["url"] == nil || d.SQL["database_type"] != "postgres" {
				t.Errorf("%s: sql %v", d.Name, d.SQL)
			}
			calls[d.Name]++
		}
	}
	for _, step := range []string{"acquirelease", "createsecret", "setsecret", "testsecret", "finishsecret", "verify", "releaselease"} {
		if _, ok := steps[step]; !ok {
			t.Errorf("no subsegment for %s (have %d documents of this execution)", step, len(mine))
		}
	}
	for _, c := range []string{"Secrets Manager.PutSecretValue", "Secrets Manager.UpdateSecretVersionStage", "DynamoDB.TransactWriteItems", "postgres SetPassword", "postgres Verify"} {
		if calls[c] == 0 {
			t.Errorf("no subsegment for %s; have %v", c, calls)
		}
	}
	t.Logf("MEASURED traces of one rotation: %d subsegments (%d steps), calls %v", len(mine), len(steps), calls)
}

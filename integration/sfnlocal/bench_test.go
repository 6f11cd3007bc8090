//go:build integration

package sfnlocal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/statemachines"
)

// rotationWithMissingFunctions is statemachines/rotation.asl.json with
// every function ARN naming a function the endpoint does not have: the
// first Task fails at once, so an execution costs little beyond what the
// runner does per execution (parsing, validating, setting up the run).
func rotationWithMissingFunctions(t testing.TB) []byte {
	t.Helper()
	subs := map[string]string{}
	for _, p := range statemachines.Placeholders(statemachines.Rotation) {
		subs[p] = fnARN + "missing-" + p
	}
	def, err := sfnlocal.Substitute(statemachines.Rotation, subs)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// BenchmarkExecuteRotationDefinition measures one execution of the
// rotation definition that fails in its first Task: mostly the runner's
// per-execution overhead, which validating the definition once (not on
// every execution) keeps small.
func BenchmarkExecuteRotationDefinition(b *testing.B) {
	e := setup(b)
	def := rotationWithMissingFunctions(b)
	ctx := context.Background()
	for b.Loop() {
		x, err := e.runner.Execute(ctx, sfnlocal.Request{Definition: def, Input: map[string]any{"SecretId": "bench"}, LambdaEndpoint: e.url, RetryIntervalScale: 0.001})
		if err != nil {
			b.Fatal(err)
		}
		if x.Status != "FAILED" || x.Error == "Runner.Error" {
			b.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
		}
	}
}

// TestDefinitionValidatedEveryTimeUntilValid: the runner remembers only
// definitions that validated, so an invalid one is refused on every
// execution, and the same valid definition keeps running (from the cache)
// with its own Retry scale each time.
func TestDefinitionValidatedEveryTimeUntilValid(t *testing.T) {
	e := setup(t)
	for i := range 3 {
		x := e.run(t, `{"StartAt": "Nowhere", "States": {"T": {"Type": "Pass", "End": true}}}`, nil, 0)
		if x.Status != "FAILED" || x.Error != "Runner.Error" || !strings.Contains(x.Cause, "invalid") {
			t.Fatalf("run %d of an invalid definition: %s %s %s", i, x.Status, x.Error, x.Cause)
		}
	}
	def := rotationWithMissingFunctions(t)
	for _, scale := range []float64{0.001, 0.001, 0.002} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		x, err := e.runner.Execute(ctx, sfnlocal.Request{Definition: def, Input: map[string]any{"SecretId": "cached"}, LambdaEndpoint: e.url, RetryIntervalScale: scale})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if x.Status != "FAILED" || x.Error == "Runner.Error" {
			t.Fatalf("scale %v: %s %s %s", scale, x.Status, x.Error, x.Cause)
		}
	}
}

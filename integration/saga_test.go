//go:build integration

// Package integration runs statemachines/rotation.asl.json through the local
// ASL executor against the real stand-ins, and asserts DESIGN.md's
// invariants after every scenario.
package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

var env *local.Env

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var err error
	env, err = local.Start(ctx, local.Options{RetryIntervalScale: 0.01, CaptureStdio: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local stack:", err)
		os.Exit(1)
	}
	for name, d := range env.Startup {
		fmt.Printf("stand-in %-30s ready in %v\n", name, d.Round(time.Millisecond))
	}
	code := m.Run()
	// go test shows a passing package's output only with -v, so the
	// summary can also go to a file (make integration prints it).
	var out io.Writer = os.Stdout
	if path := os.Getenv("SECRETSAGA_REPORT"); path != "" {
		if f, err := os.Create(path); err == nil {
			out = io.MultiWriter(os.Stdout, f)
			defer f.Close() // os.Exit below skips it; writes to an *os.File are not buffered
		}
	}
	printReport(out)
	if finalLeakScan(out) > 0 && code == 0 {
		code = 1
	}
	env.Close()
	os.Exit(code)
}

// scenario is one secret with its own role, so tests cannot see each other.
type scenario struct {
	t       *testing.T
	ctx     context.Context
	arn     string
	role    string
	orig    string // AWSCURRENT version at start
	verdict *verdict
	// before is the secret and its target at the start (see baseline).
	before *local.Baseline
}

// newScenario counts t as a cell of the report's family and gives it a
// fresh secret and role.
func newScenario(t *testing.T, family string) *scenario {
	t.Helper()
	return newScenarioWith(t, family, "role_", env.PostgresSecret)
}

// newScenarioWith is newScenario with a fixture of choice: create makes
// the secret (named name) for a new user (role, which starts with prefix).
func newScenarioWith(t *testing.T, family, prefix string, create func(ctx context.Context, name, role string) (string, error)) *scenario {
	t.Helper()
	v := cell(t, family)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	role := prefix + id
	arn, err := create(ctx, "it/"+secretName(t.Name())+"/"+id, role)
	if err != nil {
		t.Fatal(err)
	}
	trackSecret(arn)
	s := &scenario{t: t, ctx: ctx, arn: arn, role: role, verdict: v}
	s.orig = s.current()
	s.baseline()
	return s
}

// baseline records the secret and its target as the scenario starts; a
// test that spoils the setup after newScenario records it again.
func (s *scenario) baseline() {
	s.t.Helper()
	b, err := env.Baseline(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	s.before = b
}

// secretName keeps the characters Secrets Manager allows in a name.
func secretName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r == '/' || r == '_' || r == '+' || r == '=' || r == '.' || r == '@' || r == '-' ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
			return r
		}
		return '_'
	}, s)
}

func (s *scenario) current() string {
	s.t.Helper()
	st, err := env.Stages(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	for id, stages := range st {
		if slices.Contains(stages, "AWSCURRENT") {
			return id
		}
	}
	return ""
}

func (s *scenario) run(input map[string]any) *sfnlocal.Execution {
	s.t.Helper()
	input["SecretId"] = s.arn
	x, err := env.Execute(s.ctx, "x-"+uuid.NewString()[:8], input)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("timeline:\n%s", x.Timeline())
	return x
}

func (s *scenario) invariants(execs ...*sfnlocal.Execution) {
	s.t.Helper()
	v := env.CheckAgainst(s.ctx, s.before, s.arn, execs...)
	for _, msg := range v.Violations {
		s.verdict.violations++
		s.t.Error(msg)
	}
	if v.RefusedUnchanged {
		s.verdict.refusedUnchanged = true
		s.t.Log("AWSCURRENT did not log in before the scenario; the product refused and left the secret and the target unchanged")
	}
}

func (s *scenario) journal() []ledger.State {
	s.t.Helper()
	hist, err := env.Ledger.History(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	var states []ledger.State
	for _, r := range hist {
		states = append(states, r.State)
	}
	return states
}

func withFaults(t *testing.T, rules ...faultinject.Rule) {
	env.Faults.Reset()
	for _, r := range rules {
		env.Faults.Add(r)
	}
	t.Cleanup(env.Faults.Reset)
}

func apiError(code string) error { return &smithy.GenericAPIError{Code: code, Message: "injected"} }

// The suite shares one fault injector, so its tests run one at a time.

func TestRotationSucceeds(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "saga: success")
	x := s.run(map[string]any{})
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s: %s %s", x.Status, x.Error, x.Cause)
	}
	cur := s.current()
	if cur == s.orig {
		t.Fatal("AWSCURRENT did not move")
	}
	if err := env.CanLogin(s.ctx, s.arn, cur, "AWSCURRENT"); err != nil {
		t.Fatalf("new AWSCURRENT does not log in: %v", err)
	}
	if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSPREVIOUS"); err == nil {
		t.Fatal("the old password (now AWSPREVIOUS) still logs in")
	}
	want := []ledger.State{ledger.Started, ledger.Created, ledger.SetStarted, ledger.SetDone, ledger.Tested,
		ledger.FinishStarted, ledger.FinishDone, ledger.Finished}
	if got := s.journal(); !slices.Equal(got, want) {
		t.Fatalf("journal = %v, want %v", got, want)
	}
	t.Logf("state transitions: %d", x.Transitions())
	s.invariants(x)
}

func TestRotationWithVerify(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "saga: success")
	x := s.run(map[string]any{"Verify": true})
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s: %s %s", x.Status, x.Error, x.Cause)
	}
	if j := s.journal(); !slices.Contains(j, ledger.Verified) {
		t.Fatalf("journal %v has no VERIFIED", j)
	}
	s.invariants(x)
}

func TestFailureAtEachStepCompensates(t *testing.T) {
	tests := []struct {
		name    string
		rule    faultinject.Rule
		wantErr string
	}{
		{"create: PutSecretValue refused", faultinject.Rule{Function: "createsecret", Call: "Secrets Manager.PutSecretValue", Nth: 1, Phase: faultinject.Before, Err: apiError("AccessDeniedException")}, "InputError"},
		{"create: PutSecretValue applied, answer lost", faultinject.Rule{Function: "createsecret", Call: "Secrets Manager.PutSecretValue", Nth: 1, Phase: faultinject.After, Err: apiError("AccessDeniedException")}, "InputError"},
		{"set: refused before effect", faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Err: target.ErrInvalid}, "InputError"},
		{"set: password changed, then error", faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.After, Err: target.ErrInvalid}, "InputError"},
		{"test: new password rejected", faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed}, "TestFailedError"},
		{"finish: stage move refused", faultinject.Rule{Function: "finishsecret", Call: "Secrets Manager.UpdateSecretVersionStage", Nth: 1, Phase: faultinject.Before, Err: apiError("AccessDeniedException")}, "InputError"},
		{"finish: AWSCURRENT moved, answer lost", faultinject.Rule{Function: "finishsecret", Call: "Secrets Manager.UpdateSecretVersionStage", Nth: 1, Phase: faultinject.After, Err: apiError("AccessDeniedException")}, "InputError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t, tt.rule)
			s := newScenario(t, "saga: failure at a step")
			x := s.run(map[string]any{})
			if x.Status != "FAILED" || x.Error != tt.wantErr {
				t.Fatalf("status %s error %s (%s), want FAILED %s", x.Status, x.Error, x.Cause, tt.wantErr)
			}
			if env.Faults.Fired() != 1 {
				t.Fatalf("fault fired %d times", env.Faults.Fired())
			}
			if cur := s.current(); cur != s.orig {
				t.Fatalf("AWSCURRENT is %s, want the original %s", cur, s.orig)
			}
			if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSCURRENT"); err != nil {
				t.Fatalf("the original password no longer logs in: %v", err)
			}
			j := s.journal()
			if j[len(j)-1] != ledger.RolledBack || !slices.Contains(j, ledger.CompensateStarted) {
				t.Fatalf("journal = %v, want compensation ending ROLLED_BACK", j)
			}
			s.invariants(x)
		})
	}
}

func TestRetryableErrorSucceedsOnRetry(t *testing.T) {
	withFaults(t, faultinject.Rule{Function: "setsecret", Call: "target.SetPassword", Nth: 1, Phase: faultinject.Before, Err: target.ErrUnreachable},
		faultinject.Rule{Function: "createsecret", Call: "Secrets Manager.PutSecretValue", Nth: 1, Phase: faultinject.Before, Err: apiError("ThrottlingException")})
	s := newScenario(t, "saga: retry")
	x := s.run(map[string]any{})
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s: %s %s", x.Status, x.Error, x.Cause)
	}
	retries := 0
	for _, ev := range x.Events {
		if ev.Type == "StateRetried" {
			retries++
		}
	}
	if retries != 2 {
		t.Fatalf("retries = %d, want 2\n%s", retries, x.Timeline())
	}
	s.invariants(x)
}

func TestConflictWhenLeaseHeld(t *testing.T) {
	withFaults(t)
	s := newScenario(t, "concurrency")
	other := "arn:aws:states:us-east-1:000000000000:execution:rotation:someone-else"
	lease, err := env.Ledger.Acquire(s.ctx, ledger.AcquireRequest{Secret: s.arn, Execution: other, Token: uuid.NewString(), Actor: "test", PreviousVersion: s.orig})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := env.Stages(s.ctx, s.arn)
	x := s.run(map[string]any{})
	if x.Status != "FAILED" || x.Error != "ConflictError" {
		t.Fatalf("status %s error %s, want FAILED ConflictError", x.Status, x.Error)
	}
	after, _ := env.Stages(s.ctx, s.arn)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("versions changed: %v → %v", before, after)
	}
	got, _, _ := env.Ledger.Get(s.ctx, s.arn)
	if got.Holder != other || got.Fencing != lease.Fencing {
		t.Fatalf("lease now %+v", got)
	}
	// The other execution ends; its lease is released and the invariants hold.
	if err := env.Ledger.Append(s.ctx, &lease, ledger.Record{State: ledger.RolledBack, Actor: "test"}, ledger.Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	s.invariants(x)
}

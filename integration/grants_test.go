//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/functions"
)

// actionsGolden is what TestRecordedActions records: per function, the IAM
// actions of the calls it made. The infra module's TestGrantsMatchRecording
// (infra/rotation, offline) reads it and fails on any grant beyond it.
const actionsGolden = "../infra/rotation/testdata/recorded-actions.json"

// updateActionsEnv set to 1 makes TestRecordedActions write the golden
// instead of comparing with it; regenerateActions is the one command.
const (
	updateActionsEnv  = "SECRETSAGA_UPDATE_ACTIONS"
	regenerateActions = updateActionsEnv + "=1 go test -tags integration -count=1 -run '^TestRecordedActions$' ./integration/"
)

// actionScenarios are the rotations whose calls make up the recording: every
// path a deployed function can take that these tests reach. Each is an
// existing test, run as it is (faults, assertions and invariants included).
var actionScenarios = []struct {
	name string
	run  func(*testing.T)
}{
	{"engines: success and rollback, single and alternating users", TestEngines},
	{"success with verify", TestRotationWithVerify},
	{"rollback at each step", TestFailureAtEachStepCompensates},
	{"retry", TestRetryableErrorSucceedsOnRetry},
	{"lost reply: the retried step reads the lease again", TestLostReplyRereadsLease},
	{"operator rollback (create labels its version again)", TestOperatorRollback},
	{"conflict", TestConflictWhenLeaseHeld},
	{"login lock taken over from a dead rotation", TestLoginLockTakenOverFromADeadRotation},
	{"abandon: foreign AWSCURRENT move", TestForeignMoveAbandons},
	{"refused starts: bad input", TestBadInput},
	{"refused starts: unclear inputs", TestPoint5Errors},
	{"dead rotation recovered", TestRecoveryOfADeadRotation},
	{"recovery refuses to guess", TestRecoveryRefusesToGuess},
	{"repair after COMPENSATION_FAILED", TestOutageThroughCompensation},
	{"secret deleted mid-rotation, repair", TestDeletedMidRotation},
	{"bake with alarms", TestBakeAlarms},
	{"fleet", TestFleetRotation},
	{"fleet: failed children publish", TestFleetFailedChildPublishes},
	{"native rotation", TestRotateSecretNative},
	{"access audit: reads, a denied read, a rotation", TestAccessAudit},
	{"short-lived logins: issue, wait, revoke per engine, through the state machine", TestEphemeralSaga},
	{"short-lived logins: revocation fails, alert, sweeper", TestEphemeralSagaRevocationFails},
	{"short-lived logins: lifecycle and the sweeper's cross-check", TestEphemeralLifecycle},
	{"short-lived logins: a fault at each call of issue and revoke", TestEphemeralFaultAtEveryCall},
}

// recordingActions is set while TestRecordedActions runs its scenarios:
// the report (cell) does not count their cells twice.
var recordingActions atomic.Bool

// iamPrefix maps an SDK service ID (what faultinject records) to its IAM
// service prefix.
var iamPrefix = map[string]string{
	"Secrets Manager": "secretsmanager",
	"DynamoDB":        "dynamodb",
	"EventBridge":     "events",
	"CloudWatch":      "cloudwatch",
	"SFN":             "states",
}

// transactionItemAction is the IAM action that authorizes one item of a
// DynamoDB transaction: TransactWriteItems and TransactGetItems are no IAM
// actions of their own, each item is governed by its underlying operation
// ("Using IAM with DynamoDB transactions", DynamoDB Developer Guide).
var transactionItemAction = map[string]string{
	"Put":            "dynamodb:PutItem",
	"Update":         "dynamodb:UpdateItem",
	"Delete":         "dynamodb:DeleteItem",
	"ConditionCheck": "dynamodb:ConditionCheckItem",
	"Get":            "dynamodb:GetItem",
}

// iamActions are the IAM actions one recorded call needs, or an error for
// a call the mapping does not know (a new service: add its prefix).
func iamActions(c faultinject.Call) ([]string, error) {
	service, op, ok := strings.Cut(c.Name, ".")
	if !ok {
		return nil, fmt.Errorf("call %q: no service", c.Name)
	}
	prefix, ok := iamPrefix[service]
	if !ok {
		return nil, fmt.Errorf("call %s by %s: no IAM prefix for service %q (add it to iamPrefix)", c.Name, c.Function, service)
	}
	if prefix == "dynamodb" && (op == "TransactWriteItems" || op == "TransactGetItems") {
		var out []string
		for _, it := range c.Items {
			a, ok := transactionItemAction[it]
			if !ok {
				return nil, fmt.Errorf("call %s by %s: transaction item %q", c.Name, c.Function, it)
			}
			out = append(out, a)
		}
		return out, nil
	}
	return []string{prefix + ":" + op}, nil
}

// actionRecorder collects, per function, the IAM actions of its calls.
type actionRecorder struct {
	mu      sync.Mutex
	actions map[string]map[string]bool
	errs    []error
	other   map[string]int // calls by no deployed function (a test's own)
}

func (r *actionRecorder) add(c faultinject.Call) {
	if strings.HasPrefix(c.Name, "target.") {
		return // the database, not AWS
	}
	acts, err := iamActions(c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	if _, ok := functions.Get(c.Function); !ok {
		r.other[c.Function+" "+c.Name]++
		return
	}
	for _, a := range acts {
		r.actions[c.Function][a] = true
	}
}

// golden renders the recording: one JSON object, every function (one that
// made no AWS call has an empty list), actions sorted, one per line.
func (r *actionRecorder) golden() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for fn, set := range r.actions {
		out[fn] = append([]string{}, slices.Sorted(maps.Keys(set))...) // [] rather than null
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// TestRecordedActions runs actionScenarios and records, per function, the
// IAM actions of every AWS call it made. It fails when that differs from
// actionsGolden (run regenerateActions after a change to the calls a
// function makes, then `make infra-test` tells which grants to change).
// With a -run filter that leaves out a scenario, or a failed scenario, the
// recording is incomplete and is neither compared nor written.
func TestRecordedActions(t *testing.T) {
	rec := &actionRecorder{actions: map[string]map[string]bool{}, other: map[string]int{}}
	for _, fn := range functions.Names() {
		rec.actions[fn] = map[string]bool{}
	}
	stop := env.Faults.Observe(rec.add)
	defer stop()
	recordingActions.Store(true)
	defer recordingActions.Store(false)

	complete := true
	for _, sc := range actionScenarios {
		ran := false
		ok := t.Run(sc.name, func(t *testing.T) {
			ran = true
			sc.run(t)
		})
		if !ran || !ok {
			complete = false
		}
	}
	stop()
	recordingActions.Store(false)
	if len(rec.errs) > 0 {
		t.Fatalf("calls the recording cannot map to IAM actions:\n%v", rec.errs)
	}
	if len(rec.other) > 0 {
		t.Logf("calls by no deployed function (the tests' own), not recorded: %v", rec.other)
	}
	if !complete {
		t.Skipf("a scenario was filtered out or failed: the recording is incomplete, not compared with %s", actionsGolden)
	}
	got := rec.golden()
	if os.Getenv(updateActionsEnv) == "1" {
		if err := os.WriteFile(actionsGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", actionsGolden)
		return
	}
	want, err := os.ReadFile(actionsGolden)
	if err != nil {
		t.Fatalf("%v\nregenerate it with:\n  %s", err, regenerateActions)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the functions' calls changed: %s is out of date.\n%s\nregenerate it with:\n  %s\nthen run `make infra-test`: it fails on every grant the recording no longer needs or does not have",
			actionsGolden, actionsDiff(want, got), regenerateActions)
	}
}

// actionsDiff lists, per function, the actions recorded now and not in the
// golden (+) and those in the golden no longer recorded (-).
func actionsDiff(want, got []byte) string {
	var w, g map[string][]string
	if err := json.Unmarshal(want, &w); err != nil {
		return fmt.Sprintf("(the golden is not a JSON object of lists: %v)", err)
	}
	_ = json.Unmarshal(got, &g)
	var b strings.Builder
	for _, fn := range slices.Sorted(maps.Keys(mergeKeys(w, g))) {
		for _, a := range g[fn] {
			if !slices.Contains(w[fn], a) {
				fmt.Fprintf(&b, "  + %s %s (called, not in the golden)\n", fn, a)
			}
		}
		for _, a := range w[fn] {
			if !slices.Contains(g[fn], a) {
				fmt.Fprintf(&b, "  - %s %s (in the golden, no longer called)\n", fn, a)
			}
		}
	}
	if b.Len() == 0 {
		return "  (same actions, different layout)"
	}
	return strings.TrimRight(b.String(), "\n")
}

func mergeKeys(ms ...map[string][]string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

// TestLostReplyRereadsLease: a forward step whose journal write took effect
// but whose reply was lost is retried by the state machine with the lease
// the previous step left, now stale: the retry reads the lease again
// (GetItem) and the rotation succeeds. It puts testsecret's and verify's
// re-read in the recorded scenarios.
func TestLostReplyRereadsLease(t *testing.T) {
	for _, fn := range []string{"testsecret", "verify"} {
		t.Run(fn, func(t *testing.T) {
			withFaults(t, faultinject.Rule{Function: fn, Call: "DynamoDB.TransactWriteItems", Nth: 1, Phase: faultinject.After, Err: lostReply("DynamoDB.TransactWriteItems")})
			s := newScenario(t, "saga: retry")
			x := s.run(map[string]any{"Verify": fn == "verify"})
			if x.Status != "SUCCEEDED" {
				t.Fatalf("ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
			}
			if env.Faults.Fired() != 1 {
				t.Fatalf("the lost reply fired %d times", env.Faults.Fired())
			}
			reread := false
			for _, c := range env.Faults.Calls() {
				if c.Function == fn && c.Name == "DynamoDB.GetItem" {
					reread = true
				}
			}
			if !reread {
				t.Errorf("%s's retry did not read the lease again", fn)
			}
			s.invariants(x)
		})
	}
}

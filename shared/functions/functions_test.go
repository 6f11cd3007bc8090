package functions_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/statemachines"
)

// Lambda's limits on a function's configuration.
const (
	lambdaMaxTimeout = 900 * time.Second
	lambdaMinMemory  = 128
	lambdaMaxMemory  = 10240
)

func TestEveryFunctionHasSettings(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join("..", "..", "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dirs {
		if d.IsDir() {
			names = append(names, d.Name())
		}
	}
	if !slices.Equal(names, functions.Names()) {
		t.Fatalf("functions/ holds %v, the table %v", names, functions.Names())
	}
	for _, n := range names {
		s := functions.MustGet(n)
		if s.Timeout < time.Second || s.Timeout > lambdaMaxTimeout || s.Timeout%time.Second != 0 {
			t.Errorf("%s: timeout %v is not whole seconds between 1 s and Lambda's %v", n, s.Timeout, lambdaMaxTimeout)
		}
		if s.MemoryMB < lambdaMinMemory || s.MemoryMB > lambdaMaxMemory {
			t.Errorf("%s: memory %d MB is outside Lambda's %d to %d MB", n, s.MemoryMB, lambdaMinMemory, lambdaMaxMemory)
		}
	}
}

// VerifyChecksBound itemises what the verify function does besides waiting
// out the bake (shared/rotation's Verify, verify and bake), each bounded by
// the timeout the code sets, or, for an AWS call, by what a healthy
// dependency answers in with the SDK's retries.
func verifyChecksBound() time.Duration {
	const (
		sdkCall     = 5 * time.Second // one AWS API call, retries included, when the service is healthy
		pollLate    = 2 * time.Second // the bake polls every 2 s: its last check starts at most this late
		healthCheck = 5 * time.Second // the health check's http.Client timeout
		login       = 6 * time.Second // an engine's ConnectTimeout (5 s) plus the second its context adds
	)
	return sdkCall + // DescribeSecret before the bake
		pollLate + healthCheck + sdkCall + // the last health and alarm checks
		sdkCall + sdkCall + login + sdkCall // probe: the lease, the secret value, the login, the journal
}

// TestVerifyTimeoutHoldsTheLongestBake fails if an accepted bake cannot
// finish inside the verify function's timeout: it would end in
// Sandbox.Timedout, be retried, and roll back a healthy rotation.
func TestVerifyTimeoutHoldsTheLongestBake(t *testing.T) {
	longest := time.Duration(rotation.MaxBakeSeconds) * time.Second
	checks := verifyChecksBound()
	if checks > functions.VerifyChecks {
		t.Errorf("verify's checks take up to %v, more than functions.VerifyChecks (%v)", checks, functions.VerifyChecks)
	}
	need := longest + checks
	got := functions.MustGet("verify").Timeout
	// At least a quarter more than the checks need, for a slow moment.
	if margin := got - need; margin < checks/4 {
		t.Errorf("verify's timeout %v holds the longest accepted bake (%v, rotation.MaxBakeSeconds) and its checks (%v) with %v to spare; want at least %v",
			got, longest, checks, margin, checks/4)
	}
	if got > lambdaMaxTimeout {
		t.Errorf("verify's timeout %v is beyond Lambda's %v: lower MaxBakeSeconds", got, lambdaMaxTimeout)
	}
}

type aslState struct {
	Type           string
	Resource       string
	TimeoutSeconds int
	ItemProcessor  *aslMachine
	Iterator       *aslMachine
	Branches       []aslMachine
}

type aslMachine struct {
	TimeoutSeconds int
	States         map[string]aslState
}

// tasks returns every Task state, nested ones included, by path.
func (m aslMachine) tasks(prefix string, into map[string]aslState) {
	for name, s := range m.States {
		switch s.Type {
		case "Task":
			into[prefix+name] = s
		case "Map":
			for _, p := range []*aslMachine{s.ItemProcessor, s.Iterator} {
				if p != nil {
					p.tasks(prefix+name+"/", into)
				}
			}
		case "Parallel":
			for _, b := range s.Branches {
				b.tasks(prefix+name+"/", into)
			}
		}
	}
}

// TestStateTimeoutsHoldFunctionTimeouts: a Task's TimeoutSeconds must not
// be shorter than its function's timeout, or Step Functions gives up
// (States.Timeout) and retries while the first invocation still runs; and
// the execution's TimeoutSeconds must hold one full attempt of every Task,
// or a slow but healthy rotation times out without compensating.
func TestStateTimeoutsHoldFunctionTimeouts(t *testing.T) {
	for file, def := range map[string][]byte{"rotation.asl.json": statemachines.Rotation, "fleet.asl.json": statemachines.Fleet, "ephemeral.asl.json": statemachines.Ephemeral} {
		var m aslMachine
		if err := json.Unmarshal(def, &m); err != nil {
			t.Fatal(err)
		}
		tasks := map[string]aslState{}
		m.tasks("", tasks)
		if len(tasks) == 0 {
			t.Fatalf("%s: no Task states", file)
		}
		var sum time.Duration
		for path, s := range tasks {
			ph := statemachines.Placeholders([]byte(s.Resource))
			if len(ph) != 1 {
				t.Errorf("%s: %s: resource %q names no function placeholder", file, path, s.Resource)
				continue
			}
			fn, ok := functions.ByPlaceholder(ph[0])
			if !ok {
				t.Errorf("%s: %s: no function fills ${%s}", file, path, ph[0])
				continue
			}
			timeout := functions.MustGet(fn).Timeout
			sum += timeout
			if st := time.Duration(s.TimeoutSeconds) * time.Second; st < timeout {
				t.Errorf("%s: %s: TimeoutSeconds %v is shorter than %s's timeout %v", file, path, st, fn, timeout)
			}
		}
		if total := time.Duration(m.TimeoutSeconds) * time.Second; total < sum {
			t.Errorf("%s: the execution's TimeoutSeconds %v cannot hold one attempt of every Task (%v)", file, total, sum)
		}
	}
}

func TestByPlaceholder(t *testing.T) {
	for _, p := range slices.Concat(statemachines.Placeholders(statemachines.Rotation), statemachines.Placeholders(statemachines.Fleet), statemachines.Placeholders(statemachines.Ephemeral)) {
		if p == "LedgerTableName" {
			continue
		}
		if _, ok := functions.ByPlaceholder(p); !ok {
			t.Errorf("no function for ${%s}", p)
		}
	}
	if n, ok := functions.ByPlaceholder(""); ok {
		t.Errorf("the empty placeholder names %s", n)
	}
}

// TestEnvMatchesWhatMainReads: each function's Env is what the
// shared/lambdaenv constructor its main.go calls reads from the environment, so the CDK app
// (which sets Env) and the local stack's binaries (likewise) give every
// function what it needs and nothing else.
func TestEnvMatchesWhatMainReads(t *testing.T) {
	reads := map[string]struct{ required, optional []string }{
		"lambdaenv.Saga": {required: []string{functions.EnvLedgerTable, functions.EnvEventBus, functions.EnvLedgerRetentionDays},
			optional: []string{functions.EnvBakeAlarmNames, functions.EnvRepairBackoff, functions.EnvRepairMaxBackoff, functions.EnvRepairAlertAfter}},
		"lambdaenv.Fleet":       {},
		"lambdaenv.FleetReport": {required: []string{functions.EnvEventBus}},
		"lambdaenv.Native":      {required: []string{functions.EnvStateMachineArn}},
		"lambdaenv.Ephemeral":   {required: []string{functions.EnvLedgerTable, functions.EnvEventBus, functions.EnvLedgerRetentionDays}},
		// accessaudit does not link shared/config (its size); its own.
		"access.FromEnv": {required: []string{functions.EnvLedgerTable, functions.EnvEventBus, functions.EnvLedgerRetentionDays,
			functions.EnvRotationGroup, functions.EnvTrustedPrincipals}},
	}
	for _, n := range functions.Names() {
		src, err := os.ReadFile(filepath.Join("..", "..", "functions", n, "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		env := functions.MustGet(n).Env
		found := 0
		for call, r := range reads {
			if !strings.Contains(string(src), call+"(") {
				continue
			}
			found++
			for _, v := range r.required {
				if !slices.Contains(env, v) {
					t.Errorf("%s: main.go calls %s, which needs %s; Env is %v", n, call, v, env)
				}
			}
			for _, v := range env {
				if !slices.Contains(r.required, v) && !slices.Contains(r.optional, v) {
					t.Errorf("%s: Env lists %s, which %s does not read", n, v, call)
				}
				if functions.OptionalEnv(v) == slices.Contains(r.required, v) {
					t.Errorf("%s: %s optional is %v", n, v, functions.OptionalEnv(v))
				}
			}
		}
		if found != 1 {
			t.Errorf("%s: main.go calls %d of the config constructors %v", n, found, reads)
		}
	}
	// The bake's alarms go to the functions that validate and run the bake.
	for _, n := range []string{"acquirelease", "verify"} {
		if !slices.Contains(functions.MustGet(n).Env, functions.EnvBakeAlarmNames) {
			t.Errorf("%s does not get %s", n, functions.EnvBakeAlarmNames)
		}
	}
	// A caller's copy cannot change the table.
	functions.MustGet("verify").Env[0] = "CHANGED"
	if functions.MustGet("verify").Env[0] == "CHANGED" {
		t.Error("MustGet returns the table's own slice")
	}
}

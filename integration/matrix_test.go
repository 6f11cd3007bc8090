//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/shared/target"
)

// site is one external call a rotation makes: the Nth call named Call made
// by Function.
type site struct {
	Function, Call string
	Nth            int
}

func (s site) String() string { return fmt.Sprintf("%s %s #%d", s.Function, s.Call, s.Nth) }

// discoverSites records the external calls of one successful rotation, in
// order. New calls in the product are thereby covered without editing the
// matrix.
func discoverSites(t *testing.T) []site {
	t.Helper()
	var sites []site
	t.Run("recording", func(t *testing.T) {
		withFaults(t)
		s := newScenario(t, "fault matrix: recording")
		x := s.run(map[string]any{})
		if x.Status != "SUCCEEDED" {
			t.Fatalf("the recording rotation failed: %s %s", x.Status, x.Error)
		}
		sites = sitesOf(env.Faults.Calls(), "")
		s.invariants(x)
	})
	if len(sites) == 0 {
		t.FailNow()
	}
	return sites
}

func sitesOf(calls []faultinject.Call, function string) []site {
	seen := map[string]int{}
	var sites []site
	for _, c := range calls {
		if function != "" && c.Function != function {
			continue
		}
		k := c.Function + "\x00" + c.Name
		seen[k]++
		sites = append(sites, site{c.Function, c.Name, seen[k]})
	}
	return sites
}

// hardError is a fault retrying cannot cure: the step's work must be undone.
func hardError(call string) error {
	if strings.HasPrefix(call, "target.") {
		return target.ErrInvalid
	}
	return apiError("AccessDeniedException")
}

// lostReply is what a caller sees when the call took effect but its answer
// never came back: a timeout, which is worth retrying.
func lostReply(call string) error {
	if strings.HasPrefix(call, "target.") {
		return target.ErrUnreachable
	}
	return apiError("RequestTimeout")
}

// TestFaultMatrix: for every call site of a successful rotation, (a) a
// failure before the call takes effect, (b) a lost reply after it took
// effect, (c) a crash of the handler right after it, and (d) for every cell
// that compensated, a second fault at each call of the compensation. Every
// end state must satisfy the invariants; (b) and (c) must still rotate,
// because every step is idempotent.
func TestFaultMatrix(t *testing.T) {
	sites := discoverSites(t)
	t.Logf("%d call sites in a successful rotation:", len(sites))
	for _, s := range sites {
		t.Logf("  %s", s)
	}
	for _, st := range sites {
		st := st
		var compCalls []site
		t.Run("before/"+st.String(), func(t *testing.T) {
			compCalls = matrixCell(t, "fault matrix: error before call", faultinject.Rule{
				Function: st.Function, Call: st.Call, Nth: st.Nth, Phase: faultinject.Before, Err: hardError(st.Call),
			}, "")
		})
		// Double faults: the same first fault, and a second one at each
		// distinct call the compensation made.
		for _, cs := range distinctCalls(compCalls) {
			t.Run("double/"+st.String()+"/then compensation fails at "+cs.String(), func(t *testing.T) {
				matrixCell(t, "double fault: compensation fails too", faultinject.Rule{
					Function: st.Function, Call: st.Call, Nth: st.Nth, Phase: faultinject.Before, Err: hardError(st.Call),
				}, "", faultinject.Rule{Function: cs.Function, Call: cs.Call, Nth: cs.Nth, Phase: faultinject.Before, Err: hardError(cs.Call)})
			})
		}
		t.Run("after/"+st.String(), func(t *testing.T) {
			matrixCell(t, "fault matrix: reply lost after call", faultinject.Rule{
				Function: st.Function, Call: st.Call, Nth: st.Nth, Phase: faultinject.After, Err: lostReply(st.Call),
			}, "SUCCEEDED")
		})
		t.Run("crash/"+st.String(), func(t *testing.T) {
			matrixCell(t, "fault matrix: crash after call", faultinject.Rule{
				Function: st.Function, Call: st.Call, Nth: st.Nth, Phase: faultinject.Crash,
			}, "SUCCEEDED")
		})
	}
}

// distinctCalls keeps the first occurrence of each call name of a function.
func distinctCalls(sites []site) []site {
	var out []site
	for _, s := range sites {
		if s.Nth == 1 {
			out = append(out, s)
		}
	}
	return out
}

// matrixCell runs one rotation under rules and checks its end. It returns
// the call sites of the compensation, if one ran.
func matrixCell(t *testing.T, family string, first faultinject.Rule, wantStatus string, more ...faultinject.Rule) []site {
	t.Helper()
	withFaults(t, append([]faultinject.Rule{first}, more...)...)
	s := newScenario(t, family)
	x := s.run(map[string]any{})
	calls := env.Faults.Calls()
	if fired := env.Faults.Fired(); fired != 1+len(more) {
		t.Errorf("%d faults fired, want %d: the rotation no longer makes this call\n%s", fired, 1+len(more), x.Timeline())
	}
	switch {
	case wantStatus != "" && x.Status != wantStatus:
		t.Errorf("status %s (%s: %s), want %s", x.Status, x.Error, x.Cause, wantStatus)
	case x.Status == "FAILED" && !slices.Contains(faults.Names, x.Error):
		t.Errorf("failed with %q, which is not a named error of shared/faults", x.Error)
	case x.Status != "FAILED" && x.Status != "SUCCEEDED":
		t.Errorf("execution ended %s", x.Status)
	}
	s.checkOutcome(x)
	s.invariants(x)
	return sitesOf(calls, "compensate")
}

// checkOutcome asserts the transaction property: a rotation either took
// effect (the new version is AWSCURRENT) or left the secret as it was.
func (s *scenario) checkOutcome(x *sfnlocal.Execution) {
	s.t.Helper()
	cur := s.current()
	lease, _, err := env.Ledger.Get(s.ctx, s.arn)
	if err != nil {
		s.t.Fatal(err)
	}
	switch {
	case x.Status == "SUCCEEDED" && cur == s.orig:
		s.t.Errorf("execution succeeded but AWSCURRENT did not move")
	case x.Status == "FAILED" && lease.State == ledger.CompensationFailed:
		// The alerted unknown state: CheckInvariants asserts the lease and
		// the alert.
	case x.Status == "FAILED" && cur != s.orig:
		s.t.Errorf("execution failed (%s) but AWSCURRENT moved from %s to %s; journal %v", x.Error, s.orig, cur, s.journal())
	}
}

// TestConcurrentStarts: 50 executions start on one secret at once. Exactly
// one rotates; the others end with ConflictError and change nothing.
func TestConcurrentStarts(t *testing.T) {
	const n = 50
	// Hold the winner inside its test step long enough that every other
	// start meets its lease, not its released one.
	ended := make(chan struct{}, n)
	withFaults(t, faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before,
		Hook: func(ctx context.Context) error {
			for range n - 1 {
				select {
				case <-ended:
				case <-time.After(30 * time.Second):
					return nil // the assertions below will say what went wrong
				}
			}
			return nil
		}})
	s := newScenario(t, "concurrency")
	var wg sync.WaitGroup
	xs := make([]*sfnlocal.Execution, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			xs[i], errs[i] = env.Execute(s.ctx, fmt.Sprintf("concurrent-%d-%s", i, uuid.NewString()[:8]), map[string]any{"SecretId": s.arn})
			ended <- struct{}{}
		}()
	}
	wg.Wait()
	succeeded, conflicts := 0, 0
	for i, x := range xs {
		if errs[i] != nil {
			t.Fatalf("execution %d: %v", i, errs[i])
		}
		switch {
		case x.Status == "SUCCEEDED":
			succeeded++
		case x.Status == "FAILED" && x.Error == faults.NameConflict:
			conflicts++
		default:
			t.Errorf("execution %d ended %s %s: %s", i, x.Status, x.Error, x.Cause)
		}
	}
	if succeeded != 1 || conflicts != n-1 {
		t.Errorf("%d succeeded and %d hit ConflictError; want 1 and %d", succeeded, conflicts, n-1)
	}
	st, err := env.Stages(s.ctx, s.arn)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 {
		t.Errorf("the secret has %d versions, want 2 (the original and one rotation): %v", len(st), st)
	}
	hist, _ := env.Ledger.History(s.ctx, s.arn)
	fencings := map[int64]bool{}
	for _, r := range hist {
		fencings[r.Fencing] = true
	}
	if len(fencings) != 1 {
		t.Errorf("the journal holds %d rotations, want 1", len(fencings))
	}
	s.invariants(xs...)
}

// TestZombieIsFenced: an execution whose lease expired and was taken over
// (a "zombie", e.g. paused by a long GC or a stuck network) cannot write the
// ledger or move a label afterwards. finish reads neither the lease (it has
// the one test left) nor the stages before its write-ahead journal write,
// which is conditioned on the fencing token: taken over before that write,
// or before test's, the write is refused, so the stage move never happens.
// (A takeover between finish's write and its move cannot happen: that
// write extended the lease by far more than a step may run.)
func TestZombieIsFenced(t *testing.T) {
	for _, at := range []struct {
		name  string
		fn    string
		call  string
		phase faultinject.Phase
	}{
		{"taken over before finish's write-ahead record", "finishsecret", "DynamoDB.TransactWriteItems", faultinject.Before},
		{"taken over before test's record", "testsecret", "DynamoDB.TransactWriteItems", faultinject.Before},
	} {
		t.Run(at.name, func(t *testing.T) { testZombieIsFenced(t, at.fn, at.call, at.phase) })
	}
}

func testZombieIsFenced(t *testing.T, fn, call string, phase faultinject.Phase) {
	var s *scenario
	var taken ledger.Lease
	var before []ledger.Record
	withFaults(t, faultinject.Rule{Function: fn, Call: call, Nth: 1, Phase: phase,
		Hook: func(ctx context.Context) error {
			// Another party, whose clock says the lease expired, takes it.
			later := ledger.New(env.DDB, env.Ledger.Table(), ledger.Options{Now: func() time.Time { return time.Now().Add(24 * time.Hour) }})
			cur, _, err := later.Get(ctx, s.arn)
			if err != nil {
				return err
			}
			if before, err = later.History(ctx, s.arn); err != nil {
				return err
			}
			taken, err = later.Acquire(ctx, ledger.AcquireRequest{Secret: s.arn, Execution: "arn:aws:states:us-east-1:000000000000:execution:rotation:taker",
				Token: uuid.NewString(), Actor: "test", PreviousVersion: cur.PreviousVersion})
			return err
		}})
	s = newScenario(t, "concurrency")
	x := s.run(map[string]any{})
	if x.Status != "FAILED" || x.Error != faults.NameConflict {
		t.Errorf("zombie ended %s %s (%s), want FAILED ConflictError", x.Status, x.Error, x.Cause)
	}
	if taken.Fencing == 0 {
		t.Fatal("the takeover did not happen")
	}
	if cur := s.current(); cur != s.orig {
		t.Errorf("the zombie moved AWSCURRENT to %s", cur)
	}
	lease, _, _ := env.Ledger.Get(s.ctx, s.arn)
	if lease.Fencing != taken.Fencing || lease.Holder != taken.Holder {
		t.Errorf("lease is %s/%d, want the taker's %s/%d", lease.Holder, lease.Fencing, taken.Holder, taken.Fencing)
	}
	hist, _ := env.Ledger.History(s.ctx, s.arn)
	zombie := 0
	for _, r := range hist {
		if r.Fencing < taken.Fencing {
			zombie++
		}
	}
	if zombie != len(before) {
		t.Errorf("the zombie journaled %d records after the takeover: %v", zombie-len(before), hist)
	}
}

// TestForeignMoveAbandons: while a rotation is in flight, someone else
// rotates the secret (a new AWSCURRENT whose password they set on the
// database). Our rotation must stop, journal ABANDONED, and undo nothing
// over their work: their value keeps working. finish reads no stages
// before its UpdateSecretVersionStage, so whenever the move comes (before
// finish's write-ahead record, or between it and the stage move) only the
// compare-and-swap (RemoveFromVersionId is the version recorded at acquire,
// not whoever holds AWSCURRENT at the time) stops finish from moving
// AWSCURRENT over it; the refused move is then told apart by reading the
// stages.
func TestForeignMoveAbandons(t *testing.T) {
	for _, at := range []struct {
		name string
		call string
	}{
		{"before finish's write-ahead record", "DynamoDB.TransactWriteItems"},
		{"between finish's record and its stage move", "Secrets Manager.UpdateSecretVersionStage"},
	} {
		t.Run(at.name, func(t *testing.T) { testForeignMoveAbandons(t, at.call) })
	}
}

func testForeignMoveAbandons(t *testing.T, call string) {
	var s *scenario
	foreignPW := "Foreign-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	var foreignVersion string
	withFaults(t, faultinject.Rule{Function: "finishsecret", Call: call, Nth: 1, Phase: faultinject.Before,
		Hook: func(ctx context.Context) error {
			v, err := env.PostgresRole(ctx, s.role) // a new role password...
			if err != nil {
				return err
			}
			v["password"] = foreignPW
			if err := env.SetRolePassword(ctx, s.role, foreignPW); err != nil {
				return err
			}
			raw, _ := json.Marshal(v)
			foreignVersion = uuid.NewString()
			_, err = env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{ // ...made AWSCURRENT by someone else
				SecretId: &s.arn, ClientRequestToken: &foreignVersion, SecretString: aws.String(string(raw)),
			})
			return err
		}})
	s = newScenario(t, "concurrency")
	x := s.run(map[string]any{})
	if x.Status != "FAILED" || x.Error != faults.NameConflict {
		t.Errorf("ended %s %s (%s), want FAILED ConflictError", x.Status, x.Error, x.Cause)
	}
	if cur := s.current(); cur != foreignVersion {
		t.Errorf("AWSCURRENT is %s, want the foreign %s", cur, foreignVersion)
	}
	if j := s.journal(); j[len(j)-1] != ledger.Abandoned {
		t.Errorf("journal %v does not end ABANDONED", j)
	}
	s.invariants(x)
}

// TestBadInput: each malformed secret fails with a named error that says
// what is wrong, and changes neither the secret nor the database.
func TestBadInput(t *testing.T) {
	type spoil func(v map[string]any)
	tests := []struct {
		name    string
		spoil   spoil
		raw     string // the whole secret string, when not JSON of v
		setup   func(ctx context.Context, arn string) error
		wantErr string
		inCause string
	}{
		{name: "malformed JSON", raw: `{"engine":"postgres","username":`, wantErr: faults.NameInput, inCause: "JSON"},
		{name: "missing username", spoil: func(v map[string]any) { delete(v, "username") }, wantErr: faults.NameInput, inCause: "username"},
		{name: "missing password", spoil: func(v map[string]any) { delete(v, "password") }, wantErr: faults.NameInput, inCause: "password"},
		{name: "missing host", spoil: func(v map[string]any) { delete(v, "host") }, wantErr: faults.NameInput, inCause: "host"},
		{name: "unknown engine", spoil: func(v map[string]any) { v["engine"] = "oracle" }, wantErr: faults.NameInput, inCause: "oracle"},
		{name: "port out of range", spoil: func(v map[string]any) { v["port"] = 70000 }, wantErr: faults.NameInput, inCause: "port"},
		{name: "port as a word", spoil: func(v map[string]any) { v["port"] = "five" }, wantErr: faults.NameInput, inCause: "port"},
		{name: "wrong port (nothing listens)", spoil: func(v map[string]any) { v["port"] = closedPort(t) }, wantErr: faults.NameRetryable, inCause: "unreachable"},
		{name: "unreachable host", spoil: func(v map[string]any) { v["host"] = "db.unreachable.invalid" }, wantErr: faults.NameRetryable, inCause: "unreachable"},
		{name: "secret scheduled for deletion", setup: func(ctx context.Context, arn string) error {
			_, err := env.SMClient.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: &arn, RecoveryWindowInDays: aws.Int64(7)})
			return err
		}, wantErr: faults.NameInput, inCause: "deletion"},
		{name: "AWSPENDING on a foreign version", setup: func(ctx context.Context, arn string) error {
			cur, err := env.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
			if err != nil {
				return err
			}
			_, err = env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &arn, ClientRequestToken: aws.String(uuid.NewString()),
				SecretString: cur.SecretString, VersionStages: []string{"AWSPENDING"}})
			return err
		}, wantErr: faults.NameConflict, inCause: "AWSPENDING"},
		{name: "master secret missing (alternating users)", spoil: func(v map[string]any) {
			v["masterarn"] = "arn:aws:secretsmanager:us-east-1:000000000000:secret:no-such-master-AbCdEf"
		}, wantErr: faults.NameInput, inCause: "master"},
		{name: "password policy cannot be satisfied", setup: func(ctx context.Context, arn string) error {
			_, err := env.SMClient.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: &arn, Tags: []smtypes.Tag{{Key: aws.String("secretsaga:password-length"), Value: aws.String("2")}}})
			return err
		}, wantErr: faults.NameInput, inCause: "password"},
		{name: "oversized value", spoil: padTo(65536 - 2), wantErr: faults.NameInput, inCause: "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t)
			verdict := cell(t, "bad input")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			id := uuid.NewString()[:8]
			role := "role_" + id
			v, err := env.PostgresRole(ctx, role)
			if err != nil {
				t.Fatal(err)
			}
			origPW := v["password"].(string)
			raw := tt.raw
			if raw == "" {
				if tt.spoil != nil {
					tt.spoil(v)
				}
				b, _ := json.Marshal(v)
				raw = string(b)
			}
			arn, err := env.CreateSecret(ctx, "it/bad/"+secretName(tt.name)+"/"+id, raw, "bad input: "+tt.name)
			if err != nil {
				t.Fatal(err)
			}
			trackSecret(arn)
			if tt.setup != nil {
				if err := tt.setup(ctx, arn); err != nil {
					t.Fatal(err)
				}
			}
			before, err := env.Stages(ctx, arn)
			if err != nil {
				t.Fatal(err)
			}
			baseline, err := env.Baseline(ctx, arn)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			x, err := env.Execute(ctx, "bad-"+id, map[string]any{"SecretId": arn})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s after %v: %s: %s", x.Status, time.Since(start).Round(time.Millisecond), x.Error, x.Cause)
			if x.Status != "FAILED" || x.Error != tt.wantErr {
				t.Errorf("ended %s %s, want FAILED %s\n%s", x.Status, x.Error, tt.wantErr, x.Timeline())
			}
			if !strings.Contains(strings.ToLower(x.Cause), strings.ToLower(tt.inCause)) {
				t.Errorf("the cause %q does not say what is wrong (want it to mention %q)", x.Cause, tt.inCause)
			}
			after, err := env.Stages(ctx, arn)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("the secret changed: %v → %v", before, after)
			}
			if err := env.CanLoginAs(ctx, role, origPW); err != nil {
				t.Errorf("the role's password changed: %v", err)
			}
			if strings.Contains(x.Cause, origPW) {
				verdict.violations++
				t.Errorf("the error holds the password")
			}
			// Bad input is refused and changes nothing: where AWSCURRENT
			// never logged in, that is "refused, unchanged", not broken.
			check := env.CheckAgainst(ctx, baseline, arn, x)
			for _, msg := range check.Violations {
				verdict.violations++
				t.Error(msg)
			}
			verdict.refusedUnchanged = check.RefusedUnchanged
			if lease, leased, _ := env.Ledger.Get(ctx, arn); leased && lease.Holder != "" {
				t.Errorf("the lease is still held by %s (%s)", lease.Holder, lease.State)
			}
		})
	}
}

// padTo adds a member that makes the secret n bytes long: within Secrets
// Manager's limit, while the new version, with a longer password, is not.
func padTo(n int) func(v map[string]any) {
	return func(v map[string]any) {
		v["padding"] = ""
		b, _ := json.Marshal(v)
		v["padding"] = strings.Repeat("x", n-len(b))
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestExecutionDiesAtEveryCall: for every call site of a successful
// rotation, the execution dies right after that call took effect (its
// handler crashes and nothing retries it: the execution was aborted or
// timed out). Once its lease has expired, a new execution must complete a
// rotation, cleaning up after the dead one, with the invariants holding.
func TestExecutionDiesAtEveryCall(t *testing.T) {
	sites := discoverSites(t)
	for _, st := range sites {
		t.Run(st.String(), func(t *testing.T) {
			withFaults(t, faultinject.Rule{Function: st.Function, Call: st.Call, Nth: st.Nth, Phase: faultinject.Crash})
			s := newScenario(t, "fault matrix: execution dies after call, next one recovers")
			died := driveUntilCrash(t, s)
			if !died {
				t.Fatalf("the execution did not reach %s", st)
			}
			l, _, err := env.Ledger.Get(s.ctx, s.arn)
			if err != nil {
				t.Fatal(err)
			}
			deadHeld := l.Holder != "" && !l.State.Terminal()
			if err := env.ExpireLease(s.ctx, s.arn); err != nil {
				t.Fatal(err)
			}
			env.Faults.Reset()
			x := s.run(map[string]any{})
			if x.Status != "SUCCEEDED" {
				t.Fatalf("the next execution ended %s %s: %s\n%s", x.Status, x.Error, x.Cause, x.Timeline())
			}
			if got := slices.Contains(s.journal(), ledger.Recovered); got != deadHeld {
				t.Errorf("RECOVERED journaled: %v; the dead execution held the lease unfinished: %v (state %s)", got, deadHeld, l.State)
			}
			if s.current() == s.orig {
				t.Error("AWSCURRENT did not move")
			}
			s.invariants(x)
		})
	}
}

// driveUntilCrash runs the saga's success path step by step, each step in
// the Service of the function the state machine would call, until the
// injected crash kills it. It reports whether the crash happened.
func driveUntilCrash(t *testing.T, s *scenario) (died bool) {
	t.Helper()
	svc := func(name string) *rotation.Service {
		v, err := env.FunctionService(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(faultinject.CrashError); !ok {
				panic(r)
			}
			died = true
		}
	}()
	ctx := func(name string) context.Context { return faultinject.WithFunction(s.ctx, name) }
	rc, err := svc("acquirelease").Acquire(ctx("acquirelease"), rotation.AcquireInput{SecretId: s.arn, ClientRequestToken: uuid.NewString(),
		ExecutionArn: "arn:aws:states:us-east-1:000000000000:execution:rotation:dies-" + uuid.NewString()[:8], LedgerTable: local.Table})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		run  func(*rotation.Service, context.Context, rotation.Context) (rotation.StepOutput, error)
	}{
		{"createsecret", (*rotation.Service).Create}, {"setsecret", (*rotation.Service).Set},
		{"testsecret", (*rotation.Service).Test}, {"finishsecret", (*rotation.Service).Finish},
	} {
		if _, err := step.run(svc(step.name), ctx(step.name), rc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc("releaselease").Release(ctx("releaselease"), rotation.CloseInput{Rotation: rc, Outcome: rotation.OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	return false
}

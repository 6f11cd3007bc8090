package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

const (
	arn       = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-AbCdEf"
	token     = "11111111-2222-3333-4444-555555555555"
	execution = "arn:aws:states:us-east-1:000000000000:execution:rotation:one"
	v1        = "v1-00000000000000000000000000000000"
	original  = "Orig1nal-Password"
)

type fixture struct {
	svc    *Service
	alarms *fakeAlarms
	sm     *fakeSecrets
	led    *fakeLedger
	db     *fakeEngine
	bus    *fakeBus
	logs   *bytes.Buffer
	// bake makes acquire ask for the verify step (AcquireInput.Verify), as
	// the state machine does when a bake follows finish; without it finish
	// ends the rotation itself (Context.ReleaseAtFinish).
	bake bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		sm:     newFakeSecrets(arn, `{"engine":"fake","host":"db","port":1,"username":"app","password":"`+original+`","note":{"keep":true}}`),
		led:    &fakeLedger{lease: map[string]ledger.Lease{}},
		db:     &fakeEngine{password: original},
		bus:    &fakeBus{},
		logs:   &bytes.Buffer{},
		alarms: newFakeAlarms(),
	}
	reg := &target.Registry{}
	reg.Register(f.db)
	f.svc = &Service{Secrets: f.sm, Ledger: f.led, Engines: reg, Events: f.bus, Alarms: f.alarms, Actor: "test",
		Log: slog.New(slog.NewJSONHandler(f.logs, nil))}
	t.Cleanup(func() { f.assertNoLeak(t) })
	return f
}

// assertNoLeak is invariant 5: no generated password in logs, events or the
// journal.
func (f *fixture) assertNoLeak(t *testing.T) {
	t.Helper()
	ev, _ := json.Marshal(f.bus.events)
	jr, _ := json.Marshal(f.led.journal)
	for _, raw := range f.sm.generated {
		// As written, and as JSON writes it (generated passwords hold
		// characters such as < > & that JSON escapes).
		quoted, _ := json.Marshal(raw)
		for _, pw := range []string{raw, string(quoted[1 : len(quoted)-1])} {
			for name, s := range map[string]string{"logs": f.logs.String(), "events": string(ev), "journal": string(jr)} {
				if strings.Contains(s, pw) {
					t.Errorf("generated password leaked into %s", name)
				}
			}
		}
	}
}

func (f *fixture) acquire(t *testing.T) Context {
	t.Helper()
	rc, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, Verify: f.bake})
	if err != nil {
		t.Fatal(err)
	}
	if rc.ReleaseAtFinish == f.bake {
		t.Fatalf("ReleaseAtFinish = %v with Verify %v", rc.ReleaseAtFinish, f.bake)
	}
	return rc
}

func (f *fixture) steps(t *testing.T, rc Context, steps ...func(context.Context, Context) (StepOutput, error)) {
	t.Helper()
	for _, step := range steps {
		if _, err := step(context.Background(), rc); err != nil {
			t.Fatal(err)
		}
	}
}

// passwordOf is the password field of a secret's JSON value ("" if none):
// generated passwords hold characters JSON escapes, so a value is searched
// decoded, never as text.
func passwordOf(value string) string {
	var v struct{ Password string }
	_ = json.Unmarshal([]byte(value), &v)
	return v.Password
}

func (f *fixture) pendingPassword(t *testing.T) string {
	t.Helper()
	v, err := f.sm.Value(context.Background(), arn, token, "")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(v), &m)
	return m["password"].(string)
}

func (f *fixture) last() ledger.State { return f.led.journal[len(f.led.journal)-1].State }

func TestSuccessfulRotation(t *testing.T) {
	for _, bake := range []bool{false, true} {
		t.Run(fmt.Sprintf("bake=%v", bake), func(t *testing.T) { successfulRotation(t, bake) })
	}
}

func successfulRotation(t *testing.T, bake bool) {
	f := newFixture(t)
	f.bake = bake
	rc := f.acquire(t)
	if rc.PreviousVersionId != v1 || rc.Fencing != 1 {
		t.Fatalf("context = %+v", rc)
	}
	s := f.svc
	steps := []func(context.Context, Context) (StepOutput, error){s.Create, s.Set, s.Test, s.Finish}
	if bake {
		steps = append(steps, s.Verify)
	}
	f.steps(t, rc, steps...)
	if _, err := s.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	pw := f.pendingPassword(t)
	switch {
	case f.sm.holder("AWSCURRENT") != token:
		t.Error("AWSCURRENT is not the token")
	case f.sm.holder("AWSPREVIOUS") != v1:
		t.Error("AWSPREVIOUS is not the old version")
	case f.sm.holder("AWSPENDING") != "":
		t.Error("AWSPENDING left behind")
	case f.db.password != pw:
		t.Error("target password is not the new one")
	case f.last() != ledger.Finished || f.led.lease[arn].Holder != "":
		t.Errorf("journal ends %s, holder %q", f.last(), f.led.lease[arn].Holder)
	case f.bus.types() != "Rotation Succeeded":
		t.Errorf("events = %s", f.bus.types())
	}
	if !strings.Contains(f.sm.values[token], `"note":{"keep":true}`) {
		t.Error("unknown field not preserved")
	}
}

// Every step run again after it succeeded changes nothing; with no bake,
// finish again finds the rotation it ended.
func TestStepsAreIdempotent(t *testing.T) {
	for _, bake := range []bool{false, true} {
		t.Run(fmt.Sprintf("bake=%v", bake), func(t *testing.T) { stepsAreIdempotent(t, bake) })
	}
}

func stepsAreIdempotent(t *testing.T, bake bool) {
	f := newFixture(t)
	f.bake = bake
	rc := f.acquire(t)
	s := f.svc
	if again := f.acquire(t); !reflect.DeepEqual(again, rc) {
		t.Fatalf("re-acquire = %+v, want %+v", again, rc)
	}
	steps := []func(context.Context, Context) (StepOutput, error){s.Create, s.Set, s.Test, s.Finish}
	if bake {
		steps = append(steps, s.Verify)
	}
	for _, step := range steps {
		first, err := step(context.Background(), rc)
		if err != nil {
			t.Fatal(err)
		}
		journal := len(f.led.journal)
		second, err := step(context.Background(), rc)
		if err != nil {
			t.Fatalf("%s again: %v", first.Step, err)
		}
		if second.Changed || len(f.led.journal) != journal {
			t.Fatalf("%s again changed something (changed=%v, journal %d→%d)", first.Step, second.Changed, journal, len(f.led.journal))
		}
	}
	if len(f.sm.generated) != 1 || f.db.sets != 1 {
		t.Fatalf("passwords generated %d, set %d; want 1 each", len(f.sm.generated), f.db.sets)
	}
	for range 2 {
		if _, err := s.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
			t.Fatal(err)
		}
	}
	// The journal records the end once; the event is announced again by
	// the retry (outcome events are at least once, like EventBridge's
	// delivery: the first attempt's PutEvents may be what failed).
	if n := strings.Count(fmt.Sprint(f.led.journal), string(ledger.Finished)); n != 1 {
		t.Fatalf("FINISHED journaled %d times", n)
	}
	if f.bus.types() != "Rotation Succeeded,Rotation Succeeded" {
		t.Fatalf("events = %s", f.bus.types())
	}
}

func TestCompensation(t *testing.T) {
	tests := []struct {
		name  string
		fail  func(f *fixture)
		until string // the step that fails
		err   string
	}{
		{"test fails after set", func(f *fixture) { f.db.failTest = fmt.Errorf("probe: %w", target.ErrAuthFailed) }, StepTest, faults.NameTestFailed},
		{"set fails before effect", func(f *fixture) { f.db.failSet = fmt.Errorf("x: %w", target.ErrInvalid) }, StepSet, faults.NameInput},
		{"finish fails", func(f *fixture) { f.sm.failNext["MoveStage"] = errBoom }, StepFinish, faults.NameRetryable},
		{"verify fails after finish", func(f *fixture) { f.db.failTest = nil }, StepVerify, faults.NameTestFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.bake = true // compensation after finish follows a failed bake
			rc := f.acquire(t)
			s := f.svc
			order := []struct {
				name string
				fn   func(context.Context, Context) (StepOutput, error)
			}{{StepCreate, s.Create}, {StepSet, s.Set}, {StepTest, s.Test}, {StepFinish, s.Finish}, {StepVerify, s.Verify}}
			var failure error
			for _, st := range order {
				if st.name == tt.until {
					tt.fail(f)
					if st.name == StepVerify { // break the new password on the target behind our back
						f.db.password = "changed-by-someone"
					}
				}
				if _, failure = st.fn(context.Background(), rc); failure != nil {
					break
				}
			}
			if faults.Name(failure) != tt.err {
				t.Fatalf("failure = %v, want %s", failure, tt.err)
			}
			if tt.until == StepVerify {
				f.db.password = f.pendingPassword(t) // what finish left on the target
			}
			out, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: tt.err}})
			if err != nil {
				t.Fatal(err)
			}
			if out.State != string(ledger.RolledBack) {
				t.Fatalf("state = %s", out.State)
			}
			switch {
			case f.sm.holder("AWSCURRENT") != v1:
				t.Error("AWSCURRENT not restored")
			case f.sm.holder("AWSPREVIOUS") != "":
				t.Errorf("AWSPREVIOUS on %s, want none (there was none at start)", f.sm.holder("AWSPREVIOUS"))
			case f.sm.holder("AWSPENDING") != "":
				t.Error("AWSPENDING left behind")
			case f.db.password != original:
				t.Error("target not reverted: the AWSCURRENT password does not work")
			case f.last() != ledger.RolledBack || f.led.lease[arn].Holder != "":
				t.Errorf("journal ends %s", f.last())
			case f.bus.types() != "Rotation Rolled Back":
				t.Errorf("events = %s", f.bus.types())
			}
			// Compensating again is a no-op.
			if out, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback}); err != nil || out.State != string(ledger.RolledBack) {
				t.Fatalf("second compensation: %v %+v", err, out)
			}
		})
	}
}

// A target that cannot be reached was never changed: the write-ahead record
// is written only once a login worked, so compensation has nothing to revert
// and completes even though the target is still down.
func TestUnreachableTargetNeedsNoRevert(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	if _, err := f.svc.Create(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	f.db.down = true
	_, err := f.svc.Set(context.Background(), rc)
	if faults.Name(err) != faults.NameRetryable {
		t.Fatalf("set = %v, want RetryableError", err)
	}
	for _, st := range f.led.journal {
		if st.State == ledger.SetStarted {
			t.Fatal("SET_STARTED journaled although no login worked")
		}
	}
	out, err := f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameRetryable}})
	if err != nil || out.State != string(ledger.RolledBack) || out.TargetReverted {
		t.Fatalf("compensate = %+v, %v; want ROLLED_BACK without touching the target", out, err)
	}
	if f.db.sets != 0 || f.sm.holder("AWSPENDING") != "" || f.sm.holder("AWSCURRENT") != v1 {
		t.Errorf("sets %d, AWSPENDING on %q, AWSCURRENT on %q", f.db.sets, f.sm.holder("AWSPENDING"), f.sm.holder("AWSCURRENT"))
	}
}

func TestForeignCurrentMoveIsAbandoned(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set, s.Test)
	f.sm.values["foreign-0000000000000000000000000000"] = f.sm.values[v1]
	_ = f.sm.MoveStage(context.Background(), arn, "AWSCURRENT", "foreign-0000000000000000000000000000", v1)
	_, err := s.Finish(context.Background(), rc)
	if faults.Name(err) != faults.NameConflict {
		t.Fatalf("finish = %v, want ConflictError", err)
	}
	out, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeAbandon, Error: &TaskError{Error: faults.NameConflict}})
	if err != nil || out.State != string(ledger.Abandoned) {
		t.Fatalf("abandon = %v %+v", err, out)
	}
	if f.sm.holder("AWSCURRENT") != "foreign-0000000000000000000000000000" || f.sm.holder("AWSPENDING") != "" {
		t.Fatal("abandon touched the foreign version or left AWSPENDING")
	}
	if f.bus.types() != "Rotation Abandoned" {
		t.Fatalf("events = %s", f.bus.types())
	}
	// A rollback over the foreign move also refuses to undo it.
	f2 := newFixture(t)
	f2.bake = true // a bake that failed after finish
	rc2 := f2.acquire(t)
	f2.steps(t, rc2, f2.svc.Create, f2.svc.Set, f2.svc.Test, f2.svc.Finish)
	f2.sm.values["foreign-0000000000000000000000000000"] = "{}"
	_ = f2.sm.MoveStage(context.Background(), arn, "AWSCURRENT", "foreign-0000000000000000000000000000", token)
	if _, err := f2.svc.Compensate(context.Background(), CloseInput{Rotation: rc2, Mode: ModeRollback}); faults.Name(err) != faults.NameConflict {
		t.Fatalf("rollback over foreign = %v", err)
	}
	if f2.sm.holder("AWSCURRENT") != "foreign-0000000000000000000000000000" || f2.last() != ledger.Abandoned {
		t.Fatal("rollback undid someone else's work")
	}
}

func TestZombieChangesNothing(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	// The lease expires and another execution takes it over.
	l := f.led.lease[arn]
	l.Holder, l.Fencing, l.Token = "arn:other", l.Fencing+1, "99999999-2222-3333-4444-555555555555"
	f.led.lease[arn] = l
	journal := len(f.led.journal)
	s := f.svc
	for _, step := range []func(context.Context, Context) (StepOutput, error){s.Create, s.Set, s.Test, s.Finish} {
		if _, err := step(context.Background(), rc); faults.Name(err) != faults.NameConflict {
			t.Fatalf("zombie step = %v, want ConflictError", err)
		}
	}
	if out, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeAbandon}); err != nil || out.State != "NOT_OWNER" {
		t.Fatalf("zombie abandon = %v %+v", err, out)
	}
	if len(f.led.journal) != journal || len(f.sm.generated) != 0 || f.db.sets != 0 || f.sm.holder("AWSPENDING") != "" {
		t.Fatal("zombie changed something")
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tests := []struct {
		name  string
		value string
		setup func(*fixture)
		want  string
		in    AcquireInput
		// reason is what the message must say, so a person knows what to
		// fix (rows without one predate the check).
		reason string
	}{
		{name: "malformed json", value: `{"engine":`, want: faults.NameInput},
		{name: "missing username", value: `{"engine":"fake","host":"h","password":"p"}`, want: faults.NameInput},
		{name: "unknown engine", value: `{"engine":"oracle","host":"h","username":"u","password":"p"}`, want: faults.NameInput},
		{name: "unknown tls mode", value: `{"engine":"fake","host":"h","username":"u","password":"p","tls":"prefer"}`, want: faults.NameInput,
			reason: `secret value field "tls": must be one of "verify-full" (verify the server's certificate and host name), "require" (encrypt without verifying) or "disable" (plain TCP)`},
		{name: "deleted", setup: func(f *fixture) { f.sm.deleted = true }, want: faults.NameInput},
		{name: "foreign pending", setup: func(f *fixture) {
			f.sm.values["other-000000000000000000000000000000"] = "{}"
			f.sm.stages["other-000000000000000000000000000000"] = []string{"AWSPENDING"}
		}, want: faults.NameConflict},
		{name: "bad policy tag", setup: func(f *fixture) { f.sm.tags[secretstore.TagPasswordLength] = "3" }, want: faults.NameInput},
		{name: "short token", in: AcquireInput{SecretId: "app/db", ClientRequestToken: "x", ExecutionArn: execution}, want: faults.NameInput},
		{name: "lease held", setup: func(f *fixture) {
			f.led.lease[arn] = ledger.Lease{Secret: arn, Fencing: 4, Seq: 2, Holder: "arn:other", State: ledger.SetStarted}
		}, want: faults.NameConflict},
		{name: "token names an existing version", setup: func(f *fixture) {
			f.sm.values[token] = "{}"
			f.sm.stages[token] = []string{"release-2024"}
		}, want: faults.NameInput},
		{name: "token names an unlabelled version", setup: func(f *fixture) {
			// An older version: its labels moved on, the version remains.
			f.sm.values[token] = f.sm.values[v1]
			f.sm.stages[token] = nil
		}, want: faults.NameInput, reason: "no longer carries a staging label; versions cannot be changed, so a rotation needs a new token"},
		{name: "SecretBinary", setup: func(f *fixture) { f.sm.binary = map[string]bool{v1: true} },
			want: faults.NameInput, reason: "holds SecretBinary; secretsaga rotates the database-secret JSON in SecretString"},
		{name: "clone name over the engine's limit", value: `{"engine":"fake","host":"h","username":"` + strings.Repeat("u", 58) + `","password":"p","masterarn":"arn:master"}`,
			setup: func(f *fixture) { f.db.caps = &alternatingCaps }, want: faults.NameInput,
			reason: `"` + strings.Repeat("u", 58) + `_clone" (64 bytes), longer than the 63 bytes of the limit; use a user name of at most 57 bytes`},
		{name: "rollback without AWSPREVIOUS", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, Rollback: true}, want: faults.NameInput},
		{name: "rollback to a version that is not AWSPREVIOUS", setup: func(f *fixture) {
			f.sm.values["prev-0000000000000000000000000000000"] = f.sm.values[v1]
			f.sm.stages["prev-0000000000000000000000000000000"] = []string{"AWSPREVIOUS"}
		}, in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, Rollback: true}, want: faults.NameInput},
		{name: "rollback to another database", setup: func(f *fixture) {
			f.sm.values[token] = `{"engine":"fake","host":"elsewhere","port":1,"username":"app","password":"x"}`
			f.sm.stages[token] = []string{"AWSPREVIOUS"}
		}, in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, Rollback: true}, want: faults.NameInput},
		{name: "health check not a URL", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, HealthCheckUrl: "localhost:80/health"}, want: faults.NameInput},
		{name: "bake too long", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, HealthCheckUrl: "http://127.0.0.1/h", BakeSeconds: MaxBakeSeconds + 1}, want: faults.NameInput},
		{name: "bake without a health check", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, BakeSeconds: 5}, want: faults.NameInput},
		{name: "empty bake alarm name", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, BakeAlarms: []string{"api-5xx", ""}}, want: faults.NameInput},
		{name: "bake alarm name too long", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, BakeAlarms: []string{strings.Repeat("a", 256)}}, want: faults.NameInput},
		{name: "too many bake alarms", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, BakeAlarms: make([]string, MaxBakeAlarms+1)}, want: faults.NameInput},
		{name: "alarm bake too long", in: AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, BakeAlarms: []string{"api-5xx"}, BakeSeconds: MaxBakeSeconds + 1}, want: faults.NameInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.value != "" {
				f.sm.values[v1] = tt.value
			}
			if tt.setup != nil {
				tt.setup(f)
			}
			before := fmt.Sprint(f.sm.stages, f.led.lease)
			in := tt.in
			if in.SecretId == "" {
				in = AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution}
			}
			_, err := f.svc.Acquire(context.Background(), in)
			if faults.Name(err) != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
			if !strings.Contains(err.Error(), "step acquire") {
				t.Errorf("error does not name the step: %v", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			if after := fmt.Sprint(f.sm.stages, f.led.lease); after != before || len(f.led.journal) != 0 {
				t.Fatalf("bad input changed state:\n%s\n%s", before, after)
			}
		})
	}
}

// alternatingCaps is an engine with the alternating strategy and a
// PostgreSQL-like limit on user names.
var alternatingCaps = target.Capabilities{SingleUser: true, Alternating: true,
	UsernameLimits: map[string]target.NameLimit{"": {Max: 63, Bytes: true, Cause: "the limit"}, "other": {Max: 200}}}

// The clone's name is checked against the limit for the secret's engine
// value, in the unit the server counts, and only where it matters.
func TestCloneNameLimit(t *testing.T) {
	mysqlish := target.Capabilities{Alternating: true, UsernameLimits: map[string]target.NameLimit{
		"": {Max: 32}, "mariadb": {Max: 80}}}
	tests := []struct {
		name, engine, user string
		caps               target.Capabilities
		ok                 bool
	}{
		{"fits exactly", "postgres", strings.Repeat("u", 57), alternatingCaps, true},
		{"one byte over", "postgres", strings.Repeat("u", 58), alternatingCaps, false},
		{"bytes, not characters", "postgres", strings.Repeat("é", 29), alternatingCaps, false},
		{"the clone's base is shorter", "postgres", strings.Repeat("u", 58) + "_clone", alternatingCaps, true},
		{"characters, not bytes", "mysql", strings.Repeat("é", 26), mysqlish, true},
		{"mysql over 32", "mysql", strings.Repeat("u", 27), mysqlish, false},
		{"mariadb allows 80", "mariadb", strings.Repeat("u", 74), mysqlish, true},
		{"mariadb over 80", "mariadb", strings.Repeat("u", 75), mysqlish, false},
		{"no limit", "redis", strings.Repeat("u", 500), target.Capabilities{Alternating: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.db.caps = &tt.caps
			err := checkClone(f.svc.op(StepAcquire, Context{SecretId: "app/db"}), f.db, &secret.Value{Engine: tt.engine, Username: tt.user})
			if (err == nil) != tt.ok || (err != nil && faults.Name(err) != faults.NameInput) {
				t.Fatalf("checkClone(%d bytes) = %v, want ok=%v", len(tt.user), err, tt.ok)
			}
		})
	}
}

// A rollback keeps the user, so an over-long clone name does not stop it.
func TestRollbackIgnoresCloneLimit(t *testing.T) {
	f := newFixture(t)
	f.db.caps = &alternatingCaps
	long := `{"engine":"fake","host":"h","port":1,"username":"` + strings.Repeat("u", 60) + `","password":"p","masterarn":"arn:master"}`
	f.sm.values[v1] = long
	f.sm.values[token] = long
	f.sm.stages[token] = []string{"AWSPREVIOUS"}
	if _, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, Rollback: true}); err != nil {
		t.Fatal(err)
	}
}

func TestCompensationFailureHoldsLeaseAndAlerts(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set)
	f.db.password = "rotated-out-of-band" // nothing the secret holds works any more
	_, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}})
	if faults.Name(err) != faults.NameCompensationFailed {
		t.Fatalf("compensate = %v, want CompensationFailedError", err)
	}
	in := CloseInput{Rotation: rc, Outcome: OutcomeCompensationFailed, Error: &TaskError{Error: faults.NameTestFailed}, CompensationError: &TaskError{Error: faults.NameCompensationFailed}}
	if _, err := s.Release(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	l := f.led.lease[arn]
	if l.State != ledger.CompensationFailed || l.Holder != execution || !l.Held(l.UpdatedAtTime()) {
		t.Fatalf("lease = %+v, want held in COMPENSATION_FAILED", l)
	}
	if !strings.Contains(f.bus.types(), "Compensation Failed") {
		t.Fatalf("events = %s", f.bus.types())
	}
	// No new rotation may start on top of it.
	_, err = s.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: "22222222-2222-3333-4444-555555555555", ExecutionArn: "arn:next"})
	if faults.Name(err) != faults.NameConflict {
		t.Fatalf("acquire after compensation failure = %v", err)
	}
	if !errors.As(err, new(*ledger.HeldError)) {
		t.Fatal("conflict does not carry the HeldError")
	}
}

// An operator rollback is the saga run towards the AWSPREVIOUS version: the
// old password is set on the target again and AWSCURRENT moves back to it.
func TestRollbackToPrevious(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
	if _, err := s.Release(context.Background(), CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	rotated := f.db.password
	back, err := s.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: v1,
		ExecutionArn: "arn:aws:states:us-east-1:000000000000:execution:rotation:rollback", Rollback: true})
	if err != nil {
		t.Fatal(err)
	}
	f.steps(t, back, s.Create, s.Set, s.Test, s.Finish)
	if _, err := s.Release(context.Background(), CloseInput{Rotation: back, Outcome: OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	switch {
	case f.db.password != original:
		t.Errorf("target password is not the original again (rotated one still set: %v)", f.db.password == rotated)
	case f.sm.holder("AWSCURRENT") != v1 || f.sm.holder("AWSPREVIOUS") != token || f.sm.holder("AWSPENDING") != "":
		t.Errorf("stages: current %s previous %s pending %s", f.sm.holder("AWSCURRENT"), f.sm.holder("AWSPREVIOUS"), f.sm.holder("AWSPENDING"))
	case len(f.sm.generated) != 1:
		t.Errorf("a rollback generated a password (%d generated)", len(f.sm.generated))
	case !strings.Contains(f.bus.types(), "Rollback Completed"):
		t.Errorf("events = %s, want Rollback Completed", f.bus.types())
	}
}

func TestBakeHealthCheck(t *testing.T) {
	for _, tt := range []struct {
		name         string
		status       int
		want         string
		noCloudWatch bool // a verify function without a CloudWatch client
	}{
		{"healthy throughout", http.StatusOK, "", false},
		{"unhealthy", http.StatusServiceUnavailable, faults.NameTestFailed, false},
		{"health check only, no CloudWatch client", http.StatusOK, "", true},
		// Healthy is any 2xx, the last one included; a 3xx is not.
		{"299 is healthy", 299, "", false},
		{"300 is not", http.StatusMultipleChoices, faults.NameTestFailed, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tt.status) }))
			defer srv.Close()
			f := newFixture(t)
			if tt.noCloudWatch {
				f.svc.Alarms = nil
			}
			rc, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution,
				HealthCheckUrl: srv.URL + "/health", BakeSeconds: 0})
			if err != nil {
				t.Fatal(err)
			}
			s := f.svc
			f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
			_, err = s.Verify(context.Background(), rc)
			if faults.Name(err) != tt.want && !(tt.want == "" && err == nil) {
				t.Fatalf("verify = %v, want %q", err, tt.want)
			}
		})
	}
}

// Finish refuses to make an untested password AWSCURRENT, whoever calls it.
func TestFinishBeforeTestIsRefused(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set)
	if _, err := s.Finish(context.Background(), rc); faults.Name(err) != faults.NameInput {
		t.Fatalf("finish before test = %v, want InputError", err)
	}
	if f.sm.holder("AWSCURRENT") != v1 {
		t.Fatal("AWSCURRENT moved")
	}
	f.steps(t, rc, s.Test, s.Finish)
	if f.sm.holder("AWSCURRENT") != token {
		t.Fatal("finish after test did not move AWSCURRENT")
	}
}

// A secret whose engine or port names another kind of server fails at the
// first login, create's pre-flight, as InputError: retrying cannot help.
func TestWrongProtocolIsInputError(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	f.db.failTest = fmt.Errorf("fake: verify: %w", &target.WrongProtocolError{Addr: "db:3306", Want: target.ProtocolPostgres, Found: target.ProtocolMySQL})
	_, err := f.svc.Create(context.Background(), rc)
	if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), "db:3306 speaks the MySQL protocol, not PostgreSQL; check the secret's engine and port") {
		t.Fatalf("create = %v, want InputError naming the protocol", err)
	}
	if f.sm.holder("AWSPENDING") != "" || f.db.sets != 0 {
		t.Fatal("a refused create changed something")
	}
}

// A login that fails in TLS (an untrusted certificate, a host name the
// certificate does not carry) is the secret's or the bundle's fault: an
// InputError that says what failed and what to change, with nothing
// changed on the target.
func TestTLSFailureIsInputError(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	f.steps(t, rc, f.svc.Create)
	f.db.failSet = fmt.Errorf("fake: %w", &target.TLSError{Engine: "fake", Addr: "db:1", Mode: secret.TLSVerifyFull, Default: true,
		Reason: "the server's certificate is not signed by a trusted CA", Fix: "make its CA trusted"})
	_, err := f.svc.Set(context.Background(), rc)
	if faults.Name(err) != faults.NameInput {
		t.Fatalf("set = %v, want InputError", err)
	}
	for _, want := range []string{`TLS to db:1 with tls "verify-full" (the default for this host`, "not signed by a trusted CA", "to fix: make its CA trusted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if f.db.password != original {
		t.Fatal("a TLS failure changed the target")
	}
}

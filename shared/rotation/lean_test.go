package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// The call budget of a first attempt of each step (issue 15's lean path):
// Secrets Manager calls and database logins, step by step. A step that
// reads what it does not need, or logs in once more, fails here.
func TestCallBudgetOfAFirstAttempt(t *testing.T) {
	const v0 = "v0-00000000000000000000000000000000"
	tests := []struct {
		name       string
		tokenIsNew bool
		previous   bool // the secret has an AWSPREVIOUS version
		acquire    map[string]int
	}{
		{"token made by the state machine", true, false, map[string]int{"Describe": 1, "Value": 1}},
		{"token made by the state machine, with AWSPREVIOUS", true, true, map[string]int{"Describe": 1, "Value": 1}},
		// A caller's token may name an unlabelled old version: one more call.
		{"token given by a caller", false, true, map[string]int{"Describe": 1, "Value": 1, "HasVersion": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.previous {
				f.sm.values[v0] = f.sm.values[v1]
				f.sm.stages[v0] = []string{secretstore.Previous}
			}
			s := f.svc
			ctx := context.Background()
			var rc Context
			// As the state machine does, each step gets the previous step's
			// output (the lease as it left it) in the context.
			next := func(out StepOutput, err error) error {
				rc.Last = &out
				return err
			}
			steps := []struct {
				name          string
				run           func() error
				calls         map[string]int
				logins        int
				gets, appends int // the ledger: lease reads, journal writes
			}{
				{"acquire", func() (err error) {
					rc, err = s.Acquire(ctx, AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, TokenIsNew: tt.tokenIsNew})
					return err
				}, tt.acquire, 0, 1, 0},
				{"create", func() error { return next(s.Create(ctx, rc)) }, map[string]int{"Current": 1, "PutPending": 1}, 1, 0, 1},
				// set journals SET_STARTED; test journals set's SET_DONE with TESTED.
				{"set", func() error { return next(s.Set(ctx, rc)) }, map[string]int{"Value": 2}, 1, 0, 1},
				{"test", func() error { return next(s.Test(ctx, rc)) }, map[string]int{"Value": 1}, 1, 0, 1},
				{"finish", func() error { return next(s.Finish(ctx, rc)) }, map[string]int{"MoveStage": 1, "RemoveStage": 1}, 0, 0, 2},
				{"release", func() error {
					_, err := s.Release(ctx, CloseInput{Rotation: rc, Outcome: OutcomeFinished})
					return err
				}, map[string]int{}, 0, 0, 0}, // no bake: finish journaled FINISHED and freed the lease
			}
			total := 0
			for _, st := range steps {
				f.sm.calls, f.db.logins, f.led.gets, f.led.appends = nil, 0, 0, 0
				if err := st.run(); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				got := maps.Clone(f.sm.calls)
				if got == nil {
					got = map[string]int{}
				}
				if !maps.Equal(got, st.calls) {
					t.Errorf("%s: Secrets Manager calls %v, want %v", st.name, got, st.calls)
				}
				if f.db.logins != st.logins {
					t.Errorf("%s: %d database logins, want %d", st.name, f.db.logins, st.logins)
				}
				if f.led.gets != st.gets || f.led.appends != st.appends {
					t.Errorf("%s: %d lease reads and %d journal writes, want %d and %d", st.name, f.led.gets, f.led.appends, st.gets, st.appends)
				}
				for _, n := range got {
					total += n
				}
			}
			if want := 9; tt.tokenIsNew && total != want {
				t.Errorf("%d Secrets Manager calls in all, want %d", total, want)
			}
			if f.sm.holder(secretstore.Current) != token || f.sm.holder(secretstore.Pending) != "" || f.db.password != f.pendingPassword(t) {
				t.Fatalf("AWSCURRENT %q AWSPENDING %q, or the database is not on the new password", f.sm.holder(secretstore.Current), f.sm.holder(secretstore.Pending))
			}
		})
	}
}

// A create whose PutSecretValue landed but whose answer was lost is
// retried: the retry's new password is refused (the version holds the
// first one), and the full checks find the version stored and labelled.
// One password, the first, is the rotation's.
func TestCreateRetriedAfterItsVersionWasStored(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	boom := errors.New("connection reset")
	f.sm.lostAnswer = map[string]error{"PutPending": boom}
	if _, err := f.svc.Create(context.Background(), rc); !errors.Is(err, boom) {
		t.Fatalf("create = %v, want the lost answer", err)
	}
	first := f.pendingPassword(t)
	out, err := f.svc.Create(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	if out.Changed || f.pendingPassword(t) != first || len(f.sm.generated) != 1 || f.last() != ledger.Created {
		t.Fatalf("retry: changed %v, stored %d, journal ends %s; want the first version kept, CREATED", out.Changed, len(f.sm.generated), f.last())
	}
	if f.sm.calls["Describe"] == 0 {
		t.Fatal("the retry did not go through the full checks")
	}
	f.steps(t, rc, f.svc.Set, f.svc.Test, f.svc.Finish)
	if f.db.password != first {
		t.Fatal("the database is not on the rotation's password")
	}
}

// A caller that says its token is new when it names an unlabelled older
// version (which DescribeSecret does not list) gets the InputError acquire
// would have given, at create, and nothing changes.
func TestTokenSaidNewNamesAnOldVersion(t *testing.T) {
	f := newFixture(t)
	old := `{"engine":"fake","host":"db","port":1,"username":"app","password":"An-old-one-1"}`
	f.sm.values[token] = old
	rc, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution, TokenIsNew: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Create(context.Background(), rc)
	var ie *faults.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("create = %v, want InputError", err)
	}
	if f.sm.values[token] != old || f.sm.holder(secretstore.Pending) != "" || f.sm.holder(secretstore.Current) != v1 || f.db.sets != 0 {
		t.Fatal("create changed something")
	}
}

// A rotation context without the policy (an execution started before
// acquire recorded it) still creates: the tags are read again.
func TestCreateWithoutThePolicyInTheContext(t *testing.T) {
	f := newFixture(t)
	f.sm.tags[secretstore.TagPasswordLength] = "12"
	rc := f.acquire(t)
	if rc.Policy == nil || rc.Policy.Length != 12 {
		t.Fatalf("acquire recorded policy %+v, want length 12", rc.Policy)
	}
	rc.Policy = nil
	f.sm.calls = nil
	if _, err := f.svc.Create(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	if f.sm.calls["Describe"] != 1 || len(f.pendingPassword(t)) != 12 {
		t.Fatalf("calls %v, password of %d characters; want the tags read, 12", f.sm.calls, len(f.pendingPassword(t)))
	}
}

// set retried after its change landed (its answer was lost): the current
// password is refused, AWSPREVIOUS is read and refused, the new password
// logs in: nothing changes again.
func TestSetRetriedAfterItsChange(t *testing.T) {
	const v0 = "v0-00000000000000000000000000000000"
	f := newFixture(t)
	f.sm.values[v0] = `{"engine":"fake","host":"db","port":1,"username":"app","password":"Older-pw-0"}`
	f.sm.stages[v0] = []string{secretstore.Previous}
	rc := f.acquire(t)
	f.steps(t, rc, f.svc.Create, f.svc.Set)
	f.sm.calls, f.db.logins = nil, 0
	out, err := f.svc.Set(context.Background(), rc)
	if err != nil || out.Changed || f.db.sets != 1 {
		t.Fatalf("retry = %+v, %v, %d changes; want no change", out, err, f.db.sets)
	}
	if f.sm.calls["Value"] != 3 || f.db.logins != 3 {
		t.Fatalf("retry: %d reads, %d logins; want 3 (AWSPREVIOUS read only now) and 3 (current, previous, new)", f.sm.calls["Value"], f.db.logins)
	}
}

// A finish that ended the rotation (no bake: FINISH_DONE and FINISHED in
// one write) but whose answer was lost is retried by the state machine with
// the same input: the retry finds the lease freed by its own FINISHED,
// changes nothing and says so, and release announces the rotation once.
func TestFinishRetriedAfterItEndedTheRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rc := f.acquire(t)
	for _, st := range []func(context.Context, Context) (StepOutput, error){f.svc.Create, f.svc.Set, f.svc.Test} {
		out, err := st(ctx, rc)
		if err != nil {
			t.Fatal(err)
		}
		rc.Last = &out
	}
	boom := errors.New("connection reset")
	f.led.lostOn = map[ledger.State]error{ledger.Finished: boom}
	if _, err := f.svc.Finish(ctx, rc); !errors.Is(err, boom) {
		t.Fatalf("finish = %v, want the lost answer", err)
	}
	if l := f.led.lease[arn]; l.State != ledger.Finished || l.Holder != "" {
		t.Fatalf("lease after the lost answer = %+v, want FINISHED and free", l)
	}
	journal := len(f.led.journal)
	out, err := f.svc.Finish(ctx, rc)
	if err != nil || out.Changed || !out.Released || out.Lease == nil || out.Lease.State != ledger.Finished {
		t.Fatalf("retried finish = %+v, %v; want no change, released", out, err)
	}
	if len(f.led.journal) != journal {
		t.Fatal("the retried finish journaled again")
	}
	rc.Last = &out
	f.led.gets = 0
	if _, err := f.svc.Release(ctx, CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
		t.Fatal(err)
	}
	if f.led.gets != 0 || len(f.led.journal) != journal || f.bus.types() != "Rotation Succeeded" {
		t.Fatalf("release: %d reads, journal %d→%d, events %q; want none, unchanged, Rotation Succeeded", f.led.gets, journal, len(f.led.journal), f.bus.types())
	}
	if f.sm.holder(secretstore.Current) != token || f.sm.holder(secretstore.Pending) != "" || f.db.password != f.pendingPassword(t) {
		t.Fatal("the rotation did not end on the new password")
	}
}

// A finish fenced by another execution (its lease expired and was taken
// over), or finding its own lease ended otherwise than FINISHED, is a
// conflict even with ReleaseAtFinish: only this rotation's own FINISHED
// counts as done, or a rolled-back rotation would be reported a success.
func TestFinishFencedIsNotTakenForDone(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lease func(l *ledger.Lease)
	}{
		{"another execution's FINISHED", func(l *ledger.Lease) {
			l.Fencing, l.Holder, l.State, l.Token = l.Fencing+1, "arn:aws:states:us-east-1:000000000000:execution:rotation:other", ledger.Finished, "22222222-2222-3333-4444-555555555555"
		}},
		{"this execution's lease, ended ROLLED_BACK", func(l *ledger.Lease) {
			l.Holder, l.State = "", ledger.RolledBack
		}},
		// The lease item was deleted and acquired anew, so its fencing
		// counter started again: only the version tells the leases apart.
		{"a later rotation's FINISHED under the same fencing token", func(l *ledger.Lease) {
			l.Holder, l.State, l.Token = "arn:aws:states:us-east-1:000000000000:execution:rotation:other", ledger.Finished, "22222222-2222-3333-4444-555555555555"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			rc := f.acquire(t)
			f.steps(t, rc, f.svc.Create, f.svc.Set, f.svc.Test)
			l := f.led.lease[arn]
			tt.lease(&l)
			f.led.lease[arn] = l
			if out, err := f.svc.Finish(ctx, rc); faults.Name(err) != faults.NameConflict {
				t.Fatalf("finish = %+v, %v; want ConflictError", out, err)
			}
			if f.sm.holder(secretstore.Current) != v1 {
				t.Fatal("a fenced finish moved AWSCURRENT")
			}
		})
	}
}

// Set writes once, SET_STARTED before the change; its SET_DONE goes to
// test in its output and is journaled with TESTED, keeping set's time and
// actor. A test retried after that write landed writes nothing again; a
// caller that does not pass set's output still gets a SET_DONE (test's own,
// saying so); a failed test journals nothing.
func TestSetDoneIsJournaledWithTested(t *testing.T) {
	run := func(t *testing.T, f *fixture, chain bool) (Context, StepOutput) {
		t.Helper()
		rc := f.acquire(t)
		out, err := f.svc.Create(context.Background(), rc)
		if err != nil {
			t.Fatal(err)
		}
		rc.Last = &out
		f.led.appends = 0
		set, err := f.svc.Set(context.Background(), rc)
		if err != nil {
			t.Fatal(err)
		}
		if f.led.appends != 1 || f.last() != ledger.SetStarted || set.Journal == nil || set.Journal.State != ledger.SetDone {
			t.Fatalf("set: %d writes, journal ends %s, output record %+v; want 1, SET_STARTED, SET_DONE", f.led.appends, f.last(), set.Journal)
		}
		if chain {
			rc.Last = &set
		} else {
			rc.Last = nil
		}
		return rc, set
	}
	t.Run("with set's output", func(t *testing.T) {
		f := newFixture(t)
		rc, set := run(t, f, true)
		set.Journal.At -= 1500 // set ended a while before test: its time, not test's, is journaled
		f.led.appends = 0
		boom := errors.New("connection reset")
		f.led.lostOn = map[ledger.State]error{ledger.Tested: boom}
		if _, err := f.svc.Test(context.Background(), rc); !errors.Is(err, boom) {
			t.Fatalf("test = %v, want the lost answer", err)
		}
		n := len(f.led.journal)
		done, tested := f.led.journal[n-2], f.led.journal[n-1]
		if f.led.appends != 1 || done.State != ledger.SetDone || done.At != set.Journal.At || done.Actor != set.Journal.Actor || tested.State != ledger.Tested {
			t.Fatalf("test: %d writes, journal ends %+v %+v; want 1 write, set's SET_DONE, TESTED", f.led.appends, done, tested)
		}
		// The state machine retries test with the same input.
		if _, err := f.svc.Test(context.Background(), rc); err != nil {
			t.Fatal(err)
		}
		if len(f.led.journal) != n {
			t.Fatalf("the retried test journaled again: %d → %d records", n, len(f.led.journal))
		}
	})
	t.Run("without it", func(t *testing.T) {
		f := newFixture(t)
		rc, _ := run(t, f, false)
		if _, err := f.svc.Test(context.Background(), rc); err != nil {
			t.Fatal(err)
		}
		n := len(f.led.journal)
		if done := f.led.journal[n-2]; done.State != ledger.SetDone || !strings.Contains(done.Detail, "journaled by test") || f.last() != ledger.Tested {
			t.Fatalf("journal ends %+v, %s; want test's own SET_DONE, then TESTED", done, f.last())
		}
	})
	t.Run("test fails", func(t *testing.T) {
		f := newFixture(t)
		rc, _ := run(t, f, true)
		f.db.failTest = fmt.Errorf("probe: %w", target.ErrAuthFailed)
		f.led.appends = 0
		if _, err := f.svc.Test(context.Background(), rc); faults.Name(err) != faults.NameTestFailed {
			t.Fatalf("test = %v, want TestFailedError", err)
		}
		if f.led.appends != 0 || f.last() != ledger.SetStarted {
			t.Fatalf("a failed test wrote %d records, journal ends %s", f.led.appends, f.last())
		}
		f.db.failTest = nil
		out, err := f.svc.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}})
		if err != nil || out.State != string(ledger.RolledBack) || f.db.password != original {
			t.Fatalf("compensation = %+v, %v, database on the original: %v", out, err, f.db.password == original)
		}
	})
}

// The SET_DONE set leaves for test travels in the execution's state as a
// JournalEntry; an execution that crosses a deploy reads an output of the
// other shape (a whole ledger.Record, as before) the same way, both ways.
func TestJournalEntryReadsAsTheRecordItReplaced(t *testing.T) {
	rec := ledger.Record{PK: "secret#x", Secret: arn, Fencing: 3, Seq: 5, State: ledger.SetDone, At: 1700000000123,
		Actor: "setsecret", Execution: "arn:aws:states:us-east-1:000000000000:execution:rotation:x", Token: token, Detail: "d"}
	type before struct {
		Step    string
		Journal *ledger.Record `json:",omitempty"`
	}
	old, err := json.Marshal(before{Step: StepSet, Journal: &rec})
	if err != nil {
		t.Fatal(err)
	}
	var now StepOutput
	if err := json.Unmarshal(old, &now); err != nil {
		t.Fatal(err)
	}
	want := ledger.Record{State: rec.State, At: rec.At, Actor: rec.Actor, Detail: rec.Detail}
	if now.Journal == nil || now.Journal.Record() != want {
		t.Fatalf("an old output reads as %+v, want %+v", now.Journal, want)
	}
	b, err := json.Marshal(now)
	if err != nil {
		t.Fatal(err)
	}
	var back before
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Journal == nil || *back.Journal != want {
		t.Fatalf("a new output reads in the old shape as %+v, want %+v", back.Journal, want)
	}
	entry, _ := json.Marshal(now.Journal)
	whole, _ := json.Marshal(want)
	if len(entry) >= len(whole)/2 {
		t.Fatalf("the entry takes %d bytes of state, the whole record %d: want under half", len(entry), len(whole))
	}
}

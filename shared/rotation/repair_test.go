package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// The fake ledger's repair queue: the same conditions as the DynamoDB one
// (shared/ledger/repair.go), over the in-memory leases.

func (f *fakeLedger) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

func (f *fakeLedger) RepairQueue(context.Context) ([]ledger.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.Lease
	for _, l := range f.lease {
		if l.Queued() {
			out = append(out, l)
		}
	}
	return out, nil
}

func (f *fakeLedger) TakeOverForRepair(_ context.Context, cur ledger.Lease, execution, actor string) (ledger.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock()
	stored := f.lease[cur.Secret]
	if stored.Fencing != cur.Fencing || stored.Seq != cur.Seq || !cur.Queued() || cur.Holder == "" ||
		(cur.State != ledger.CompensationFailed && cur.Held(now)) {
		return ledger.Lease{}, ledger.ErrNotRepairable
	}
	n := cur
	n.Fencing, n.Seq, n.Holder, n.State = cur.Fencing+1, 1, execution, ledger.RepairStarted
	n.Until = now.Add(time.Minute).UnixMilli()
	n.TakenOver = &ledger.TakenOver{Execution: cur.Holder, Fencing: cur.Fencing, Token: cur.Token, State: cur.State}
	n.Repair.Attempts++
	n.Repair.LastAt = now.UnixMilli()
	f.lease[cur.Secret] = n
	f.journal = append(f.journal, ledger.Record{State: ledger.RepairStarted, Fencing: n.Fencing, Seq: 1, Token: n.Token, Secret: n.Secret, Actor: actor})
	return n, nil
}

func (f *fakeLedger) put(cur, next ledger.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.lease[cur.Secret]; s.Fencing != cur.Fencing || s.Seq != cur.Seq {
		return ledger.ErrNotRepairable
	}
	f.lease[cur.Secret] = next
	return nil
}

func (f *fakeLedger) DeferRepair(_ context.Context, cur ledger.Lease, note string) (ledger.Lease, error) {
	n := cur
	n.Repair.Attempts++
	n.Repair.LastAt = f.clock().UnixMilli()
	n.Repair.Note = note
	return n, f.put(cur, n)
}

func (f *fakeLedger) ClearRepair(_ context.Context, cur ledger.Lease) error {
	f.mu.Lock()
	err := f.failClear
	f.failClear = nil
	f.mu.Unlock()
	if err != nil {
		return err
	}
	n := cur
	n.Repair = ledger.Repair{}
	return f.put(cur, n)
}

func (f *fakeLedger) History(_ context.Context, arn string) ([]ledger.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.Record
	for _, r := range f.journal {
		if r.Secret == arn || r.Secret == "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// failed brings the fixture to COMPENSATION_FAILED the way an outage does:
// the steps run, then the database stops answering, compensation's retries
// run out and the state machine journals COMPENSATION_FAILED. steps are the
// forward steps that ran; errClass is the error that started compensation.
func (f *fixture) failed(t *testing.T, steps []func(context.Context, Context) (StepOutput, error), errClass string) Context {
	t.Helper()
	ctx := context.Background()
	rc := f.acquire(t)
	for _, st := range steps {
		if _, err := st(ctx, rc); err != nil {
			t.Fatal(err)
		}
	}
	f.db.down = true
	in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: errClass}}
	if _, err := f.svc.Compensate(ctx, in); faults.Name(err) != faults.NameRetryable && faults.Name(err) != faults.NameCompensationFailed {
		t.Fatalf("compensation with the database down = %v", err)
	}
	in.Outcome, in.Mode = OutcomeCompensationFailed, ""
	in.CompensationError = &TaskError{Error: faults.NameRetryable}
	if _, err := f.svc.Release(ctx, in); err != nil {
		t.Fatal(err)
	}
	l := f.led.lease[arn]
	if l.State != ledger.CompensationFailed || !l.Queued() || l.Holder == "" {
		t.Fatalf("lease after the failed undo %+v, want COMPENSATION_FAILED, held and queued", l)
	}
	return rc
}

// newBackFixture is a secret left COMPENSATION_FAILED by a database that
// went away after create and set (and test, if tested) and has come back,
// with settable clocks (the setter is returned); no repair attempt is due
// yet.
func newBackFixture(t *testing.T, tested bool) (*fixture, func(time.Duration)) {
	t.Helper()
	f := newFixture(t)
	advance := f.repairClock()
	steps := []func(context.Context, Context) (StepOutput, error){f.svc.Create, f.svc.Set}
	if tested {
		steps = append(steps, f.svc.Test)
	}
	f.failed(t, steps, faults.NameRetryable)
	f.db.down = false
	return f, advance
}

// onlyMasterLogsIn leaves an alternating-users secret COMPENSATION_FAILED
// (compensation never touches the AWSCURRENT user; it failed at Secrets
// Manager), then something changes the user's password: the fake database
// keeps one password, the master's, so only the master logs in.
func (f *fixture) onlyMasterLogsIn(t *testing.T) Context {
	t.Helper()
	f.alternating("app", false)
	rc := f.acquire(t)
	f.steps(t, rc, f.svc.Create, f.svc.Set)
	f.sm.failNext["RemoveStage"] = errBoom
	in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameRetryable}}
	if _, err := f.svc.Compensate(context.Background(), in); err == nil {
		t.Fatal("compensation succeeded")
	}
	in.Mode, in.Outcome = "", OutcomeCompensationFailed
	if _, err := f.svc.Release(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	f.sm.others["arn:master"] = `{"engine":"fake","host":"db","port":1,"username":"admin","password":"Master-Only-Pw"}`
	f.db.down, f.db.password = false, "Master-Only-Pw"
	return rc
}

// repairClock makes the fixture's clocks settable; it returns a setter.
func (f *fixture) repairClock() func(time.Duration) {
	// Milliseconds, as the ledger keeps times: a boundary is exact.
	now := time.Now().Truncate(time.Millisecond)
	f.svc.Now = func() time.Time { return now }
	f.led.now = f.svc.Now
	f.svc.RepairPolicy = RepairPolicy{Backoff: time.Hour, MaxBackoff: 4 * time.Hour, AlertAfter: 24 * time.Hour}
	return func(d time.Duration) { now = now.Add(d) }
}

func (f *fixture) repair(t *testing.T) RepairResult {
	t.Helper()
	out, err := f.svc.Repair(context.Background(), RepairInput{})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if len(out.Results) != 1 {
		t.Fatalf("results %+v, want one", out.Results)
	}
	return out.Results[0]
}

func (f *fixture) eventsOf(detailType string) []events.Event {
	f.bus.mu.Lock()
	defer f.bus.mu.Unlock()
	var out []events.Event
	for _, e := range f.bus.events {
		if e.DetailType == detailType {
			out = append(out, e)
		}
	}
	return out
}

// Every decision of the repair, from what logs in now.
func TestRepairDecides(t *testing.T) {
	type steps = []func(context.Context, Context) (StepOutput, error)
	for _, tt := range []struct {
		name string
		// setup brings the fixture to COMPENSATION_FAILED and then changes
		// the world as the case needs.
		setup       func(t *testing.T, f *fixture) Context
		wantOutcome string
		wantState   ledger.State
		// wantCurrent: "token", "orig" (v1) or another version id.
		wantCurrent string
		wantDB      string // "new", "orig" or a literal password
		wantEvent   string
	}{
		{
			name: "database on the new password, which passed its test: roll forward",
			setup: func(t *testing.T, f *fixture) Context {
				rc := f.failed(t, steps{f.svc.Create, f.svc.Set, f.svc.Test}, faults.NameRetryable)
				f.db.down = false
				return rc
			},
			wantOutcome: RepairRolledForward, wantState: ledger.Finished, wantCurrent: "token", wantDB: "new", wantEvent: events.RotationRepaired,
		},
		{
			name: "database on the new password, never tested: revert it",
			setup: func(t *testing.T, f *fixture) Context {
				rc := f.failed(t, steps{f.svc.Create, f.svc.Set}, faults.NameRetryable)
				f.db.down = false
				return rc
			},
			wantOutcome: RepairReverted, wantState: ledger.RolledBack, wantCurrent: "orig", wantDB: "orig", wantEvent: events.RotationRepaired,
		},
		{
			name: "database still on AWSCURRENT (the change never landed): clean up",
			setup: func(t *testing.T, f *fixture) Context {
				rc := f.failed(t, steps{f.svc.Create, f.svc.Set}, faults.NameRetryable)
				f.db.down, f.db.password = false, original
				return rc
			},
			wantOutcome: RepairCleanedUp, wantState: ledger.RolledBack, wantCurrent: "orig", wantDB: "orig", wantEvent: events.RotationRepaired,
		},
		{
			name: "finish had moved AWSCURRENT and the bake failed it: move back and revert",
			setup: func(t *testing.T, f *fixture) Context {
				f.bake = true // compensation after finish: a failed bake, or a failed release after it
				rc := f.acquire(t)
				ctx := context.Background()
				for _, st := range (steps{f.svc.Create, f.svc.Set, f.svc.Test, f.svc.Finish}) {
					if _, err := st(ctx, rc); err != nil {
						t.Fatal(err)
					}
				}
				// The bake failed; the undo could move nothing (Secrets
				// Manager and the database both down).
				f.db.down = true
				f.sm.failNext["MoveStage"] = errBoom
				in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}
				if _, err := f.svc.Compensate(ctx, in); err == nil {
					t.Fatal("compensation succeeded")
				}
				in.Mode, in.Outcome = "", OutcomeCompensationFailed
				if _, err := f.svc.Release(ctx, in); err != nil {
					t.Fatal(err)
				}
				if f.sm.holder(secretstore.Current) != token {
					t.Fatal("setup: AWSCURRENT moved back")
				}
				f.db.down = false
				return rc
			},
			wantOutcome: RepairReverted, wantState: ledger.RolledBack, wantCurrent: "orig", wantDB: "orig", wantEvent: events.RotationRepaired,
		},
		{
			name: "finish had moved AWSCURRENT and release failed: keep it",
			setup: func(t *testing.T, f *fixture) Context {
				f.bake = true // compensation after finish: a failed bake, or a failed release after it
				rc := f.acquire(t)
				ctx := context.Background()
				for _, st := range (steps{f.svc.Create, f.svc.Set, f.svc.Test, f.svc.Finish}) {
					if _, err := st(ctx, rc); err != nil {
						t.Fatal(err)
					}
				}
				f.db.down = true
				f.sm.failNext["MoveStage"] = errBoom
				in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameRetryable}}
				if _, err := f.svc.Compensate(ctx, in); err == nil {
					t.Fatal("compensation succeeded")
				}
				in.Mode, in.Outcome = "", OutcomeCompensationFailed
				if _, err := f.svc.Release(ctx, in); err != nil {
					t.Fatal(err)
				}
				f.db.down = false
				return rc
			},
			wantOutcome: RepairRolledForward, wantState: ledger.Finished, wantCurrent: "token", wantDB: "new", wantEvent: events.RotationRepaired,
		},
		{
			// The revert landed (its answer was lost, or a person ran it):
			// the version passed its test, but rolling forward would put a
			// password the database no longer accepts into AWSCURRENT.
			name: "database set back after the test passed: clean up, never roll forward",
			setup: func(t *testing.T, f *fixture) Context {
				rc := f.failed(t, steps{f.svc.Create, f.svc.Set, f.svc.Test}, faults.NameRetryable)
				f.db.down, f.db.password = false, original
				return rc
			},
			wantOutcome: RepairCleanedUp, wantState: ledger.RolledBack, wantCurrent: "orig", wantDB: "orig", wantEvent: events.RotationRepaired,
		},
		{
			// The bake failed it after finish; the database went back but
			// AWSCURRENT could not: only the label moves back.
			name: "finish had moved AWSCURRENT, the database is back on the previous password: move AWSCURRENT back",
			setup: func(t *testing.T, f *fixture) Context {
				f.bake = true
				rc := f.acquire(t)
				f.steps(t, rc, f.svc.Create, f.svc.Set, f.svc.Test, f.svc.Finish)
				f.db.down = true
				f.sm.failNext["MoveStage"] = errBoom
				in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameTestFailed}}
				if _, err := f.svc.Compensate(context.Background(), in); err == nil {
					t.Fatal("compensation succeeded")
				}
				in.Mode, in.Outcome = "", OutcomeCompensationFailed
				if _, err := f.svc.Release(context.Background(), in); err != nil {
					t.Fatal(err)
				}
				f.db.down, f.db.password = false, original
				return rc
			},
			wantOutcome: RepairCleanedUp, wantState: ledger.RolledBack, wantCurrent: "orig", wantDB: "orig", wantEvent: events.RotationRepaired,
		},
		{
			// Alternating users: neither user logs in (the fake database
			// keeps one password: the master's), so only the master can set
			// the AWSCURRENT user's password back.
			name:        "alternating users, only the master logs in: the master sets AWSCURRENT's user back",
			setup:       func(t *testing.T, f *fixture) Context { return f.onlyMasterLogsIn(t) },
			wantOutcome: RepairReverted, wantState: ledger.RolledBack, wantCurrent: "orig", wantDB: "orig", wantEvent: events.RotationRepaired,
		},
		{
			name: "nothing logs in: a person is needed, nothing changes",
			setup: func(t *testing.T, f *fixture) Context {
				rc := f.failed(t, steps{f.svc.Create, f.svc.Set}, faults.NameRetryable)
				f.db.down, f.db.password = false, "Someone-Else-Set-This"
				return rc
			},
			wantOutcome: RepairNeedsPerson, wantState: ledger.CompensationFailed, wantCurrent: "orig", wantDB: "Someone-Else-Set-This", wantEvent: events.RepairNeeded,
		},
		{
			name: "another actor's AWSCURRENT logs in: only our AWSPENDING goes",
			setup: func(t *testing.T, f *fixture) Context {
				rc := f.failed(t, steps{f.svc.Create, f.svc.Set}, faults.NameRetryable)
				f.sm.mu.Lock()
				f.sm.values["v9-foreign"] = `{"engine":"fake","host":"db","port":1,"username":"app","password":"Foreign-Password"}`
				f.sm.move(secretstore.Current, "v9-foreign")
				f.sm.mu.Unlock()
				f.db.down, f.db.password = false, "Foreign-Password"
				return rc
			},
			wantOutcome: RepairCleanedUp, wantState: ledger.Abandoned, wantCurrent: "v9-foreign", wantDB: "Foreign-Password", wantEvent: events.RotationRepaired,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			advance := f.repairClock()
			rc := tt.setup(t, f)
			newPW := ""
			if v, err := f.sm.Value(context.Background(), arn, token, ""); err == nil {
				newPW = passwordOf(v)
			}
			setsBefore := f.db.sets
			advance(time.Hour)
			res := f.repair(t)
			if res.Outcome != tt.wantOutcome || res.State != string(tt.wantState) || res.SecretArn != arn || res.VersionId != rc.ClientRequestToken {
				t.Fatalf("result %+v, want %s / %s", res, tt.wantOutcome, tt.wantState)
			}
			l := f.led.lease[arn]
			if l.State != tt.wantState {
				t.Errorf("ledger %s, want %s", l.State, tt.wantState)
			}
			if person := tt.wantState == ledger.CompensationFailed; person != (l.Holder != "") || person != l.Queued() {
				t.Errorf("lease holder %q queued %v after %s", l.Holder, l.Queued(), tt.wantState)
			}
			want := map[string]string{"token": token, "orig": v1}[tt.wantCurrent]
			if want == "" {
				want = tt.wantCurrent
			}
			if cur := f.sm.holder(secretstore.Current); cur != want {
				t.Errorf("AWSCURRENT %s, want %s", cur, want)
			}
			if tt.wantState != ledger.CompensationFailed && f.sm.holder(secretstore.Pending) != "" {
				t.Errorf("AWSPENDING left on %s", f.sm.holder(secretstore.Pending))
			}
			wantDB := map[string]string{"new": newPW, "orig": original}[tt.wantDB]
			if wantDB == "" {
				wantDB = tt.wantDB
			}
			if f.db.password != wantDB {
				t.Errorf("database password is not the %s one", tt.wantDB)
			}
			if tt.wantOutcome == RepairCleanedUp && f.db.sets != setsBefore {
				t.Errorf("a clean-up changed the password %d times", f.db.sets-setsBefore)
			}
			// The event names the rotation that failed, by its execution.
			if ev := f.eventsOf(tt.wantEvent); len(ev) != 1 || ev[0].Detail.SecretARN != arn || ev[0].Detail.VersionID != token || ev[0].Detail.ExecutionARN != execution {
				t.Fatalf("%q events %+v (all: %s)", tt.wantEvent, ev, f.bus.types())
			}
			if tt.wantEvent == events.RepairNeeded {
				if e := f.eventsOf(events.RepairNeeded)[0]; e.Detail.Severity != "critical" || !strings.Contains(e.Detail.Action, "administrator") {
					t.Errorf("repair needed event %+v", e.Detail)
				}
				return
			}
			if f.eventsOf(events.RepairNeeded) != nil {
				t.Errorf("a person was called: %s", f.bus.types())
			}
			// Journaled under the repair's own, newer fencing token.
			var repairRecs []ledger.State
			for _, r := range f.led.journal {
				if r.Fencing == rc.Fencing+1 {
					repairRecs = append(repairRecs, r.State)
				}
			}
			if len(repairRecs) < 2 || repairRecs[0] != ledger.RepairStarted || repairRecs[len(repairRecs)-1] != tt.wantState {
				t.Errorf("the repair journaled %v", repairRecs)
			}
			// Out of the queue, and a second run finds nothing.
			if out, err := f.svc.Repair(context.Background(), RepairInput{}); err != nil || len(out.Results) != 0 {
				t.Errorf("second run %+v, %v", out, err)
			}
		})
	}
}

// The database still does not answer: nothing changes, the attempt is
// counted and the next one is due a doubled backoff later; after
// AlertAfter a person is called; then the database answers and one run
// heals it.
func TestRepairWaitsForTheDatabase(t *testing.T) {
	f := newFixture(t)
	advance := f.repairClock()
	f.failed(t, []func(context.Context, Context) (StepOutput, error){f.svc.Create, f.svc.Set}, faults.NameRetryable)
	dbPW := f.db.password
	for i, tt := range []struct {
		after   time.Duration
		outcome string
		next    time.Duration // after now
	}{
		{30 * time.Minute, RepairNotDue, 30 * time.Minute},
		{30 * time.Minute, RepairDeferred, 2 * time.Hour},
		{time.Hour, RepairNotDue, time.Hour},
		{time.Hour, RepairDeferred, 4 * time.Hour},
		{4 * time.Hour, RepairDeferred, 4 * time.Hour}, // MaxBackoff
		{4 * time.Hour, RepairDeferred, 4 * time.Hour},
		{4 * time.Hour, RepairDeferred, 4 * time.Hour},
		{4 * time.Hour, RepairDeferred, 4 * time.Hour},
		{4 * time.Hour, RepairDeferred, 4 * time.Hour},    // 23 h since the failure
		{4 * time.Hour, RepairNeedsPerson, 4 * time.Hour}, // 27 h: AlertAfter is 24 h
	} {
		advance(tt.after)
		res := f.repair(t)
		if res.Outcome != tt.outcome || res.NextAttempt != f.svc.Now().Add(tt.next).UTC().Format(time.RFC3339) {
			t.Fatalf("run %d: %+v, want %s with the next attempt in %s", i, res, tt.outcome, tt.next)
		}
		if l := f.led.lease[arn]; l.State != ledger.CompensationFailed || l.Holder == "" || f.sm.holder(secretstore.Pending) != token || f.db.password != dbPW {
			t.Fatalf("run %d changed something: lease %s %q", i, l.State, l.Holder)
		}
	}
	if ev := f.eventsOf(events.RepairNeeded); len(ev) != 1 || !strings.Contains(ev[0].Detail.Action, "reachable") {
		t.Fatalf("repair needed events %+v", ev)
	}
	f.db.down = false
	advance(4 * time.Hour)
	if res := f.repair(t); res.Outcome != RepairReverted || res.State != string(ledger.RolledBack) {
		t.Fatalf("after the database returned: %+v", res)
	}
	if f.db.password != original || f.led.lease[arn].Holder != "" {
		t.Fatal("not healed")
	}
}

func TestRepairPolicyDelay(t *testing.T) {
	for _, tt := range []struct {
		p        RepairPolicy
		attempts int
		want     time.Duration
	}{
		{RepairPolicy{}, 0, time.Hour},
		{RepairPolicy{}, 1, 2 * time.Hour},
		{RepairPolicy{}, 4, 16 * time.Hour},
		{RepairPolicy{}, 5, 24 * time.Hour},
		{RepairPolicy{}, 500, 24 * time.Hour},
		{RepairPolicy{Backoff: 2 * time.Second, MaxBackoff: 5 * time.Second}, 0, 2 * time.Second},
		{RepairPolicy{Backoff: 2 * time.Second, MaxBackoff: 5 * time.Second}, 2, 5 * time.Second},
		{RepairPolicy{Backoff: time.Hour, MaxBackoff: time.Minute}, 3, time.Hour},
	} {
		if got := tt.p.Delay(tt.attempts); got != tt.want {
			t.Errorf("%+v.Delay(%d) = %s, want %s", tt.p, tt.attempts, got, tt.want)
		}
	}
}

// An unset (zero or negative) policy field means its default: a zero
// AlertAfter must not call a person at the first failed attempt.
func TestRepairPolicyDefaults(t *testing.T) {
	for _, p := range []RepairPolicy{{}, {Backoff: -1, MaxBackoff: -1, AlertAfter: -1}} {
		got := p.orDefaults()
		if got.Backoff != DefaultRepairBackoff || got.MaxBackoff != DefaultRepairMaxBackoff || got.AlertAfter != DefaultRepairAlertAfter {
			t.Errorf("%+v.orDefaults() = %+v, want the defaults", p, got)
		}
	}
}

// Two repair runs that read the same lease: one acts, the other skips.
func TestRepairTakesTheLeaseOverOnce(t *testing.T) {
	f, advance := newBackFixture(t, false)
	advance(time.Hour)
	stale := f.led.lease[arn]
	res := f.repair(t)
	if res.Outcome != RepairReverted {
		t.Fatalf("first run %+v", res)
	}
	if _, err := f.led.TakeOverForRepair(context.Background(), stale, "late-repair", "repair"); !errors.Is(err, ledger.ErrNotRepairable) {
		t.Fatalf("a second takeover from the same read = %v", err)
	}
	// The failed execution itself is fenced out.
	if err := f.led.Append(context.Background(), &stale, ledger.Record{State: ledger.RolledBack}, ledger.Change{Release: true}); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("the failed execution wrote after the repair: %v", err)
	}
}

// A failed PutEvents leaves the repaired secret queued; the next run
// publishes the event and only then takes it out of the queue.
func TestRepairAnnouncesAtLeastOnce(t *testing.T) {
	f, advance := newBackFixture(t, false)
	advance(time.Hour)
	f.bus.fail = 1
	out, err := f.svc.Repair(context.Background(), RepairInput{})
	if faults.Name(err) != faults.NameRetryable || len(out.Results) != 1 || out.Results[0].State != string(ledger.RolledBack) {
		t.Fatalf("run with PutEvents failing: %+v, %v", out, err)
	}
	if l := f.led.lease[arn]; !l.Queued() || l.Holder != "" {
		t.Fatalf("lease %+v: want released and still queued", l)
	}
	res := f.repair(t)
	if res.Outcome != RepairAnnounced || len(f.eventsOf(events.RotationRepaired)) != 1 || f.led.lease[arn].Queued() {
		t.Fatalf("second run %+v, events %s", res, f.bus.types())
	}
}

// Announced, but the queue entry could not be cleared: the run says so
// (RetryableError, so it runs again soon) and the next run clears it,
// announcing again (at least once).
func TestRepairThatCannotLeaveTheQueue(t *testing.T) {
	f, advance := newBackFixture(t, false)
	advance(time.Hour)
	f.led.failClear = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	out, err := f.svc.Repair(context.Background(), RepairInput{})
	if faults.Name(err) != faults.NameRetryable || len(out.Results) != 1 || out.Results[0].State != string(ledger.RolledBack) {
		t.Fatalf("run with ClearRepair failing: %+v, %v", out, err)
	}
	if !f.led.lease[arn].Queued() {
		t.Fatal("not queued after a failed ClearRepair")
	}
	if res := f.repair(t); res.Outcome != RepairAnnounced || f.led.lease[arn].Queued() || len(f.eventsOf(events.RotationRepaired)) != 2 {
		t.Fatalf("second run %+v, events %s", res, f.bus.types())
	}
}

// A secret scheduled for deletion cannot be read: the repair waits (the
// Compensation Failed alert said to restore it) and heals it once
// restored. A secret deleted for good ends the lease and calls a person.
func TestRepairOfADeletedSecret(t *testing.T) {
	t.Run("scheduled for deletion, then restored", func(t *testing.T) {
		f := newFixture(t)
		advance := f.repairClock()
		f.acquire(t)
		f.failedDeleted(t)
		if ev := f.eventsOf(events.CompensationFailed); len(ev) != 1 || !strings.Contains(ev[0].Detail.Action, "restore-secret") {
			t.Fatalf("compensation failed events %+v", ev)
		}
		advance(time.Hour)
		before := f.led.lease[arn]
		if res := f.repair(t); res.Outcome != RepairDeferred || !strings.Contains(res.Reason, "scheduled for deletion") {
			t.Fatalf("repair of a deleted secret: %+v", res)
		}
		// Nothing taken over, nothing journaled: only the attempt counted.
		if l := f.led.lease[arn]; l.Fencing != before.Fencing || l.Seq != before.Seq || l.Repair.Attempts != 1 {
			t.Fatalf("lease after deferring %+v (before %+v)", l, before)
		}
		f.sm.deleted = false // RestoreSecret
		advance(2 * time.Hour)
		if res := f.repair(t); res.Outcome != RepairCleanedUp || res.State != string(ledger.RolledBack) {
			t.Fatalf("repair after the restore: %+v", res)
		}
		if f.db.password != original || f.sm.holder(secretstore.Pending) != "" {
			t.Fatal("not healed")
		}
	})
	t.Run("deleted without recovery", func(t *testing.T) {
		f := newFixture(t)
		advance := f.repairClock()
		f.acquire(t)
		f.failedDeleted(t)
		advance(time.Hour)
		// The first run's event is not published: the next run, which
		// finds the lease already ABANDONED, must still call a person.
		f.sm.failNext["Describe"] = &types.ResourceNotFoundException{}
		f.bus.fail = 1
		if _, err := f.svc.Repair(context.Background(), RepairInput{}); faults.Name(err) != faults.NameRetryable {
			t.Fatalf("run with PutEvents failing: %v", err)
		}
		f.sm.failNext["Describe"] = &types.ResourceNotFoundException{}
		res := f.repair(t)
		if res.Outcome != RepairNeedsPerson || res.State != string(ledger.Abandoned) {
			t.Fatalf("repair of a force-deleted secret: %+v", res)
		}
		ev := f.eventsOf(events.RepairNeeded)
		if len(ev) != 1 || !strings.Contains(ev[0].Detail.Action, "ForceDeleteWithoutRecovery") || ev[0].Detail.Severity != "critical" {
			t.Fatalf("repair needed events %+v", ev)
		}
		if l := f.led.lease[arn]; l.Holder != "" || l.Queued() {
			t.Fatalf("lease %+v: want released and out of the queue", l)
		}
	})
}

// failedDeleted plays a secret scheduled for deletion after set: the next
// step's read fails, compensation cannot relabel it and ends
// COMPENSATION_FAILED with the restore advice.
func (f *fixture) failedDeleted(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	rc := Context{SecretId: "app/db", SecretArn: arn, ClientRequestToken: token, ExecutionArn: execution, Fencing: f.led.lease[arn].Fencing, PreviousVersionId: v1}
	for _, st := range []func(context.Context, Context) (StepOutput, error){f.svc.Create, f.svc.Set} {
		if _, err := st(ctx, rc); err != nil {
			t.Fatal(err)
		}
	}
	f.sm.deleted = true
	in := CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameInput}}
	out, err := f.svc.Compensate(ctx, in)
	if faults.Name(err) != faults.NameCompensationFailed || !strings.Contains(err.Error(), "RestoreSecret") {
		t.Fatalf("compensation of a deleted secret = %v", err)
	}
	// The fake still reads values of a deleted secret, so the target went
	// back (Secrets Manager itself refuses to: see the integration test).
	if !out.TargetReverted || f.db.password != original {
		t.Fatalf("the target was not set back although AWSCURRENT could be read: %+v", out)
	}
	in.Mode, in.Outcome = "", OutcomeCompensationFailed
	if _, err := f.svc.Release(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Split(f.bus.types(), ","), events.CompensationFailed) {
		t.Fatalf("events %s", f.bus.types())
	}
}

// A value that cannot be read now (GetSecretValue throttled) is no answer,
// not "no such value": the repair waits and calls no one, then heals.
func TestRepairWaitsWhenAValueCannotBeRead(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version string // whose read is throttled
		dbOnNew bool   // else the revert landed and only the clean-up is left
		healed  string
	}{
		{"AWSCURRENT's value", v1, false, RepairCleanedUp},
		{"the new version's value", token, true, RepairReverted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, advance := newBackFixture(t, false)
			if !tt.dbOnNew {
				f.db.password = original
			}
			advance(time.Hour)
			f.sm.failNext["Value:"+tt.version] = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
			if res := f.repair(t); res.Outcome != RepairDeferred || res.State != string(ledger.CompensationFailed) {
				t.Fatalf("repair with the read throttled: %+v", res)
			}
			if ev := f.eventsOf(events.RepairNeeded); ev != nil {
				t.Fatalf("a person was called for a throttled read: %+v", ev)
			}
			advance(2 * time.Hour)
			if res := f.repair(t); res.Outcome != tt.healed || res.State != string(ledger.RolledBack) {
				t.Fatalf("next run: %+v", res)
			}
		})
	}
}

// A person is called once the secret has waited AlertAfter, not a moment
// later (times in milliseconds, as the ledger keeps them).
func TestRepairCallsAPersonAtAlertAfter(t *testing.T) {
	f := newFixture(t)
	advance := f.repairClock()
	f.svc.RepairPolicy = RepairPolicy{Backoff: 12 * time.Hour, MaxBackoff: 12 * time.Hour, AlertAfter: 24 * time.Hour}
	f.failed(t, []func(context.Context, Context) (StepOutput, error){f.svc.Create, f.svc.Set}, faults.NameRetryable)
	for i, want := range []string{RepairDeferred, RepairNeedsPerson} { // at 12 h, at 24 h
		advance(12 * time.Hour)
		if res := f.repair(t); res.Outcome != want {
			t.Fatalf("run %d: %+v, want %s", i, res, want)
		}
	}
	if ev := f.eventsOf(events.RepairNeeded); len(ev) != 1 || ev[0].Detail.DurationMs != (24*time.Hour).Milliseconds() {
		t.Fatalf("repair needed events %+v", ev)
	}
}

// Roll forward whose FINISHED record is not written: the run does not
// claim the repair (no event, the lease stays queued under the repair's
// token) and the next run finishes it.
func TestRepairRollForwardThatCannotJournal(t *testing.T) {
	f, advance := newBackFixture(t, true)
	advance(time.Hour)
	f.led.failOn = map[ledger.State]error{ledger.Finished: errBoom}
	res := f.repair(t)
	if res.Outcome != RepairDeferred || res.State != string(ledger.CompensationFailed) {
		t.Fatalf("repair whose FINISHED write failed: %+v", res)
	}
	if l := f.led.lease[arn]; !l.Queued() || l.Holder == "" || f.eventsOf(events.RotationRepaired) != nil {
		t.Fatalf("lease %+v, events %s: want held and queued, nothing announced", l, f.bus.types())
	}
	advance(2 * time.Hour)
	if res := f.repair(t); res.Outcome != RepairRolledForward || res.State != string(ledger.Finished) {
		t.Fatalf("next run: %+v", res)
	}
	if f.sm.holder(secretstore.Current) != token || len(f.eventsOf(events.RotationRepaired)) != 1 {
		t.Fatalf("AWSCURRENT on %s, events %s", f.sm.holder(secretstore.Current), f.bus.types())
	}
}

// A new rotation takes the lease the moment the repair releases it: the
// repair announces its own outcome, and leaves the new lease alone.
func TestRepairAnnouncesItsOwnRotation(t *testing.T) {
	f, advance := newBackFixture(t, false)
	advance(time.Hour)
	const next = "22222222-3333-4444-5555-666666666666"
	var newer ledger.Lease
	f.led.afterRelease = func() {
		var err error
		if newer, err = f.led.Acquire(context.Background(), ledger.AcquireRequest{Secret: arn, Execution: execution + "-next", Token: next, PreviousVersion: v1}); err != nil {
			t.Errorf("the next rotation's acquire: %v", err)
		}
	}
	res := f.repair(t)
	if res.Outcome != RepairReverted || res.State != string(ledger.RolledBack) || res.VersionId != token {
		t.Fatalf("repair: %+v", res)
	}
	ev := f.eventsOf(events.RotationRepaired)
	if len(ev) != 1 || ev[0].Detail.VersionID != token || !strings.Contains(ev[0].Detail.Outcome, string(ledger.RolledBack)) {
		t.Fatalf("events %+v", ev)
	}
	if l := f.led.lease[arn]; l.Holder != newer.Holder || l.Token != next || l.Fencing != newer.Fencing || l.Seq != newer.Seq {
		t.Fatalf("the next rotation's lease %+v was changed (acquired as %+v)", l, newer)
	}
}

// IgnoreBackoff (an operator who knows the database is back) attempts a
// queued secret at once; without it the same run finds it not due.
func TestRepairIgnoreBackoff(t *testing.T) {
	f, _ := newBackFixture(t, false)
	if res := f.repair(t); res.Outcome != RepairNotDue {
		t.Fatalf("run before the backoff: %+v", res)
	}
	out, err := f.svc.Repair(context.Background(), RepairInput{IgnoreBackoff: true})
	if err != nil || len(out.Results) != 1 || out.Results[0].Outcome != RepairReverted || out.Results[0].State != string(ledger.RolledBack) {
		t.Fatalf("run with IgnoreBackoff: %+v, %v", out, err)
	}
}

// A repair that died after taking the lease over is resumed once that
// lease expires, without waiting for the backoff its attempt started.
func TestRepairResumesADeadRepair(t *testing.T) {
	f, advance := newBackFixture(t, false)
	advance(time.Hour)
	if _, err := f.led.TakeOverForRepair(context.Background(), f.led.lease[arn], "secretsaga-repair/dead", "repair"); err != nil {
		t.Fatal(err)
	}
	if res := f.repair(t); res.Outcome != RepairSkipped { // its lease is live
		t.Fatalf("run while the dead repair's lease is live: %+v", res)
	}
	advance(2 * time.Minute)
	if res := f.repair(t); res.Outcome != RepairReverted || res.State != string(ledger.RolledBack) {
		t.Fatalf("run after the dead repair's lease expired: %+v", res)
	}
}

// The master's change is trusted only once the user logs in with it: a set
// that did not take leaves the secret as it was, and a later run finds the
// user logging in and cleans up.
func TestRepairMasterSetIsVerified(t *testing.T) {
	f := newFixture(t)
	advance := f.repairClock()
	f.onlyMasterLogsIn(t)
	f.db.failVerifyAfterSet = fmt.Errorf("login as app: %w", target.ErrAuthFailed)
	advance(time.Hour)
	if res := f.repair(t); res.Outcome != RepairDeferred || res.State != string(ledger.CompensationFailed) {
		t.Fatalf("repair whose master set did not take: %+v", res)
	}
	if f.sm.holder(secretstore.Pending) != token || f.eventsOf(events.RotationRepaired) != nil {
		t.Fatalf("AWSPENDING on %q, events %s: want nothing cleaned up or announced", f.sm.holder(secretstore.Pending), f.bus.types())
	}
	advance(2 * time.Hour)
	if res := f.repair(t); res.Outcome != RepairCleanedUp || res.State != string(ledger.RolledBack) {
		t.Fatalf("next run: %+v", res)
	}
}

// A repair slower than its lease (a minute) loses it to the next run: the
// slow one then fails, and reports the secret skipped (not ours any more),
// writing nothing over the newer repair's lease.
func TestRepairThatLostItsLease(t *testing.T) {
	f, advance := newBackFixture(t, false)
	advance(time.Hour)
	var other ledger.Lease
	takeOver := func() { // at the slow repair's first read after its takeover
		advance(2 * time.Minute)
		var err error
		if other, err = f.led.TakeOverForRepair(context.Background(), f.led.lease[arn], "secretsaga-repair/next", "repair"); err != nil {
			t.Errorf("the next run's takeover: %v", err)
		}
		f.db.failSet = fmt.Errorf("dial: %w", target.ErrUnreachable)
	}
	f.sm.afterDescribe = func() { f.sm.afterDescribe = takeOver } // the first is assess's
	out, err := f.svc.Repair(context.Background(), RepairInput{})
	if err != nil || len(out.Results) != 1 || out.Results[0].Outcome != RepairSkipped {
		t.Fatalf("the slow repair: %+v, %v", out, err)
	}
	if l := f.led.lease[arn]; l.Holder != other.Holder || l.Fencing != other.Fencing || l.Seq != other.Seq {
		t.Fatalf("lease %+v, want the next run's %+v untouched", l, other)
	}
}

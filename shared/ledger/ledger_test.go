package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Unix(1_800_000_000, 0)

func newTestLedger(db *fakeDB, c *clock, o Options) *Ledger {
	o.Now = c.now
	if o.LeaseDuration == 0 {
		o.LeaseDuration = time.Minute
	}
	return New(db, "ledger", o)
}

func history(t *testing.T, l *Ledger, secret string) string {
	t.Helper()
	recs, err := l.History(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprintf("%d/%d/%s/%s", r.Fencing, r.Seq, r.Execution, r.State))
	}
	return strings.Join(s, " ")
}

func TestAcquireAppendRelease(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	if l.Table() != "ledger" {
		t.Fatal(l.Table())
	}
	if _, ok, err := l.Get(ctx, "s"); ok || err != nil {
		t.Fatalf("a secret never rotated has a lease: %v %v", ok, err)
	}
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta", Actor: "acq", PreviousVersion: "v1", PreviousPrevious: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	want := Lease{PK: "SECRET#s", SK: "LEASE", Secret: "s", Fencing: 1, Seq: 1, Holder: "A", Until: t0.Add(time.Minute).UnixMilli(),
		State: Started, Token: "ta", PreviousVersion: "v1", PreviousPrevious: "v0", StartedAt: t0.UnixMilli(), UpdatedAt: t0.UnixMilli()}
	if a != want {
		t.Fatalf("lease = %+v\nwant    %+v", a, want)
	}
	if got, ok, err := l.Get(ctx, "s"); !ok || err != nil || got != want {
		t.Fatalf("stored lease = %+v %v %v", got, ok, err)
	}
	// A retried acquire of the same execution and token returns it.
	if again, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"}); err != nil || again != a {
		t.Fatalf("re-acquire = %+v, %v", again, err)
	}
	// Anyone else is refused while it is held, told by whom and until when.
	var he *HeldError
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb"}); !errors.As(err, &he) ||
		he.Holder != "A" || he.State != Started || !he.Until.Equal(t0.Add(time.Minute)) || !strings.Contains(he.Error(), "until") {
		t.Fatalf("acquire while held = %v", err)
	}
	// The same execution with another token is someone else too.
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "other"}); !errors.As(err, &he) {
		t.Fatalf("acquire with another token = %v", err)
	}

	c.t = t0.Add(10 * time.Second)
	if err := l.Append(ctx, &a, Record{State: SetStarted, Actor: "set"}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	if a.Seq != 2 || a.State != SetStarted || !a.SetMayHaveRun || a.FinishMayHaveRun || a.Until != c.t.Add(time.Minute).UnixMilli() || a.UpdatedAt != c.t.UnixMilli() {
		t.Fatalf("after SET_STARTED: %+v", a)
	}
	// The flags stick: later records do not clear them.
	if err := l.Append(ctx, &a, Record{State: FinishStarted}, Change{FinishMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: FinishDone}, Change{}); err != nil {
		t.Fatal(err)
	}
	if !a.SetMayHaveRun || !a.FinishMayHaveRun || a.Seq != 4 {
		t.Fatalf("flags lost: %+v", a)
	}
	if err := l.Append(ctx, &a, Record{State: Finished}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if a.Holder != "" || a.Until != 0 || a.Held(c.t) || a.Unfinished() {
		t.Fatalf("released lease = %+v", a)
	}
	if got := history(t, l, "s"); got != "1/1/A/STARTED 1/2/A/SET_STARTED 1/3/A/FINISH_STARTED 1/4/A/FINISH_DONE 1/5/A/FINISHED" {
		t.Fatalf("history = %s", got)
	}
	// A released lease is taken at once, with the next fencing token.
	b, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb", PreviousVersion: "ta"})
	if err != nil || b.Fencing != 2 || b.Seq != 1 || b.TakenOver != nil {
		t.Fatalf("acquire after release = %+v, %v", b, err)
	}
}

func TestJournalRecordsAndRetention(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{Retention: 48 * time.Hour})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta", Actor: "acq", PreviousVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: RolledBack, Actor: "comp", ErrorClass: "TestFailedError", Detail: "d", PreviousVersion: "v1"}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	recs, err := l.History(ctx, "s")
	if err != nil || len(recs) != 2 {
		t.Fatalf("history = %+v, %v", recs, err)
	}
	r := recs[1]
	want := Record{PK: "SECRET#s", SK: "J#000000000001#0002", Secret: "s", Fencing: 1, Seq: 2, State: RolledBack, At: t0.UnixMilli(),
		Actor: "comp", Execution: "A", Token: "ta", PreviousVersion: "v1", ErrorClass: "TestFailedError", Detail: "d",
		ExpiresAt: t0.Add(48 * time.Hour).Unix()}
	if r != want {
		t.Fatalf("record = %+v\nwant     %+v", r, want)
	}
	if !r.Time().Equal(t0) || recs[0].Actor != "acq" || recs[0].SK != "J#000000000001#0001" {
		t.Fatalf("first record %+v", recs[0])
	}
	// The lease item never expires: losing the fencing counter would let
	// an old token be issued again.
	if _, ok := db.items["SECRET#s\x00LEASE"]["expiresAt"]; ok {
		t.Fatal("the lease item has a TTL")
	}
	// Without retention, records do not expire either.
	l2 := newTestLedger(db, c, Options{})
	b, err := l2.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "A", Token: "ta"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.items["SECRET#s2\x00"+journalSK(b.Fencing, 1)]["expiresAt"]; ok {
		t.Fatal("a record expires without retention")
	}
}

func TestExpiryTakeoverAndFencing(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta", PreviousVersion: "v1", PreviousPrevious: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	// Held up to, not including, its expiry.
	c.t = time.UnixMilli(a.Until - 1)
	if !a.Held(c.t) {
		t.Fatal("not held just before expiry")
	}
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb"}); err == nil {
		t.Fatal("taken over before expiry")
	}
	c.t = time.UnixMilli(a.Until)
	if a.Held(c.t) || !a.Unfinished() {
		t.Fatalf("at expiry: held %v unfinished %v", a.Held(c.t), a.Unfinished())
	}
	b, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb", PreviousVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	wantTO := TakenOver{Execution: "A", Fencing: 1, Token: "ta", State: SetStarted, PreviousVersion: "v1", PreviousPrevious: "v0", SetMayHaveRun: true}
	if b.Fencing != 2 || b.TakenOver == nil || *b.TakenOver != wantTO {
		t.Fatalf("takeover = %+v (taken over %+v)", b, b.TakenOver)
	}
	// A retried acquire of B finds what it took over.
	if again, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb"}); err != nil || again.TakenOver == nil || *again.TakenOver != wantTO {
		t.Fatalf("re-acquire after takeover = %+v, %v", again, err)
	}
	// A is fenced: nothing it writes lands, and Check says so.
	if err := l.Append(ctx, &a, Record{State: SetDone}, Change{}); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie append = %v", err)
	}
	if _, err := l.Check(ctx, "s", a.Fencing, "A"); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie check = %v", err)
	}
	if got, err := l.Check(ctx, "s", b.Fencing, "B"); err != nil || got.Holder != "B" {
		t.Fatalf("holder check = %+v, %v", got, err)
	}
	if _, err := l.Check(ctx, "s", b.Fencing, "A"); !errors.Is(err, ErrFenced) {
		t.Fatalf("check with the right token and the wrong holder = %v", err)
	}
	if _, err := l.Check(ctx, "s", b.Fencing-1, "B"); !errors.Is(err, ErrFenced) {
		t.Fatalf("check with the right holder and an old token = %v", err)
	}
	if _, err := l.Check(ctx, "never", 1, "A"); !errors.Is(err, ErrFenced) {
		t.Fatalf("check of a secret without a lease = %v", err)
	}
	if got := history(t, l, "s"); got != "1/1/A/STARTED 1/2/A/SET_STARTED 2/1/B/STARTED" {
		t.Fatalf("history = %s", got)
	}
	// A lease that ended is not taken over: nothing to recover.
	if err := l.Append(ctx, &b, Record{State: Abandoned}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	c2, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "C", Token: "tc"})
	if err != nil || c2.TakenOver != nil || c2.Fencing != 3 {
		t.Fatalf("acquire after an ended rotation = %+v, %v", c2, err)
	}
}

// A dead holder's late write between the takeover's read and its write
// makes the takeover read again and record it (see also the DynamoDB
// Local test of the same name).
func TestTakeoverSeesALateWriteOfTheDeadHolderUnit(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	dead := newTestLedger(db, &clock{t0}, Options{})
	a, err := dead.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"})
	if err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(2 * time.Minute)
	db.beforeWrite = func() {
		if err := dead.Append(ctx, &a, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
			t.Error(err)
		}
	}
	b, err := newTestLedger(db, c, Options{}).Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb"})
	if err != nil {
		t.Fatal(err)
	}
	if b.TakenOver == nil || b.TakenOver.State != SetStarted || !b.TakenOver.SetMayHaveRun {
		t.Fatalf("TakenOver = %+v", b.TakenOver)
	}
}

// Of concurrent starts exactly one moves the counter; the loser reads
// again and, finding the lease held, is refused.
func TestConcurrentAcquireOneWins(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	db.beforeWrite = func() {
		if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "other", Token: "to"}); err != nil {
			t.Error(err)
		}
	}
	var he *HeldError
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"}); !errors.As(err, &he) || he.Holder != "other" {
		t.Fatalf("loser = %v, want HeldError by other", err)
	}
	// Same on an existing item (the fencing counter's compare-and-swap).
	other, _, _ := l.Get(ctx, "s")
	if err := l.Append(ctx, &other, Record{State: Finished}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	db.beforeWrite = func() {
		if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "third", Token: "t3"}); err != nil {
			t.Error(err)
		}
	}
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"}); !errors.As(err, &he) || he.Holder != "third" {
		t.Fatalf("loser on an existing lease = %v", err)
	}
	if got, _, _ := l.Get(ctx, "s"); got.Fencing != 2 || got.Holder != "third" {
		t.Fatalf("lease = %+v", got)
	}
}

// A journal write whose answer was lost (or a retried step) finds its own
// later sequence and appends after it; anything else is fenced.
func TestAppendAfterOwnLostWrite(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"})
	if err != nil {
		t.Fatal(err)
	}
	stale := a
	if err := l.Append(ctx, &a, Record{State: Created}, Change{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &stale, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	if stale.Seq != 3 || stale.State != SetStarted {
		t.Fatalf("lease after the re-read = %+v", stale)
	}
	if got := history(t, l, "s"); got != "1/1/A/STARTED 1/2/A/CREATED 1/3/A/SET_STARTED" {
		t.Fatalf("history = %s", got)
	}
	// A sequence that keeps moving is given up on after a few tries.
	writes := db.writes
	var loop func()
	loop = func() {
		cur, _, _ := l.Get(ctx, "s")
		if err := l.Append(ctx, &cur, Record{State: Tested}, Change{}); err != nil {
			t.Error(err)
		}
		db.beforeWrite = loop
	}
	db.beforeWrite = loop
	if err := l.Append(ctx, &stale, Record{State: SetDone}, Change{}); !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "kept moving") {
		t.Fatalf("append under a moving sequence = %v", err)
	}
	db.beforeWrite = nil
	if db.writes-writes != 4 {
		t.Fatalf("%d concurrent writes, want 4 (one per attempt)", db.writes-writes)
	}
}

func TestHoldAfterCompensationFailed(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: CompensationFailed}, Change{Hold: true}); err != nil {
		t.Fatal(err)
	}
	if a.Until != 0 || a.Holder != "A" || !a.UntilTime().IsZero() {
		t.Fatalf("held lease = %+v", a)
	}
	c.t = t0.Add(365 * 24 * time.Hour)
	var he *HeldError
	_, err = l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb"})
	if !errors.As(err, &he) || he.State != CompensationFailed || !he.Until.IsZero() || !strings.Contains(he.Error(), "operator") {
		t.Fatalf("acquire over COMPENSATION_FAILED = %v", err)
	}
}

func TestLeaseHelpers(t *testing.T) {
	now := t0
	tests := []struct {
		name       string
		l          Lease
		held       bool
		unfinished bool
		until      time.Time
	}{
		{"free", Lease{State: Finished}, false, false, time.Time{}},
		{"held", Lease{Holder: "A", State: Created, Until: now.Add(time.Second).UnixMilli()}, true, true, now.Add(time.Second).UTC()},
		{"expired", Lease{Holder: "A", State: Created, Until: now.UnixMilli()}, false, true, now.UTC()},
		{"no expiry", Lease{Holder: "A", State: Created}, true, true, time.Time{}},
		{"compensation failed", Lease{Holder: "A", State: CompensationFailed, Until: now.Add(-time.Hour).UnixMilli()}, true, false, time.Time{}},
		{"ended but held", Lease{Holder: "A", State: RolledBack, Until: now.Add(time.Second).UnixMilli()}, true, false, now.Add(time.Second).UTC()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.l.Held(now) != tt.held || tt.l.Unfinished() != tt.unfinished || !tt.l.UntilTime().Equal(tt.until) {
				t.Fatalf("held %v unfinished %v until %v", tt.l.Held(now), tt.l.Unfinished(), tt.l.UntilTime())
			}
		})
	}
	for s, terminal := range map[State]bool{Started: false, Created: false, SetStarted: false, SetDone: false, Tested: false,
		FinishStarted: false, FinishDone: false, Verified: false, CompensateStarted: false, Recovered: false,
		Finished: true, RolledBack: true, Abandoned: true, CompensationFailed: true} {
		if s.Terminal() != terminal {
			t.Errorf("%s.Terminal() = %v", s, !terminal)
		}
	}
	if got := (Lease{UpdatedAt: t0.UnixMilli()}).UpdatedAtTime(); !got.Equal(t0) {
		t.Errorf("UpdatedAtTime = %v", got)
	}
	if (&HeldError{Holder: "A", State: Created, Until: t0}).Error() == (&HeldError{Holder: "A", State: CompensationFailed}).Error() {
		t.Error("HeldError does not tell COMPENSATION_FAILED apart")
	}
}

func TestErrorsArePassedOn(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	db.fail = boom
	if _, _, err := l.Get(ctx, "s"); !errors.Is(err, boom) {
		t.Errorf("Get = %v", err)
	}
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "t", Execution: "A", Token: "ta"}); !errors.Is(err, boom) {
		t.Errorf("Acquire = %v", err)
	}
	if err := l.Append(ctx, &a, Record{State: Created}, Change{}); !errors.Is(err, boom) || errors.Is(err, ErrFenced) {
		t.Errorf("Append = %v", err)
	}
	if _, err := l.History(ctx, "s"); !errors.Is(err, boom) {
		t.Errorf("History = %v", err)
	}
	if _, err := l.Check(ctx, "s", 1, "A"); !errors.Is(err, boom) {
		t.Errorf("Check = %v", err)
	}
	if conditionFailed(boom, 0) || conditionFailed(&types.TransactionCanceledException{}, 0) {
		t.Error("conditionFailed of an error that is no cancelled condition")
	}
}

// Acquire reads again when its compare-and-swap loses, but a bounded
// number of times (four attempts): a counter that keeps moving is
// reported, not chased forever.
func TestAcquireGivesUpWhenTheCounterKeepsMoving(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	others := 0
	var churn func()
	churn = func() {
		// Someone else starts and ends a rotation between our read and
		// our write: the lease is free again, with a new fencing token.
		others++
		o, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: fmt.Sprint("other-", others), Token: "to"})
		if err == nil {
			err = l.Append(ctx, &o, Record{State: Abandoned}, Change{Release: true})
		}
		if err != nil {
			t.Error(err)
		}
		db.beforeWrite = churn
	}
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "first", Token: "t0"}); err != nil {
		t.Fatal(err)
	}
	first, _, _ := l.Get(ctx, "s")
	if err := l.Append(ctx, &first, Record{State: Finished}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	db.beforeWrite = churn
	_, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"})
	db.beforeWrite = nil
	if err == nil || !conditionFailed(errors.Unwrap(err), 0) || !strings.Contains(err.Error(), "take lease") {
		t.Fatalf("acquire under a moving counter = %v", err)
	}
	if others != 4 {
		t.Fatalf("%d attempts, want 4", others)
	}
}

// An acquire given the lease its caller just read (Known) does not read it
// again; a stale one (the lease moved since) costs a second attempt that
// reads it, never a write over what it did not see.
func TestAcquireFromAKnownLease(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	none := Lease{}
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta", Known: &none})
	if err != nil || db.gets != 0 || a.Fencing != 1 {
		t.Fatalf("acquire of a new secret: %+v, %v, %d reads; want fencing 1, no read", a, err, db.gets)
	}
	stale := a // read before A ended
	if err := l.Append(ctx, &a, Record{State: Finished}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	db.gets = 0
	b, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb", Known: &stale})
	var he *HeldError
	if !errors.As(err, &he) || db.gets != 0 {
		t.Fatalf("acquire from a stale read that shows the lease held = %+v, %v, %d reads", b, err, db.gets)
	}
	c.t = t0.Add(2 * time.Minute) // the stale read's lease has expired: B takes it over...
	b, err = l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb", Known: &stale})
	// ...but the item moved on (FINISHED, seq 2): the compare-and-swap
	// fails, the second attempt reads it, and B takes a free lease with
	// nothing to take over.
	if err != nil || db.gets != 1 || b.Fencing != 2 || b.TakenOver != nil {
		t.Fatalf("acquire from a stale read = %+v, %v, %d reads; want fencing 2, no takeover, 1 read", b, err, db.gets)
	}
}

// Only a lost compare-and-swap is retried: any other write error is
// returned at once (the state machine retries the step).
func TestAcquireDoesNotRetryOtherErrors(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	db.failWrite = errors.New("throttled")
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta"}); err == nil || !strings.Contains(err.Error(), "throttled") {
		t.Fatalf("acquire = %v", err)
	}
	if db.attempts != 1 {
		t.Fatalf("%d writes, want 1", db.attempts)
	}
}

// Change.Then journals a second record in the same transaction: finish's
// FINISH_DONE and FINISHED when the rotation has no bake. Each record has
// its own sequence number, the lease ends in the second's state, and a
// release frees the login locks in that write too.
func TestAppendTwoRecordsInOneWrite(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	login := Login{Engine: "postgres", Host: "db", Port: 5432, User: "app"}
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta", PreviousVersion: "v1", Logins: []Login{login}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: FinishStarted}, Change{FinishMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	before := db.attempts
	fin := Record{State: Finished, Actor: "finish", Detail: "d"}
	if err := l.Append(ctx, &a, Record{State: FinishDone, Actor: "finish"}, Change{Then: &fin, Release: true}); err != nil {
		t.Fatal(err)
	}
	if n := db.attempts - before; n != 1 {
		t.Fatalf("%d TransactWriteItems for two records, want 1", n)
	}
	if a.Seq != 4 || a.State != Finished || a.Holder != "" || a.Until != 0 || !a.FinishMayHaveRun {
		t.Fatalf("lease after the two records = %+v", a)
	}
	if got, ok, err := l.Get(ctx, "s"); !ok || err != nil || got != a {
		t.Fatalf("stored lease = %+v %v %v, want %+v", got, ok, err, a)
	}
	if got := history(t, l, "s"); got != "1/1/A/STARTED 1/2/A/FINISH_STARTED 1/3/A/FINISH_DONE 1/4/A/FINISHED" {
		t.Fatalf("history = %s", got)
	}
	recs, err := l.History(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last.Detail != "d" || last.Actor != "finish" || last.Token != "ta" {
		t.Fatalf("FINISHED record = %+v", last)
	}
	// The login is free: another secret naming it takes it at once.
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "other", Execution: "B", Token: "tb", Logins: []Login{login}}); err != nil {
		t.Fatalf("the login lock was not released with the lease: %v", err)
	}
}

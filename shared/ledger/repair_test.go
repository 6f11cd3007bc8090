package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

func queued(t *testing.T, l *Ledger) []string {
	t.Helper()
	q, err := l.RepairQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, x := range q {
		s = append(s, x.Secret)
	}
	return s
}

// A lease enters the repair queue with COMPENSATION_FAILED, only then, and
// stays in it through the repair's own records until ClearRepair.
func TestRepairQueue(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "A", Token: "ta", PreviousVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	if q := queued(t, l); len(q) != 0 || a.Queued() {
		t.Fatalf("queued before COMPENSATION_FAILED: %v", q)
	}
	c.t = t0.Add(time.Minute)
	if err := l.Append(ctx, &a, Record{State: CompensationFailed}, Change{Hold: true}); err != nil {
		t.Fatal(err)
	}
	if q := queued(t, l); len(q) != 1 || q[0] != "s" {
		t.Fatalf("queue %v, want [s]", q)
	}
	if a.Repair.Since != c.t.UnixMilli() || a.Repair.LastAt != c.t.UnixMilli() || a.Repair.Attempts != 0 {
		t.Fatalf("repair %+v", a.Repair)
	}

	// A deferred attempt counts and keeps the lease queued and held.
	c.t = t0.Add(time.Hour)
	d, err := l.DeferRepair(ctx, a, "unreachable")
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := l.Get(ctx, "s"); got != d || d.Repair.Attempts != 1 || d.Repair.LastAt != c.t.UnixMilli() || d.Repair.Since != a.Repair.Since || d.Holder != "A" || d.State != CompensationFailed {
		t.Fatalf("deferred lease %+v", got)
	}
	// A defer from a stale read changes nothing.
	stale := a
	stale.Seq--
	if _, err := l.DeferRepair(ctx, stale, "x"); !errors.Is(err, ErrNotRepairable) {
		t.Fatalf("stale defer = %v", err)
	}

	// The takeover: a new fencing token, REPAIR_STARTED journaled in the
	// same write, the failed rotation's token and versions kept.
	r, err := l.TakeOverForRepair(ctx, d, "repair-1", "repair")
	if err != nil {
		t.Fatal(err)
	}
	if r.Fencing != a.Fencing+1 || r.Holder != "repair-1" || r.State != RepairStarted || r.Token != "ta" || r.PreviousVersion != "v1" ||
		!r.SetMayHaveRun || r.TakenOver == nil || r.TakenOver.Execution != "A" || r.Repair.Attempts != 2 || !r.Queued() || r.Until == 0 {
		t.Fatalf("repair lease %+v", r)
	}
	if h := history(t, l, "s"); h != "1/1/A/STARTED 1/2/A/SET_STARTED 1/3/A/COMPENSATION_FAILED 2/1/repair-1/REPAIR_STARTED" {
		t.Fatalf("history %s", h)
	}
	// Of two repairs that read the same lease, one wins.
	if _, err := l.TakeOverForRepair(ctx, d, "repair-2", "repair"); !errors.Is(err, ErrNotRepairable) {
		t.Fatalf("second takeover = %v", err)
	}
	// The live repair's lease is not taken over; an expired one is.
	if _, err := l.TakeOverForRepair(ctx, r, "repair-3", "repair"); !errors.Is(err, ErrNotRepairable) {
		t.Fatalf("takeover of a live repair = %v", err)
	}
	// The old holder is fenced out.
	if err := l.Append(ctx, &d, Record{State: RolledBack}, Change{Release: true}); !errors.Is(err, ErrFenced) {
		t.Fatalf("the failed rotation appended after the takeover: %v", err)
	}
	if q := queued(t, l); len(q) != 1 {
		t.Fatalf("a repair in progress left the queue: %v", q)
	}
	c.t = c.t.Add(2 * time.Minute)
	// The dead repair's late write lands after our read: the takeover
	// must read again, or it would miss what that write says.
	late := r
	if err := l.Append(ctx, &late, Record{State: CompensateStarted}, Change{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TakeOverForRepair(ctx, r, "repair-3", "repair"); !errors.Is(err, ErrNotRepairable) {
		t.Fatalf("takeover from a read older than the holder's last write = %v", err)
	}
	c.t = c.t.Add(2 * time.Minute) // the late writer dies too
	r, _, _ = l.Get(ctx, "s")
	r2, err := l.TakeOverForRepair(ctx, r, "repair-3", "repair")
	if err != nil {
		t.Fatalf("takeover of a dead repair: %v", err)
	}

	// The outcome keeps it queued (its event may still fail) until cleared.
	if err := l.Append(ctx, &r2, Record{State: RolledBack}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if q := queued(t, l); len(q) != 1 {
		t.Fatalf("queue %v after the outcome, want it kept until cleared", q)
	}
	if _, err := l.TakeOverForRepair(ctx, r2, "repair-4", "repair"); !errors.Is(err, ErrNotRepairable) {
		t.Fatalf("takeover of a released lease = %v", err)
	}
	if err := l.ClearRepair(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if q := queued(t, l); len(q) != 0 {
		t.Fatalf("queue %v after ClearRepair", q)
	}
	got, _, _ := l.Get(ctx, "s")
	if got.Queued() || got.State != RolledBack || got.Holder != "" {
		t.Fatalf("cleared lease %+v", got)
	}
	// A new rotation's lease is not queued, and COMPENSATION_FAILED again
	// restarts the clock.
	c.t = c.t.Add(time.Hour)
	b, err := l.Acquire(ctx, AcquireRequest{Secret: "s", Execution: "B", Token: "tb"})
	if err != nil || b.Queued() {
		t.Fatalf("new rotation %+v, %v", b, err)
	}
	if err := l.Append(ctx, &b, Record{State: CompensationFailed}, Change{Hold: true}); err != nil {
		t.Fatal(err)
	}
	if b.Repair.Since != c.t.UnixMilli() || b.Repair.Attempts != 0 {
		t.Fatalf("second failure %+v", b.Repair)
	}
}

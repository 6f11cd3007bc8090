//go:build integration

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

func startTable(t *testing.T) *dynamodb.Client {
	t.Helper()
	ctx := context.Background()
	d, err := standin.StartDynamoDB(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cfg, err := standin.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg, standin.LocalDynamoDBOptions(d.Endpoint))
	if err := local.CreateLedgerTable(ctx, db, "ledger"); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestLedgerAgainstDynamoDBLocal(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	clock := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	l := ledger.New(db, "ledger", ledger.Options{LeaseDuration: time.Minute, Now: now})

	t.Run("50 concurrent acquires, exactly one wins", func(t *testing.T) {
		var wg sync.WaitGroup
		var won, held sync.Map
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				exec := fmt.Sprintf("exec-%d", i)
				_, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "s1", Execution: exec, Token: "tok-" + exec, PreviousVersion: "v1"})
				var he *ledger.HeldError
				switch {
				case err == nil:
					won.Store(exec, true)
				case errors.As(err, &he):
					held.Store(exec, true)
				default:
					t.Errorf("%s: %v", exec, err)
				}
			}()
		}
		wg.Wait()
		n := 0
		won.Range(func(any, any) bool { n++; return true })
		if n != 1 {
			t.Fatalf("%d executions took the lease", n)
		}
		lease, _, _ := l.Get(ctx, "s1")
		if lease.Fencing != 1 {
			t.Fatalf("fencing = %d", lease.Fencing)
		}
	})

	t.Run("journal, zombie, expiry, hold", func(t *testing.T) {
		a, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "s2", Execution: "A", Token: "ta", PreviousVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		again, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "s2", Execution: "A", Token: "ta"})
		if err != nil || again.Fencing != a.Fencing {
			t.Fatalf("idempotent acquire: %v %+v", err, again)
		}
		if err := l.Append(ctx, &a, ledger.Record{State: ledger.Created}, ledger.Change{}); err != nil {
			t.Fatal(err)
		}
		stale := a // a copy with an old seq: the append retries after re-reading
		if err := l.Append(ctx, &stale, ledger.Record{State: ledger.SetStarted}, ledger.Change{SetMayHaveRun: true}); err != nil {
			t.Fatal(err)
		}
		// The lease expires; B takes over with a larger fencing token.
		mu.Lock()
		clock = clock.Add(2 * time.Minute)
		mu.Unlock()
		b, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", PreviousVersion: "v1"})
		if err != nil || b.Fencing != a.Fencing+1 {
			t.Fatalf("takeover: %v fencing %d", err, b.Fencing)
		}
		// A is a zombie now: it cannot write.
		if err := l.Append(ctx, &stale, ledger.Record{State: ledger.SetDone}, ledger.Change{}); !errors.Is(err, ledger.ErrFenced) {
			t.Fatalf("zombie append = %v, want ErrFenced", err)
		}
		if _, err := l.Check(ctx, "s2", a.Fencing, "A"); !errors.Is(err, ledger.ErrFenced) {
			t.Fatalf("zombie check = %v", err)
		}
		// B fails to compensate: the lease is held with no expiry.
		if err := l.Append(ctx, &b, ledger.Record{State: ledger.CompensationFailed}, ledger.Change{Hold: true}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		clock = clock.Add(24 * time.Hour)
		mu.Unlock()
		var he *ledger.HeldError
		if _, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "s2", Execution: "C", Token: "tc"}); !errors.As(err, &he) || he.State != ledger.CompensationFailed {
			t.Fatalf("acquire over COMPENSATION_FAILED = %v", err)
		}
		hist, err := l.History(ctx, "s2")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range hist {
			got = append(got, fmt.Sprintf("%d/%d/%s/%s", r.Fencing, r.Seq, r.Execution, r.State))
		}
		want := fmt.Sprint([]string{"1/1/A/STARTED", "1/2/A/CREATED", "1/3/A/SET_STARTED", "2/1/B/STARTED", "2/2/B/COMPENSATION_FAILED"})
		if fmt.Sprint(got) != want {
			t.Fatalf("history = %v\nwant      %v", got, want)
		}
	})
}

// hookAPI runs before, once, ahead of the next TransactWriteItems: a test
// acts there as a concurrent writer between a read and the write that
// depends on it.
type hookAPI struct {
	ledger.API
	mu     sync.Mutex
	before func()
}

func (h *hookAPI) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	h.mu.Lock()
	f := h.before
	h.before = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.API.TransactWriteItems(ctx, in, opts...)
}

// A dead holder's late journal write (SET_STARTED, sent before it died and
// delivered late) can land between a takeover's read of the lease and its
// write. The takeover is conditioned on the journal sequence it read, so it
// reads again and records the SET_STARTED in TakenOver: recovery then knows
// that the target may have changed. Conditioned on the fencing counter
// alone, it would record CREATED and recovery would leave the target on a
// password no secret version holds.
func TestTakeoverSeesALateWriteOfTheDeadHolder(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	start := time.Unix(1_800_000_000, 0)
	// A's clock stays in the past: its late write does not renew the lease.
	dead := ledger.New(db, "ledger", ledger.Options{LeaseDuration: time.Minute, Now: func() time.Time { return start }})
	a, err := dead.Acquire(ctx, ledger.AcquireRequest{Secret: "s", Execution: "A", Token: "ta", PreviousVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Append(ctx, &a, ledger.Record{State: ledger.Created}, ledger.Change{}); err != nil {
		t.Fatal(err)
	}
	api := &hookAPI{API: db}
	late := a
	api.before = func() {
		if err := dead.Append(ctx, &late, ledger.Record{State: ledger.SetStarted}, ledger.Change{SetMayHaveRun: true}); err != nil {
			t.Errorf("the dead holder's late write: %v", err)
		}
	}
	b, err := ledger.New(api, "ledger", ledger.Options{LeaseDuration: time.Minute, Now: func() time.Time { return start.Add(2 * time.Minute) }}).
		Acquire(ctx, ledger.AcquireRequest{Secret: "s", Execution: "B", Token: "tb", PreviousVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if to := b.TakenOver; to == nil || to.State != ledger.SetStarted || !to.SetMayHaveRun || to.Execution != "A" {
		t.Fatalf("TakenOver = %+v, want A in SET_STARTED with SetMayHaveRun", to)
	}
	// A is fenced from here on.
	if err := dead.Append(ctx, &late, ledger.Record{State: ledger.SetDone}, ledger.Change{}); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("the dead holder's next write = %v, want ErrFenced", err)
	}
}

// The sparse repair index on DynamoDB Local (with the table as
// local.CreateLedgerTable makes it, as the CDK app does): only a lease in
// COMPENSATION_FAILED (or under repair) is listed, the takeover is fenced,
// and ClearRepair takes it out.
func TestRepairQueueAgainstDynamoDBLocal(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	l := ledger.New(db, "ledger", ledger.Options{LeaseDuration: time.Minute})
	queue := func() []string {
		t.Helper()
		// The index is eventually consistent: DynamoDB Local updates it
		// at once, AWS within a second; the repair reads each lease again.
		q, err := l.RepairQueue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, x := range q {
			s = append(s, x.Secret)
		}
		return s
	}
	for _, s := range []string{"ok", "failed"} {
		a, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: s, Execution: "x-" + s, Token: "t-" + s, PreviousVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		st, ch := ledger.Finished, ledger.Change{Release: true}
		if s == "failed" {
			st, ch = ledger.CompensationFailed, ledger.Change{Hold: true}
		}
		if err := l.Append(ctx, &a, ledger.Record{State: st}, ch); err != nil {
			t.Fatal(err)
		}
	}
	if q := queue(); len(q) != 1 || q[0] != "failed" {
		t.Fatalf("queue %v, want [failed]", q)
	}
	cur, _, _ := l.Get(ctx, "failed")
	r, err := l.TakeOverForRepair(ctx, cur, "repair-1", "repair")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TakeOverForRepair(ctx, cur, "repair-2", "repair"); !errors.Is(err, ledger.ErrNotRepairable) {
		t.Fatalf("second takeover = %v", err)
	}
	if err := l.Append(ctx, &r, ledger.Record{State: ledger.RolledBack}, ledger.Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if q := queue(); len(q) != 1 {
		t.Fatalf("queue %v: the outcome must stay queued until announced", q)
	}
	if err := l.ClearRepair(ctx, r); err != nil {
		t.Fatal(err)
	}
	if q := queue(); len(q) != 0 {
		t.Fatalf("queue %v after ClearRepair", q)
	}
}

//go:build integration

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

// The login lock against DynamoDB Local: twenty secrets naming one login
// (both users of an alternating pair), acquired at once, exactly one takes
// it; the others are refused naming the winner, and their own leases are
// untouched. Release frees it with the lease; an expired holder is fenced
// (it can neither journal nor free the new holder's lock);
// COMPENSATION_FAILED keeps it.
func TestLoginLockAgainstDynamoDBLocal(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	start := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := start
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	setClock := func(t time.Time) { mu.Lock(); clock = t; mu.Unlock() }
	l := ledger.New(db, "ledger", ledger.Options{LeaseDuration: time.Minute, Now: now})
	user := ledger.Login{Engine: "postgres", Host: "127.0.0.1", Port: 5432, User: "app"}
	clone := ledger.Login{Engine: "postgres", Host: "127.0.0.1", Port: 5432, User: "app_clone"}

	var wg sync.WaitGroup
	leases := make([]ledger.Lease, 20)
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			leases[i], errs[i] = l.Acquire(ctx, ledger.AcquireRequest{Secret: fmt.Sprint("s", i), Execution: fmt.Sprint("x", i),
				Token: "t", PreviousVersion: "v1", Logins: []ledger.Login{user, clone}})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		var lh *ledger.LoginHeldError
		switch {
		case err == nil && winner == -1:
			winner = i
		case err == nil:
			t.Fatalf("secrets %d and %d both took the login", winner, i)
		case !errors.As(err, &lh):
			t.Fatalf("secret %d: %v, want LoginHeldError", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no secret took the login")
	}
	for i, err := range errs {
		if i == winner {
			continue
		}
		var lh *ledger.LoginHeldError
		errors.As(err, &lh)
		if lh.Secret != fmt.Sprint("s", winner) {
			t.Errorf("secret %d was told %s holds it, not s%d", i, lh.Secret, winner)
		}
		if _, ok, _ := l.Get(ctx, fmt.Sprint("s", i)); ok {
			t.Errorf("refused secret %d has a lease", i)
		}
	}
	a := leases[winner]
	locks, err := l.LoginLocks(ctx, a.LoginKeys())
	if err != nil || len(locks) != 2 || !locks[0].Held || !locks[1].Held {
		t.Fatalf("LoginLocks = %+v, %v", locks, err)
	}

	// The winner's lease expires; another secret takes the login over and
	// the winner is fenced.
	setClock(start.Add(2 * time.Minute))
	b, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "other", Execution: "xb", Token: "tb", PreviousVersion: "v1", Logins: []ledger.Login{clone}})
	if err != nil {
		t.Fatalf("takeover of an expired login lock: %v", err)
	}
	zombie := a
	if err := l.Append(ctx, &zombie, ledger.Record{State: ledger.SetStarted}, ledger.Change{SetMayHaveRun: true}); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("zombie journal = %v, want ErrFenced", err)
	}
	zombie = a
	if err := l.Append(ctx, &zombie, ledger.Record{State: ledger.RolledBack}, ledger.Change{Release: true}); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("zombie release = %v, want ErrFenced", err)
	}
	if locks, _ := l.LoginLocks(ctx, b.LoginKeys()); len(locks) != 1 || !locks[0].Held || locks[0].Secret != "other" {
		t.Fatalf("the zombie changed the new holder's lock: %+v", locks)
	}
	// COMPENSATION_FAILED keeps it, for good.
	if err := l.Append(ctx, &b, ledger.Record{State: ledger.CompensationFailed}, ledger.Change{Hold: true}); err != nil {
		t.Fatal(err)
	}
	setClock(start.Add(24 * time.Hour))
	if _, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "s1", Execution: "x1b", Token: "t2", Logins: []ledger.Login{clone}}); !errors.As(err, new(*ledger.LoginHeldError)) {
		t.Fatalf("acquire over COMPENSATION_FAILED = %v", err)
	}
	// Released with the lease otherwise.
	c, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: "third", Execution: "xc", Token: "tc", Logins: []ledger.Login{user}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &c, ledger.Record{State: ledger.Finished}, ledger.Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if locks, _ := l.LoginLocks(ctx, c.LoginKeys()); len(locks) != 1 || locks[0].Held || locks[0].Holder != "" {
		t.Fatalf("lock after release = %+v", locks)
	}
}

//go:build integration

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

// TestEphemeralLeasesAgainstDynamoDBLocal: the lease items' conditional
// writes and the sparse index the sweeper reads, on DynamoDB Local.
func TestEphemeralLeasesAgainstDynamoDBLocal(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	clock := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	l := ledger.New(db, "ledger", ledger.Options{Now: now})

	issue := func(id, exec string, ttl time.Duration) ledger.EphemeralLease {
		t.Helper()
		lease, err := l.BeginIssue(ctx, ledger.EphemeralLease{ID: id, Template: "tpl", Master: "m", Engine: "postgres", Host: "h", Port: 5432,
			Role: "r", Execution: exec, NotAfter: now().Add(ttl).UnixMilli(), MaxNotAfter: now().Add(time.Hour).UnixMilli()}, "test", now().Add(15*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return lease
	}
	due := func(at time.Time) []string {
		t.Helper()
		ls, err := l.DueEphemeral(ctx, at, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range ls {
			ids = append(ids, x.ID)
		}
		return ids
	}

	a := issue("ss_eph_aaaaaaaaaaaaaaaa", "exec-a", time.Minute)
	// A retried BeginIssue of the same execution gets the lease back;
	// another execution is refused.
	if again := issue("ss_eph_aaaaaaaaaaaaaaaa", "exec-a", time.Minute); again.Seq != 1 {
		t.Fatalf("retried BeginIssue: %+v", again)
	}
	if _, err := l.BeginIssue(ctx, ledger.EphemeralLease{ID: a.ID, Execution: "exec-other"}, "test", now()); !errors.Is(err, ledger.ErrLeaseExists) {
		t.Fatalf("BeginIssue by another execution: %v, want ErrLeaseExists", err)
	}
	// ISSUING is due after its grace (or at expiry, whichever the caller
	// chose: 15 minutes here), not before.
	if ids := due(now().Add(14 * time.Minute)); slices.Contains(ids, a.ID) {
		t.Fatalf("ISSUING lease due too early: %v", ids)
	}
	if err := l.Transition(ctx, &a, ledger.EphemeralChange{Record: ledger.EphemeralRecord{State: ledger.Issued, Actor: "test"},
		Apply: func(n *ledger.EphemeralLease) { n.Secret = "arn:secret" }}); err != nil {
		t.Fatal(err)
	}
	if ids := due(now().Add(59 * time.Second)); slices.Contains(ids, a.ID) {
		t.Fatalf("ISSUED lease due before its expiry: %v", ids)
	}
	if ids := due(now().Add(time.Minute)); !slices.Contains(ids, a.ID) {
		t.Fatalf("ISSUED lease not due at its expiry: %v", ids)
	}

	// A stale copy loses: a renewal racing a revocation.
	var err error
	stale := a
	if err := l.Transition(ctx, &a, ledger.EphemeralChange{Record: ledger.EphemeralRecord{State: ledger.Revoking, Actor: "sweeper"}}); err != nil {
		t.Fatal(err)
	}
	err = l.Transition(ctx, &stale, ledger.EphemeralChange{Record: ledger.EphemeralRecord{State: ledger.Renewed, Actor: "renew"},
		Apply: func(n *ledger.EphemeralLease) { n.NotAfter += time.Hour.Milliseconds() }})
	if !errors.Is(err, ledger.ErrLeaseChanged) {
		t.Fatalf("stale renewal: %v, want ErrLeaseChanged", err)
	}

	// Ten concurrent revokers that read the same lease: exactly one
	// REVOKED write wins, the others must read again.
	snapshot, _, err := l.GetEphemeral(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won sync.Map
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur := snapshot
			if err := l.Transition(ctx, &cur, ledger.EphemeralChange{Record: ledger.EphemeralRecord{State: ledger.Revoked, Actor: fmt.Sprint(i)}}); err == nil {
				won.Store(i, true)
			} else if !errors.Is(err, ledger.ErrLeaseChanged) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	won.Range(func(_, _ any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d revokers won, want 1", n)
	}
	got, _, _ := l.GetEphemeral(ctx, a.ID)
	if got.State != ledger.Revoked || got.Queue != "" || got.ExpiresAt == 0 || got.Secret != "arn:secret" {
		t.Fatalf("revoked lease: %+v", got)
	}
	advance(time.Hour)
	if ids := due(now()); slices.Contains(ids, a.ID) {
		t.Fatalf("REVOKED lease still in the index: %v", ids)
	}
	open, err := l.OpenEphemeral(ctx)
	if err != nil || slices.ContainsFunc(open, func(x ledger.EphemeralLease) bool { return x.ID == a.ID }) {
		t.Fatalf("open leases: %v, %v", open, err)
	}
	hist, err := l.EphemeralHistory(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var states []ledger.EphemeralState
	for _, r := range hist {
		states = append(states, r.State)
	}
	if want := []ledger.EphemeralState{ledger.Issuing, ledger.Issued, ledger.Revoking, ledger.Revoked}; !slices.Equal(states, want) {
		t.Fatalf("journal %v, want %v", states, want)
	}
}

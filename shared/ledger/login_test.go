package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
)

var (
	loginApp   = Login{Engine: "postgres", Host: "DB.example", Port: 5432, User: "app"}
	loginClone = Login{Engine: "postgres", Host: "db.example", Port: 5432, User: "app_clone"}
)

// lockOf reads the lock item of login straight from the table.
func lockOf(t *testing.T, l *Ledger, login Login) LoginLock {
	t.Helper()
	lk, ok, err := l.getLoginLock(context.Background(), login.Key())
	if err != nil || !ok {
		t.Fatalf("lock of %s: %v %v", login, ok, err)
	}
	return lk
}

func TestLoginKey(t *testing.T) {
	tests := []struct {
		name string
		a, b Login
		same bool
	}{
		{"host case", loginApp, Login{Engine: "postgres", Host: "db.EXAMPLE", Port: 5432, User: "app"}, true},
		{"user case matters", loginApp, Login{Engine: "postgres", Host: "db.example", Port: 5432, User: "App"}, false},
		{"port", loginApp, Login{Engine: "postgres", Host: "db.example", Port: 5433, User: "app"}, false},
		{"engine", loginApp, Login{Engine: "mysql", Host: "db.example", Port: 5432, User: "app"}, false},
		{"a # in the user cannot shift the fields", Login{Engine: "e", Host: "h", Port: 1, User: "a#2#b"}, Login{Engine: "e", Host: "h#2", Port: 1, User: "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.a.Key() == tt.b.Key()) != tt.same {
				t.Fatalf("%q vs %q: same = %v, want %v", tt.a.Key(), tt.b.Key(), !tt.same, tt.same)
			}
		})
	}
	if k := (Login{Engine: "e", Host: "h", Port: 1, User: "my user\nx"}).Key(); strings.ContainsAny(k, " \n") {
		t.Fatalf("key %q holds a separator", k)
	}
	if got := loginApp.String(); got != "postgres://app@db.example:5432" {
		t.Fatalf("String = %q", got)
	}
	if got := loginKeys([]Login{loginClone, loginApp, {Engine: "postgres", Host: "db.example", Port: 5432, User: "app"}}); len(got) != 2 {
		t.Fatalf("loginKeys did not deduplicate: %q", got)
	}
}

// A second secret naming a login that another secret's rotation holds is
// refused, told which secret and which login, and nothing is written for
// it; the login is free again once that rotation releases its lease.
func TestLoginLockRefusesAnotherSecret(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A", Token: "ta", Logins: []Login{loginApp, loginClone}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.LoginKeys(); len(got) != 2 {
		t.Fatalf("lease logins = %q", got)
	}
	if lk := lockOf(t, l, loginApp); lk.Secret != "s1" || lk.Fencing != 1 || lk.Holder != "A" || lk.Login != "postgres://app@db.example:5432" {
		t.Fatalf("lock = %+v", lk)
	}
	for _, logins := range [][]Login{{loginApp}, {loginClone}, {{Engine: "other", Host: "x", Port: 1, User: "u"}, loginClone}} {
		items := len(db.items)
		var lh *LoginHeldError
		_, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: logins})
		if !errors.As(err, &lh) || lh.Secret != "s1" || lh.Holder != "A" || lh.State != Started || !lh.Until.Equal(t0.Add(time.Minute)) {
			t.Fatalf("acquire of %v = %v", logins, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "s1") || !strings.Contains(msg, "postgres://app") {
			t.Fatalf("message %q names neither the other secret nor the login", msg)
		}
		if len(db.items) != items {
			t.Fatal("a refused acquire wrote something")
		}
	}
	if _, ok, _ := l.Get(ctx, "s2"); ok {
		t.Fatal("the refused secret has a lease")
	}
	// The journal extends the lease and keeps the lock.
	c.t = t0.Add(50 * time.Second)
	if err := l.Append(ctx, &a, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(90 * time.Second) // past the first expiry, within the extended one
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}}); !errors.As(err, new(*LoginHeldError)) {
		t.Fatalf("acquire while the lease was extended = %v", err)
	}
	// Released with the lease, in the same write.
	if err := l.Append(ctx, &a, Record{State: Finished}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if lk := lockOf(t, l, loginClone); lk.Holder != "" || lk.Secret != "s1" {
		t.Fatalf("lock after release = %+v", lk)
	}
	b, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}})
	if err != nil {
		t.Fatal(err)
	}
	if lk := lockOf(t, l, loginApp); lk.Secret != "s2" || lk.Holder != "B" || lk.Fencing != b.Fencing {
		t.Fatalf("lock after the second acquire = %+v", lk)
	}
	// The first secret's next rotation is refused now, in turn.
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A2", Token: "ta2", Logins: []Login{loginApp, loginClone}}); !errors.As(err, new(*LoginHeldError)) {
		t.Fatalf("s1 while s2 holds the login = %v", err)
	}
	if got, _, _ := l.Get(ctx, "s1"); got.Holder != "" || got.Fencing != 1 {
		t.Fatalf("s1's refused acquire changed its lease: %+v", got)
	}
}

// COMPENSATION_FAILED keeps the login locked (the login is in an unknown
// state) until an operator frees the lease.
func TestLoginLockHeldAfterCompensationFailed(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A", Token: "ta", Logins: []Login{loginApp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: CompensationFailed}, Change{Hold: true}); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(365 * 24 * time.Hour)
	var lh *LoginHeldError
	_, err = l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}})
	if !errors.As(err, &lh) || lh.State != CompensationFailed || !strings.Contains(err.Error(), "operator") {
		t.Fatalf("acquire over COMPENSATION_FAILED = %v", err)
	}
	states, err := l.LoginLocks(ctx, a.LoginKeys())
	if err != nil || len(states) != 1 || !states[0].Held || states[0].Owner.State != CompensationFailed {
		t.Fatalf("LoginLocks = %+v, %v", states, err)
	}
	// An operator frees the lease (secretctl status prints the command:
	// it removes the lease's holder): the lock is stale with it.
	a.Holder = ""
	put(t, db, a)
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}}); err != nil {
		t.Fatalf("acquire after the operator freed the lease = %v", err)
	}
}

// An expired lock is taken over; the rotation that lost it is fenced: it
// can neither journal (so it cannot touch the login) nor free the new
// holder's lock.
func TestLoginLockExpiryAndFencing(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A", Token: "ta", Logins: []Login{loginApp}})
	if err != nil {
		t.Fatal(err)
	}
	c.t = time.UnixMilli(a.Until - 1)
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}}); !errors.As(err, new(*LoginHeldError)) {
		t.Fatalf("taken over before expiry: %v", err)
	}
	c.t = time.UnixMilli(a.Until)
	// secretctl status tells an expired lock from a held one: the lease
	// still names it, but no longer holds it.
	if states, err := l.LoginLocks(ctx, a.LoginKeys()); err != nil || len(states) != 1 || states[0].Held || states[0].Owner.Holder != "A" {
		t.Fatalf("LoginLocks of an expired lock = %+v, %v", states, err)
	}
	b, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}})
	if err != nil {
		t.Fatalf("takeover of an expired lock = %v", err)
	}
	for _, ch := range []Change{{SetMayHaveRun: true}, {Release: true}, {Hold: true}} {
		zombie := a
		if err := l.Append(ctx, &zombie, Record{State: SetStarted}, ch); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie append %+v = %v", ch, err)
		}
	}
	if lk := lockOf(t, l, loginApp); lk.Secret != "s2" || lk.Holder != "B" || lk.Fencing != b.Fencing {
		t.Fatalf("the zombie changed the new holder's lock: %+v", lk)
	}
	if got := history(t, l, "s1"); got != "1/1/A/STARTED" {
		t.Fatalf("the zombie journaled: %s", got)
	}
	// The new holder journals and frees it as usual.
	if err := l.Append(ctx, &b, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &b, Record{State: RolledBack}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if lk := lockOf(t, l, loginApp); lk.Holder != "" {
		t.Fatalf("lock after release = %+v", lk)
	}
	// The first secret's own next rotation takes its expired lease over
	// (to recover it) and the free login with it.
	a2, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A2", Token: "ta2", Logins: []Login{loginApp}})
	if err != nil || a2.TakenOver == nil {
		t.Fatalf("re-acquire of s1 = %+v, %v", a2, err)
	}
}

// A holder whose lease had expired but who journals between the takeover's
// read and its write (it was slow, not dead) keeps the login: the takeover
// reads again and is refused.
func TestLoginLockTakeoverSeesALateWrite(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	slow := newTestLedger(db, c, Options{})
	a, err := slow.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A", Token: "ta", Logins: []Login{loginApp}})
	if err != nil {
		t.Fatal(err)
	}
	c.t = time.UnixMilli(a.Until)
	db.beforeWrite = func() {
		if err := slow.Append(ctx, &a, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
			t.Error(err)
		}
	}
	_, err = slow.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}})
	if !errors.As(err, new(*LoginHeldError)) {
		t.Fatalf("takeover over a late write = %v", err)
	}
	if lk := lockOf(t, slow, loginApp); lk.Secret != "s1" {
		t.Fatalf("lock = %+v", lk)
	}
}

// Twenty secrets naming one login, started at once: exactly one takes it.
func TestLoginLockConcurrentOneWins(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = l.Acquire(ctx, AcquireRequest{Secret: fmt.Sprint("s", i), Execution: fmt.Sprint("x", i), Token: "t", Logins: []Login{loginApp, loginClone}})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.As(err, new(*LoginHeldError)):
			t.Errorf("secret %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d secrets took the login, want 1", won)
	}
}

func TestLoginHeldErrorMessage(t *testing.T) {
	e := &LoginHeldError{Login: "postgres://app@h:5432", Secret: "arn:s1", Holder: "x", State: Created, Until: t0}
	if !strings.Contains(e.Error(), "until") || strings.Contains(e.Error(), "operator") {
		t.Fatal(e.Error())
	}
	e.State = CompensationFailed
	if !strings.Contains(e.Error(), "operator") {
		t.Fatal(e.Error())
	}
}

// put writes lease straight into the table (an operator's hand edit).
func put(t *testing.T, db *fakeDB, lease Lease) {
	t.Helper()
	item, err := attributevalue.MarshalMap(lease)
	if err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.items[key(item)] = item
}

// A repair takes a COMPENSATION_FAILED lease over with a new fencing token
// and holder: the login locks follow it in the same write, so the login
// stays locked through the repair, the repair can journal, and its release
// frees them.
func TestLoginLockFollowsTheRepair(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A", Token: "ta", Logins: []Login{loginApp, loginClone}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, &a, Record{State: CompensationFailed}, Change{Hold: true}); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(time.Hour)
	r, err := l.TakeOverForRepair(ctx, a, "R", "repair")
	if err != nil {
		t.Fatal(err)
	}
	for _, lg := range []Login{loginApp, loginClone} {
		if lk := lockOf(t, l, lg); lk.Secret != "s1" || lk.Holder != "R" || lk.Fencing != r.Fencing || lk.Login != lg.String() {
			t.Fatalf("lock of %s during the repair = %+v", lg, lk)
		}
	}
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}}); !errors.As(err, new(*LoginHeldError)) {
		t.Fatalf("acquire during the repair = %v", err)
	}
	if err := l.Append(ctx, &r, Record{State: SetStarted}, Change{SetMayHaveRun: true}); err != nil {
		t.Fatalf("the repair's journal write = %v", err)
	}
	if err := l.Append(ctx, &r, Record{State: RolledBack}, Change{Release: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, AcquireRequest{Secret: "s2", Execution: "B", Token: "tb", Logins: []Login{loginApp}}); err != nil {
		t.Fatalf("acquire after the repair = %v", err)
	}
}

// A clone record is written with the journal record that announces the
// change (the write-ahead SET_STARTED), not by a zombie, and is read back.
func TestCloneRecord(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	if _, ok, err := l.Clone(ctx, loginClone); ok || err != nil {
		t.Fatalf("a clone nobody recorded: %v %v", ok, err)
	}
	a, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: "A", Token: "ta", Logins: []Login{loginApp, loginClone}})
	if err != nil {
		t.Fatal(err)
	}
	zombie := a
	zombie.Holder = "Z"
	if err := l.Append(ctx, &zombie, Record{State: SetStarted}, Change{Clone: NewClone(loginClone, "app")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie append = %v", err)
	}
	if _, ok, _ := l.Clone(ctx, loginClone); ok {
		t.Fatal("a fenced append recorded a clone")
	}
	if err := l.Append(ctx, &a, Record{State: SetStarted}, Change{SetMayHaveRun: true, Clone: NewClone(loginClone, "app")}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := l.Clone(ctx, loginClone)
	want := Clone{PK: "CLONE#" + loginClone.Key(), SK: "CLONE", Login: "postgres://app_clone@db.example:5432", CloneOf: "app", Secret: "s1", Execution: "A", At: t0.UnixMilli()}
	if !ok || err != nil || got != want {
		t.Fatalf("clone = %+v %v %v\nwant    %+v", got, ok, err, want)
	}
}

// A lock key gives back the login's name, so a lock released without a read
// keeps it; a key that is not a login's gives none.
func TestLoginName(t *testing.T) {
	for _, lg := range []Login{loginApp, {Engine: "mysql", Host: "h", Port: 3306, User: "a#2 b/c"}} {
		if got := loginName(lg.Key()); got != lg.String() {
			t.Fatalf("loginName(%q) = %q, want %q", lg.Key(), got, lg.String())
		}
	}
	for _, k := range []string{"", "LOGIN#e#h#x#u", "CLONE#e#h#1#u", "LOGIN#e#h#1"} {
		if got := loginName(k); got != "" {
			t.Fatalf("loginName(%q) = %q, want none", k, got)
		}
	}
}

// Taking free login locks and releasing them reads none of them: the first
// attempt writes each only if it is free, the release only if it is still
// this lease's. The locks say who holds them, and then no one.
func TestLoginLocksWithoutReads(t *testing.T) {
	ctx := context.Background()
	db, c := newFakeDB(), &clock{t0}
	l := newTestLedger(db, c, Options{})
	for round, exec := range []string{"A", "B"} { // a lock never taken, then one released
		none := Lease{}
		known := &none
		if round > 0 {
			cur, _, _ := l.Get(ctx, "s1")
			known = &cur
		}
		db.gets = 0
		a, err := l.Acquire(ctx, AcquireRequest{Secret: "s1", Execution: exec, Token: "t" + exec, Logins: []Login{loginApp, loginClone}, Known: known})
		if err != nil || db.gets != 0 || db.attempts == 0 {
			t.Fatalf("round %d: acquire = %v, %d reads; want none", round, err, db.gets)
		}
		if lk := lockOf(t, l, loginApp); lk.Holder != exec || lk.Secret != "s1" || lk.Login != loginApp.String() {
			t.Fatalf("round %d: lock %+v", round, lk)
		}
		db.gets = 0
		if err := l.Append(ctx, &a, Record{State: Finished}, Change{Release: true}); err != nil || db.gets != 0 {
			t.Fatalf("round %d: release = %v, %d reads; want none", round, err, db.gets)
		}
		if lk := lockOf(t, l, loginClone); lk.Holder != "" || lk.Login != loginClone.String() || lk.Fencing != a.Fencing {
			t.Fatalf("round %d: released lock %+v", round, lk)
		}
	}
}

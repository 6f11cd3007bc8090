package rotation

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// alternating makes f's secret an alternating-users one on user, with a
// master secret of its own.
func (f *fixture) alternating(user string, marks bool) {
	caps := alternatingCaps
	caps.CloneMarks = marks
	f.db.caps = &caps
	f.sm.values[v1] = `{"engine":"fake","host":"db","port":1,"username":"` + user + `","password":"` + original + `","masterarn":"arn:master"}`
	f.sm.others = map[string]string{"arn:master": `{"engine":"fake","host":"db","port":1,"username":"admin","password":"` + original + `"}`}
}

// An alternating-users rotation switches to the other user only if
// secretsaga was given it or created it: absent (created now, recorded in
// the ledger with the write-ahead record), recorded, or marked on the
// server. A user of that name that nobody says secretsaga created is
// refused with InputError at create, before anything is created, and
// again at set if it appears after create; nothing changes.
func TestCloneOwnership(t *testing.T) {
	cloneLogin := ledger.Login{Engine: "fake", Host: "db", Port: 1, User: "app_clone"}
	tests := []struct {
		name      string
		user      string // the secret's user
		marks     bool   // the engine keeps clone marks
		users     map[string]string
		record    *ledger.Clone
		refuse    string // the step that refuses; "" for none
		reason    string
		lateUsers map[string]string // users that appear between create and set
	}{
		{name: "no clone yet", user: "app"},
		{name: "a clone secretsaga recorded", user: "app", users: map[string]string{"app_clone": ""}, record: ledger.NewClone(cloneLogin, "app")},
		{name: "a clone marked on the server", user: "app", marks: true, users: map[string]string{"app_clone": "app"}},
		{name: "the secret's user is the clone of the other", user: "app_clone", marks: true, users: map[string]string{"app_clone": "app", "app": ""}},
		{name: "foreign clone, engine with marks", user: "app", marks: true, users: map[string]string{"app_clone": ""}, refuse: StepCreate, reason: `COMMENT ON ROLE "app_clone" IS 'secretsaga:clone-of=app'`},
		{name: "foreign clone, ledger only", user: "app", users: map[string]string{"app_clone": ""}, refuse: StepCreate, reason: `aws dynamodb put-item --table-name ledger --item '{"cloneOf":{"S":"app"}`},
		{name: "a clone marked as another user's", user: "app", marks: true, users: map[string]string{"app_clone": "billing"}, refuse: StepCreate, reason: "did not create"},
		{name: "a clone recorded as another user's", user: "app", users: map[string]string{"app_clone": ""}, record: ledger.NewClone(cloneLogin, "billing"), refuse: StepCreate, reason: "did not create"},
		{name: "a user whose own name ends in _clone", user: "reports_clone", users: map[string]string{"reports": ""}, refuse: StepCreate, reason: `from user "reports_clone" to user "reports"`},
		{name: "foreign clone created after create", user: "app", lateUsers: map[string]string{"app_clone": ""}, refuse: StepSet, reason: "did not create"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.alternating(tt.user, tt.marks)
			f.db.users = tt.users
			if tt.record != nil {
				f.led.clones = map[string]ledger.Clone{tt.record.PK: *tt.record}
			}
			rc := f.acquire(t)
			before := fmt.Sprint(f.sm.values, f.sm.stages, f.db.users, f.db.password)
			_, err := f.svc.Create(context.Background(), rc)
			if tt.refuse == StepCreate {
				f.refused(t, err, StepCreate, tt.reason, before)
				return
			}
			if err != nil {
				t.Fatalf("create = %v", err)
			}
			for u, m := range tt.lateUsers {
				if f.db.users == nil {
					f.db.users = map[string]string{}
				}
				f.db.users[u] = m
			}
			before = fmt.Sprint(f.sm.values, f.sm.stages, f.db.users, f.db.password)
			_, err = f.svc.Set(context.Background(), rc)
			if tt.refuse == StepSet {
				f.refused(t, err, StepSet, tt.reason, before)
				if f.last() == ledger.SetStarted {
					t.Fatal("SET_STARTED journaled for a refused set")
				}
				return
			}
			if err != nil {
				t.Fatalf("set = %v", err)
			}
			if len(tt.users) > 0 {
				if len(f.db.created) != 0 {
					t.Fatalf("created %v over an existing user", f.db.created)
				}
				return
			}
			// Created now: recorded in the ledger first, and marked.
			if len(f.db.created) != 1 || f.db.created[0] != "app_clone" {
				t.Fatalf("created %v", f.db.created)
			}
			c, ok, _ := f.led.Clone(context.Background(), cloneLogin)
			if !ok || c.CloneOf != "app" || c.Login != "fake://app_clone@db:1" {
				t.Fatalf("clone record = %+v %v", c, ok)
			}
			setStarted := false
			for _, r := range f.led.journal {
				setStarted = setStarted || r.State == ledger.SetStarted
			}
			if !setStarted {
				t.Fatal("the clone was created without a write-ahead record")
			}
		})
	}
}

func (f *fixture) refused(t *testing.T, err error, step, reason, before string) {
	t.Helper()
	if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), "step "+step) {
		t.Fatalf("err = %v, want InputError at %s", err, step)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("error %q does not say %q", err, reason)
	}
	if strings.Contains(err.Error(), original) {
		t.Error("the error holds a password")
	}
	if after := fmt.Sprint(f.sm.values, f.sm.stages, f.db.users, f.db.password); after != before || len(f.db.created) != 0 || f.db.sets != 0 {
		t.Fatalf("a refused step changed something:\n%s\n%s", before, after)
	}
}

// The engines' clone mark.
func TestCloneMark(t *testing.T) {
	for text, want := range map[string]string{"secretsaga:clone-of=app": "app", "secretsaga:clone-of=": "", "a comment": "", "": ""} {
		if got := target.ParseCloneMark(text); got != want {
			t.Errorf("ParseCloneMark(%q) = %q, want %q", text, got, want)
		}
	}
	if got := target.ParseCloneMark(target.CloneMark("o'brien")); got != "o'brien" {
		t.Errorf("round trip = %q", got)
	}
}

package rotation

import (
	"context"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/secretstore"
)

// Tests written for mutants that lived in the mutation run of steps.go
// (README, "Mutation testing"): each names the behaviour the mutant broke.

const v0 = "v0-00000000000000000000000000000000"

// withPrevious gives the fixture's secret an AWSPREVIOUS version holding
// value, before the rotation starts.
func (f *fixture) withPrevious(value string) {
	f.sm.mu.Lock()
	defer f.sm.mu.Unlock()
	f.sm.values[v0] = value
	f.sm.stages[v0] = []string{secretstore.Previous}
}

// Set logs in with AWSPREVIOUS when the database is back on it (a restore
// from an old backup, say, after create checked AWSCURRENT), but only with an AWSPREVIOUS that names the same
// login: a previous value of another user or host is never tried.
func TestSetFallsBackToPreviousOfTheSameLogin(t *testing.T) {
	const old = "0ld-Previous-Password"
	for _, tt := range []struct {
		name     string
		previous string
		want     string
	}{
		{"same login", `{"engine":"fake","host":"db","port":1,"username":"app","password":"` + old + `"}`, ""},
		{"another user", `{"engine":"fake","host":"db","port":1,"username":"someone_else","password":"` + old + `"}`, faults.NameInput},
		{"another host", `{"engine":"fake","host":"elsewhere","port":1,"username":"app","password":"` + old + `"}`, faults.NameInput},
		{"not JSON", `not json ` + old, faults.NameInput},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.withPrevious(tt.previous)
			rc := f.acquire(t)
			if rc.PreviousPreviousVersionId != v0 {
				t.Fatalf("acquire recorded AWSPREVIOUS %q, want %q", rc.PreviousPreviousVersionId, v0)
			}
			s := f.svc
			f.steps(t, rc, s.Create)
			// Between create's check that AWSCURRENT logs in and set, the
			// database went back to the AWSPREVIOUS password.
			f.db.password = old
			_, err := s.Set(context.Background(), rc)
			if faults.Name(err) != tt.want {
				t.Fatalf("set = %v, want %q", err, tt.want)
			}
			if tt.want == "" && f.db.password != f.pendingPassword(t) {
				t.Fatal("set succeeded but the database is not on AWSPENDING")
			}
			if tt.want != "" && f.db.password != old {
				t.Fatal("set changed the password with a login it must not use")
			}
		})
	}
}

// A pending version that names another login than AWSCURRENT (edited
// between create and set) is refused before the target is touched.
func TestSetRefusesAPendingOfAnotherLogin(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create)
	pw := f.pendingPassword(t)
	f.sm.mu.Lock()
	f.sm.values[token] = `{"engine":"fake","host":"other-db","port":1,"username":"app","password":"` + pw + `"}`
	f.sm.mu.Unlock()
	_, err := s.Set(context.Background(), rc)
	if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), "different engine, host, port, user or database") {
		t.Fatalf("set = %v, want InputError naming the different target", err)
	}
	if f.db.password != original || f.db.sets != 0 {
		t.Fatal("set touched the target")
	}
}

// BakeSeconds may be MaxBakeSeconds exactly (the verify timeout holds it);
// one more is refused.
func TestBakeSecondsLimitIsInclusive(t *testing.T) {
	for _, tt := range []struct {
		seconds int
		want    string
	}{
		{MaxBakeSeconds, ""},
		{MaxBakeSeconds + 1, faults.NameInput},
		{-1, faults.NameInput},
	} {
		f := newFixture(t)
		_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution,
			HealthCheckUrl: "http://app.internal/health", BakeSeconds: tt.seconds})
		if faults.Name(err) != tt.want {
			t.Errorf("BakeSeconds %d: acquire = %v, want %q", tt.seconds, err, tt.want)
		}
	}
}

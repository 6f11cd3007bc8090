package rotation

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

const otherSecret = "arn:aws:secretsmanager:us-east-1:000000000000:secret:other/db-XyZaBc"

// Acquire locks the database logins the rotation will change, by the
// engine's own name: the user, and with alternating users both users,
// whichever of the two AWSCURRENT names.
func TestAcquireLocksTheLogins(t *testing.T) {
	login := func(user string) ledger.Login { return ledger.Login{Engine: "fake", Host: "db", Port: 1, User: user} }
	tests := []struct {
		name, value string
		alternating bool
		rollback    bool
		want        []ledger.Login
	}{
		{name: "single user", value: `{"engine":"fake","host":"db","port":1,"username":"app","password":"p"}`, want: []ledger.Login{login("app")}},
		{name: "engine alias", value: `{"engine":"fake-alias","host":"db","port":1,"username":"app","password":"p"}`, want: []ledger.Login{login("app")}},
		{name: "alternating, on the user", alternating: true, value: `{"engine":"fake","host":"db","port":1,"username":"app","password":"p","masterarn":"arn:m"}`,
			want: []ledger.Login{login("app"), login("app_clone")}},
		{name: "alternating, on the clone", alternating: true, value: `{"engine":"fake","host":"db","port":1,"username":"app_clone","password":"p","masterarn":"arn:m"}`,
			want: []ledger.Login{login("app_clone"), login("app")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.svc.Engines.Register(f.db, "fake-alias")
			if tt.alternating {
				f.db.caps = &alternatingCaps
			}
			f.sm.values[v1] = tt.value
			f.acquire(t)
			if !reflect.DeepEqual(f.led.requested, tt.want) {
				t.Fatalf("logins = %+v, want %+v", f.led.requested, tt.want)
			}
		})
	}
}

// A secret naming a login that another secret's unfinished rotation holds
// is refused with ConflictError naming that secret and the login (never a
// password), and nothing changes.
func TestAcquireRefusesALoginAnotherSecretIsRotating(t *testing.T) {
	for _, state := range []ledger.State{ledger.SetStarted, ledger.CompensationFailed} {
		t.Run(string(state), func(t *testing.T) {
			f := newFixture(t)
			held := ledger.Login{Engine: "fake", Host: "DB", Port: 1, User: "app"} // the host's case does not matter
			f.led.lease[otherSecret] = ledger.Lease{Secret: otherSecret, Fencing: 3, Seq: 4, Holder: "arn:other-execution", State: state}
			f.led.logins = map[string]string{held.Key(): otherSecret}
			before := fmt.Sprint(f.sm.stages, f.sm.values, f.led.lease)
			_, err := f.svc.Acquire(context.Background(), AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution})
			if faults.Name(err) != faults.NameConflict {
				t.Fatalf("acquire = %v, want ConflictError", err)
			}
			for _, want := range []string{otherSecret, "fake://app@db:1", "step acquire", "same database login"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), original) {
				t.Error("the error holds the password")
			}
			if after := fmt.Sprint(f.sm.stages, f.sm.values, f.led.lease); after != before || len(f.led.journal) != 0 || f.db.sets != 0 {
				t.Fatalf("a refused acquire changed something:\n%s\n%s", before, after)
			}
		})
	}
	// Once the other rotation has ended, the login is free.
	f := newFixture(t)
	f.led.lease[otherSecret] = ledger.Lease{Secret: otherSecret, Fencing: 3, Seq: 5, State: ledger.Finished}
	f.led.logins = map[string]string{ledger.Login{Engine: "fake", Host: "db", Port: 1, User: "app"}.Key(): otherSecret}
	f.acquire(t)
}

package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/faults"
)

const (
	ephSM      = "arn:aws:states:us-east-1:111122223333:stateMachine:secretsaga-ephemeral"
	leaseID    = "ss_eph_7777777777774777" // from the fake token 77777777-7777-4777-...
	leaseArn   = acct + "secretsaga/ephemeral/" + leaseID + "-QwErTy"
	leasePw    = "pw-lease-Yy55"
	leaseValue = `{"engine":"postgres","host":"db.internal","port":5432,"username":"` + leaseID + `","password":"` + leasePw + `","dbname":"app","expires":"2025-06-01T12:15:00Z","lease":"` + leaseID + `"}`
)

// fakeEph is an in-memory lease service: one lease, issued after
// issueAfter status polls.
type fakeEph struct {
	leases     map[string]ephemeral.Lease
	issueAfter int
	polls      int
	revoked    []string
	renewErr   error
	table      string
}

func (f *fakeEph) Status(_ context.Context, in ephemeral.LeaseInput) (ephemeral.Lease, error) {
	f.polls++
	l, ok := f.leases[in.LeaseId]
	if !ok || f.polls <= f.issueAfter {
		return ephemeral.Lease{}, &faults.InputError{Detail: faults.Detail{SecretID: in.LeaseId, Step: "status", Reason: "no lease with this id"}}
	}
	return l, nil
}

func (f *fakeEph) Renew(_ context.Context, in ephemeral.RenewInput) (ephemeral.Lease, error) {
	if f.renewErr != nil {
		return ephemeral.Lease{}, f.renewErr
	}
	l := f.leases[in.LeaseId]
	l.NotAfter = "2025-06-01T12:30:00Z"
	return l, nil
}

func (f *fakeEph) Revoke(_ context.Context, in ephemeral.LeaseInput) (ephemeral.Lease, error) {
	f.revoked = append(f.revoked, in.LeaseId)
	l := f.leases[in.LeaseId]
	l.State, l.Revoked = "REVOKED", true
	return l, nil
}

func (f *fakeEph) List(context.Context) ([]ephemeral.Lease, error) {
	var out []ephemeral.Lease
	for _, l := range f.leases {
		out = append(out, l)
	}
	return out, nil
}

func newFakeEph() *fakeEph {
	return &fakeEph{leases: map[string]ephemeral.Lease{leaseID: {
		LeaseId: leaseID, Username: leaseID, SecretArn: leaseArn, Template: okArn, Engine: "postgres", Host: "db.internal", Port: 5432,
		Role: "app_readonly", Owner: "ci", State: "ISSUED", NotAfter: "2025-06-01T12:15:00Z", MaxNotAfter: "2025-06-01T13:00:00Z",
	}}, issueAfter: 2}
}

func runLease(t *testing.T, eph *fakeEph, f *fakeSFN, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	s, db, _ := fixture()
	s.secrets = append(s.secrets, &fakeSecret{name: "secretsaga/ephemeral/" + leaseID, arn: leaseArn, versions: []fakeVersion{
		{id: v1, stages: []string{"AWSCURRENT"}, created: now, value: leaseValue}}})
	var stdout, stderr bytes.Buffer
	deps := cli.Deps{
		SM: s, DB: db, SFN: f,
		Ephemeral: func(table string) (cli.Ephemeral, error) { eph.table = table; return eph, nil },
		Now:       func() time.Time { return now },
		Getenv:    func(k string) string { return env[k] },
		Sleep:     func(context.Context, time.Duration) error { return nil },
		NewToken:  func() string { return "77777777-7777-4777-8777-777777777777" },
	}
	code := cli.Run(context.Background(), args, &stdout, &stderr, deps)
	return code, stdout.String(), stderr.String()
}

func TestLease(t *testing.T) {
	env := map[string]string{cli.EnvEphemeralStateMachineArn: ephSM, "USER": "alice"}
	t.Run("env", func(t *testing.T) {
		eph, f := newFakeEph(), running()
		code, stdout, stderr := runLease(t, eph, f, env, "lease", "app/db", "--ttl", "15m", "--max-ttl", "1h", "--output", "env")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var in map[string]string
		if len(f.started) != 1 || json.Unmarshal([]byte(f.started[0]), &in) != nil {
			t.Fatalf("started %v", f.started)
		}
		if in["TemplateId"] != "app/db" || in["TTL"] != "15m" || in["MaxTTL"] != "1h" || in["Owner"] != "alice" || in["LeaseId"] != "77777777-7777-4777-8777-777777777777" {
			t.Fatalf("input %v", in)
		}
		for _, want := range []string{"export SECRETSAGA_LEASE='" + leaseID + "'", "export PGPASSWORD='" + leasePw + "'", "export DB_USER='" + leaseID + "'", "export PGPORT='5432'"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if eph.polls != 3 || f.describe != 2 {
			t.Errorf("polls %d, describes %d: want it to wait for the issue", eph.polls, f.describe)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := runLease(t, newFakeEph(), running(), env, "lease", "app/db", "--output", "json")
		var out map[string]any
		if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || out["password"] != leasePw || out["lease"] != leaseID {
			t.Fatalf("exit %d, stdout %s, stderr %s", code, stdout, stderr)
		}
	})
	t.Run("table prints no password", func(t *testing.T) {
		code, stdout, stderr := runLease(t, newFakeEph(), running(), env, "lease", "app/db")
		if code != 0 || strings.Contains(stdout, leasePw) || !strings.Contains(stdout, leaseArn) {
			t.Fatalf("exit %d, stdout %s, stderr %s", code, stdout, stderr)
		}
	})
	t.Run("execution failed", func(t *testing.T) {
		f := &fakeSFN{next: fakeExec{status: sfntypes.ExecutionStatusFailed, errName: "InputError", cause: "TTL 2h0m0s is above the max TTL 1h0m0s"}}
		eph := newFakeEph()
		eph.issueAfter = 100
		code, _, stderr := runLease(t, eph, f, env, "lease", "app/db", "--ttl", "2h")
		if code != 1 || !strings.Contains(stderr, "above the max TTL") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	})
	t.Run("no state machine", func(t *testing.T) {
		code, _, stderr := runLease(t, newFakeEph(), &fakeSFN{}, nil, "lease", "app/db")
		if code != 2 || !strings.Contains(stderr, cli.EnvEphemeralStateMachineArn) {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	})
	t.Run("bad output", func(t *testing.T) {
		code, _, stderr := runLease(t, newFakeEph(), &fakeSFN{}, env, "leases", "--output", "env")
		if code != 2 {
			t.Fatalf("leases --output env: exit %d, stderr %s", code, stderr)
		}
	})
}

func TestLeasesRevokeRenew(t *testing.T) {
	eph := newFakeEph()
	code, stdout, stderr := runLease(t, eph, &fakeSFN{}, nil, "leases", "--ledger-table", "my-ledger")
	if code != 0 || !strings.Contains(stdout, leaseID) || !strings.Contains(stdout, "ISSUED") || eph.table != "my-ledger" {
		t.Fatalf("leases: exit %d, table %q, stdout %s, stderr %s", code, eph.table, stdout, stderr)
	}
	code, stdout, _ = runLease(t, eph, &fakeSFN{}, nil, "leases", "--output", "json")
	var ls []ephemeral.Lease
	if code != 0 || json.Unmarshal([]byte(stdout), &ls) != nil || len(ls) != 1 {
		t.Fatalf("leases json: %d %s", code, stdout)
	}
	code, stdout, _ = runLease(t, eph, &fakeSFN{}, nil, "revoke", leaseID)
	if code != 0 || !strings.Contains(stdout, "revoked") || len(eph.revoked) != 1 {
		t.Fatalf("revoke: %d %s", code, stdout)
	}
	code, stdout, _ = runLease(t, eph, &fakeSFN{}, nil, "renew", leaseID, "--ttl", "30m")
	if code != 0 || !strings.Contains(stdout, "2025-06-01T12:30:00Z") {
		t.Fatalf("renew: %d %s", code, stdout)
	}
	eph.renewErr = &faults.InputError{Detail: faults.Detail{SecretID: leaseID, Step: "renew", Reason: "TTL 2h0m0s goes past the lease's max"}}
	code, _, stderr = runLease(t, eph, &fakeSFN{}, nil, "renew", leaseID, "--ttl", "2h")
	if code != 1 || !strings.Contains(stderr, "goes past the lease's max") {
		t.Fatalf("renew past max: %d %s", code, stderr)
	}
}

// running is a Step Functions fake whose execution runs (the lease's wait).
func running() *fakeSFN {
	return &fakeSFN{next: fakeExec{polls: 1000, status: sfntypes.ExecutionStatusSucceeded}}
}

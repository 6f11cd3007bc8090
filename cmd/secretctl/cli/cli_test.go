package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	acct    = "arn:aws:secretsmanager:us-east-1:111122223333:secret:"
	smArn   = "arn:aws:states:us-east-1:111122223333:stateMachine:secretsaga-rotation"
	okArn   = acct + "app/db-AbCdEf"
	cfArn   = acct + "app/broken-GhIjKl"
	pdArn   = acct + "app/pending-MnOpQr"
	newArn  = acct + "app/new-StUvWx"
	oldArn  = acct + "legacy/db-YzAbCd"
	runArn  = acct + "app/busy-EfGhIj"
	deadArn = acct + "app/dead-KlMnOp"
	fleetSM = "arn:aws:states:us-east-1:111122223333:stateMachine:secretsaga-fleet"
)

// fleetSummary is a fleet execution's output: 4 secrets, 2 of which failed.
const fleetSummary = `{"Total":4,"Succeeded":2,"RolledBack":1,"Abandoned":1,"CompensationFailed":0,` +
	`"Failures":[{"SecretId":"` + pdArn + `","Outcome":"rolled back","Error":"TestFailedError"},` +
	`{"SecretId":"` + runArn + `","Outcome":"abandoned","Error":"ConflictError"}]}`

var fleetStates = []string{"FleetDefaults", "ListSecrets"}

// passwords are in the fake values; no output but get's may show them.
var passwords = []string{"pw-current-Zq81", "pw-previous-Kd20", "pw-pending-Lx77", "pw-broken-Rr31", "pw-new-Tt09", "pw-legacy-Ww44"}

func value(pw string) string {
	return `{"engine":"postgres","host":"db.internal","port":5432,"username":"app","password":"` + pw + `","dbname":"app"}`
}

const (
	v1 = "11111111-1111-4111-8111-111111111111"
	v2 = "22222222-2222-4222-8222-222222222222"
	v3 = "33333333-3333-4333-8333-333333333333"
	v4 = "44444444-4444-4444-8444-444444444444"
	v5 = "55555555-5555-4555-8555-555555555555"
	v6 = "66666666-6666-4666-8666-666666666666"
)

var forward = []ledger.State{ledger.Started, ledger.Created, ledger.SetStarted, ledger.SetDone, ledger.Tested, ledger.FinishStarted, ledger.FinishDone, ledger.Finished}

// fixture builds the fakes:
//   - app/db: rotated twice, last 10 days ago: healthy;
//   - app/broken: COMPENSATION_FAILED, lease held, AWSPENDING left;
//   - app/pending: last rotation rolled back, AWSPENDING left behind;
//   - app/new: never rotated;
//   - legacy/db: rotated 120 days ago;
//   - app/busy: a rotation running now.
func fixture() (*fakeSM, *fakeDB, *fakeSFN) {
	s := &fakeSM{secrets: []*fakeSecret{
		{name: "app/db", arn: okArn, versions: []fakeVersion{
			{id: v2, stages: []string{"AWSCURRENT"}, created: daysAgo(10), value: value("pw-current-Zq81")},
			{id: v1, stages: []string{"AWSPREVIOUS"}, created: daysAgo(40), value: value("pw-previous-Kd20")},
		}},
		{name: "app/broken", arn: cfArn, versions: []fakeVersion{
			{id: v3, stages: []string{"AWSCURRENT"}, created: daysAgo(200), value: value("pw-broken-Rr31")},
			{id: v4, stages: []string{"AWSPENDING"}, created: daysAgo(1), value: value("pw-pending-Lx77")},
		}},
		{name: "app/pending", arn: pdArn, versions: []fakeVersion{
			{id: v5, stages: []string{"AWSCURRENT"}, created: daysAgo(30), value: value("pw-current-Zq81")},
			{id: v6, stages: []string{"AWSPENDING"}, created: daysAgo(2), value: value("pw-pending-Lx77")},
		}},
		{name: "app/new", arn: newArn, versions: []fakeVersion{
			{id: v1, stages: []string{"AWSCURRENT"}, created: daysAgo(3), value: value("pw-new-Tt09")},
		}},
		{name: "legacy/db", arn: oldArn, versions: []fakeVersion{
			{id: v2, stages: []string{"AWSCURRENT"}, created: daysAgo(120), value: value("pw-legacy-Ww44")},
		}},
		{name: "app/dead", arn: deadArn, versions: []fakeVersion{
			{id: v3, stages: []string{"AWSCURRENT"}, created: daysAgo(50), value: value("pw-current-Zq81")},
			{id: v4, stages: []string{"AWSPENDING"}, created: daysAgo(1), value: value("pw-pending-Lx77")},
		}},
		{name: "app/busy", arn: runArn, versions: []fakeVersion{
			{id: v3, stages: []string{"AWSCURRENT"}, created: daysAgo(50), value: value("pw-current-Zq81")},
			{id: v4, stages: []string{"AWSPENDING"}, created: now.Add(-time.Minute), value: value("pw-pending-Lx77")},
		}},
	}}
	db := &fakeDB{}
	// app/db
	db.rotation(okArn, 1, daysAgo(40), v1, "v0", "", forward...)
	db.rotation(okArn, 2, daysAgo(10), v2, v1, "", forward...)
	db.put(ledger.Lease{PK: "SECRET#" + okArn, SK: "LEASE", Secret: okArn, Fencing: 2, Seq: 8, State: ledger.Finished, Token: v2, PreviousVersion: v1,
		SetMayHaveRun: true, FinishMayHaveRun: true, StartedAt: daysAgo(10).UnixMilli(), UpdatedAt: daysAgo(10).Add(7 * time.Minute).UnixMilli()})
	// app/broken
	db.rotation(cfArn, 3, daysAgo(1), v4, v3, "", ledger.Started, ledger.Created, ledger.SetStarted, ledger.CompensateStarted, ledger.CompensationFailed)
	db.last(cfArn, 3, func(r *ledger.Record) {
		r.ErrorClass, r.Detail = "TestFailedError", "compensation error: RetryableError"
	})
	db.put(ledger.Lease{PK: "SECRET#" + cfArn, SK: "LEASE", Secret: cfArn, Fencing: 3, Seq: 5, State: ledger.CompensationFailed, Token: v4, PreviousVersion: v3,
		Holder: "arn:aws:states:us-east-1:111122223333:execution:rotation:x-3", SetMayHaveRun: true,
		StartedAt: daysAgo(1).UnixMilli(), UpdatedAt: daysAgo(1).Add(4 * time.Minute).UnixMilli(),
		Repair: ledger.Repair{Since: daysAgo(1).Add(4 * time.Minute).UnixMilli(), Attempts: 3, LastAt: daysAgo(1).Add(7 * time.Hour).UnixMilli(),
			Note: "the target (or Secrets Manager) does not answer"}.Entered(ledger.CompensationFailed, ledger.CompensationFailed, daysAgo(1))})
	// app/pending
	db.rotation(pdArn, 1, daysAgo(30), v5, "v0", "", forward...)
	db.rotation(pdArn, 2, daysAgo(2), v6, v5, "", ledger.Started, ledger.Created, ledger.SetStarted, ledger.CompensateStarted, ledger.RolledBack)
	db.last(pdArn, 2, func(r *ledger.Record) { r.ErrorClass = "TestFailedError" })
	db.put(ledger.Lease{PK: "SECRET#" + pdArn, SK: "LEASE", Secret: pdArn, Fencing: 2, Seq: 5, State: ledger.RolledBack, Token: v6, PreviousVersion: v5,
		SetMayHaveRun: true, StartedAt: daysAgo(2).UnixMilli(), UpdatedAt: daysAgo(2).Add(4 * time.Minute).UnixMilli()})
	// legacy/db
	db.rotation(oldArn, 1, daysAgo(120), v2, "v0", "", forward...)
	db.put(ledger.Lease{PK: "SECRET#" + oldArn, SK: "LEASE", Secret: oldArn, Fencing: 1, Seq: 8, State: ledger.Finished, Token: v2,
		StartedAt: daysAgo(120).UnixMilli(), UpdatedAt: daysAgo(120).UnixMilli()})
	// app/busy: rotation 5 running now.
	db.rotation(runArn, 5, now.Add(-2*time.Minute), v4, v3, "", ledger.Started, ledger.Created)
	db.put(ledger.Lease{PK: "SECRET#" + runArn, SK: "LEASE", Secret: runArn, Fencing: 5, Seq: 2, State: ledger.Created, Token: v4, PreviousVersion: v3,
		Holder: "arn:aws:states:us-east-1:111122223333:execution:rotation:x-5", Until: now.Add(13 * time.Minute).UnixMilli(),
		StartedAt: now.Add(-2 * time.Minute).UnixMilli(), UpdatedAt: now.Add(-time.Minute).UnixMilli(),
		Logins: busyLogin.Key() + " " + busyClone.Key()})
	// Its login locks: the user's is its own; its clone's lock was last
	// taken by app/db's rotation 2, which has ended.
	db.put(ledger.LoginLock{PK: busyLogin.Key(), SK: "LOCK", Login: busyLogin.String(), Secret: runArn, Fencing: 5,
		Holder: "arn:aws:states:us-east-1:111122223333:execution:rotation:x-5", Token: v4, Rev: 3})
	db.put(ledger.LoginLock{PK: busyClone.Key(), SK: "LOCK", Login: busyClone.String(), Secret: okArn, Fencing: 2, Token: v2, Rev: 2})

	// app/dead: rotation 6's execution died after set, a day ago; its lease expired.
	db.rotation(deadArn, 6, daysAgo(1), v4, v3, "", ledger.Started, ledger.Created, ledger.SetStarted, ledger.SetDone)
	db.put(ledger.Lease{PK: "SECRET#" + deadArn, SK: "LEASE", Secret: deadArn, Fencing: 6, Seq: 4, State: ledger.SetDone, Token: v4, PreviousVersion: v3,
		Holder: "arn:aws:states:us-east-1:111122223333:execution:rotation:x-6", Until: daysAgo(1).Add(15 * time.Minute).UnixMilli(), SetMayHaveRun: true,
		StartedAt: daysAgo(1).UnixMilli(), UpdatedAt: daysAgo(1).Add(time.Minute).UnixMilli(),
		Logins: busyLogin.Key()}) // names the same login as app/busy, which took it over once this lease expired

	f := &fakeSFN{execs: map[string]*fakeExec{
		"arn:aws:states:us-east-1:111122223333:execution:rotation:x-5": {polls: 1000, status: sfntypes.ExecutionStatusRunning},
		"arn:aws:states:us-east-1:111122223333:execution:rotation:x-3": {status: sfntypes.ExecutionStatusFailed, errName: "CompensationFailedError"},
	}}
	return s, db, f
}

var (
	busyLogin = ledger.Login{Engine: "postgres", Host: "db.internal", Port: 5432, User: "app"}
	busyClone = ledger.Login{Engine: "postgres", Host: "db.internal", Port: 5432, User: "app_clone"}
)

var rotationStates = []string{"ChooseToken", "UseGivenToken", "AcquireLease", "CreateSecret", "SetSecret", "TestSecret", "FinishSecret", "ReleaseLease"}

type tcase struct {
	name   string
	args   []string
	exit   int
	env    map[string]string
	setup  func(*fakeSM, *fakeDB, *fakeSFN)
	getter bool // the command prints a value on stdout (get)
}

func cases() []tcase {
	cs := []tcase{
		{name: "help", args: []string{"--help"}},
		{name: "help_cmd_via_help", args: []string{"help", "compliance"}},
		{name: "no_args", args: nil, exit: 2},
		{name: "unknown_command", args: []string{"frobnicate"}, exit: 2},
		{name: "bad_output", args: []string{"status", "app/db", "--output", "xml"}, exit: 2},
		{name: "bad_flag", args: []string{"history", "--nope", "app/db"}, exit: 2},
		{name: "two_secrets", args: []string{"status", "a", "b"}, exit: 2},

		{name: "status_ok", args: []string{"status", "app/db"}},
		{name: "status_ok_json", args: []string{"--output", "json", "status", okArn}},
		{name: "status_compensation_failed", args: []string{"status", "app/broken"}, exit: 3},
		{name: "status_compensation_failed_json", args: []string{"status", "app/broken", "--output=json"}, exit: 3},
		{name: "status_pending_left", args: []string{"status", "app/pending"}, exit: 3},
		{name: "status_never_rotated", args: []string{"status", "app/new"}},
		{name: "status_running", args: []string{"status", "app/busy"}},
		{name: "status_dead_rotation", args: []string{"status", "app/dead"}},
		{name: "status_not_found", args: []string{"status", "app/missing"}, exit: 1},
		{name: "status_lease_of_ended_execution", args: []string{"status", "app/busy"}, exit: 3, setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
			f.execs["arn:aws:states:us-east-1:111122223333:execution:rotation:x-5"] = &fakeExec{status: sfntypes.ExecutionStatusFailed}
		}},

		{name: "history", args: []string{"history", "app/pending"}},
		{name: "history_json", args: []string{"history", "app/db", "--output", "json"}},
		{name: "history_last", args: []string{"history", "--last", "1", "app/db"}},
		{name: "history_empty", args: []string{"history", "app/new"}},

		{name: "rotate_no_state_machine", args: []string{"rotate", "app/db"}, exit: 2},
		{name: "rotate", args: []string{"rotate", "app/db", "--state-machine-arn", smArn}},
		{name: "rotate_wait", args: []string{"rotate", "app/db", "--wait", "--verify"}, env: map[string]string{cli.EnvStateMachineArn: smArn},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 2, status: sfntypes.ExecutionStatusSucceeded, states: append(cloneStrings(rotationStates), "Verify", "Succeeded")}
			}},
		{name: "rotate_wait_json", args: []string{"--output", "json", "rotate", "app/db", "--wait"}, env: map[string]string{cli.EnvStateMachineArn: smArn},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusSucceeded, states: rotationStates}
			}},
		{name: "rotate_wait_failed", args: []string{"rotate", "app/db", "--wait"}, exit: 1, env: map[string]string{cli.EnvStateMachineArn: smArn},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusFailed, errName: "TestFailedError",
					cause:  `{"errorMessage":"test: the new credential does not log in","errorType":"TestFailedError"}`,
					states: []string{"ChooseToken", "UseGivenToken", "AcquireLease", "CreateSecret", "SetSecret", "TestSecret", "Compensate", "RolledBack"},
					failed: map[string]string{"TestSecret": "TestFailedError"}}
			}},

		{name: "rollback", args: []string{"rollback", "app/db", "--state-machine-arn", smArn}},
		{name: "rollback_wait", args: []string{"rollback", "app/db", "--wait"}, env: map[string]string{cli.EnvStateMachineArn: smArn},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 2, status: sfntypes.ExecutionStatusSucceeded, states: append([]string{"Defaults"}, append(cloneStrings(rotationStates), "Succeeded")...)}
			}},
		{name: "rollback_wait_json", args: []string{"rollback", "app/db", "--wait", "--output", "json"}, env: map[string]string{cli.EnvStateMachineArn: smArn},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusSucceeded, states: rotationStates}
			}},
		{name: "rollback_wait_failed", args: []string{"rollback", "app/db", "--wait"}, exit: 1, env: map[string]string{cli.EnvStateMachineArn: smArn},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusFailed, errName: "InputError",
					cause:  `{"errorMessage":"InputError: secret \"x\", step acquire: AWSPREVIOUS cannot be rolled back to","errorType":"InputError"}`,
					states: []string{"Defaults", "ChooseToken", "UseGivenToken", "AcquireLease", "NotStarted"},
					failed: map[string]string{"AcquireLease": "InputError"}}
			}},
		{name: "rollback_never_rotated", args: []string{"rollback", "app/new", "--wait"}, exit: 1, env: map[string]string{cli.EnvStateMachineArn: smArn}},
		{name: "rollback_no_state_machine", args: []string{"rollback", "app/db"}, exit: 2},
		{name: "rollback_not_found", args: []string{"rollback", "app/missing", "--state-machine-arn", smArn}, exit: 1},

		{name: "rotate_fleet", args: []string{"rotate", "--tag", "secretsaga:rotation-group=payments", "--fleet-state-machine-arn", fleetSM}},
		{name: "rotate_fleet_json", args: []string{"rotate", "--tag", "group=a", "--max-concurrency", "3", "--output", "json"},
			env: map[string]string{cli.EnvFleetStateMachineArn: fleetSM}},
		{name: "rotate_fleet_wait", args: []string{"rotate", "--tag", "secretsaga:rotation-group=payments", "--max-concurrency", "2", "--wait"}, exit: 1,
			env: map[string]string{cli.EnvFleetStateMachineArn: fleetSM},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 2, status: sfntypes.ExecutionStatusSucceeded, states: fleetStates, mapItems: 4, output: fleetSummary}
			}},
		{name: "rotate_fleet_wait_ok", args: []string{"rotate", "--tag", "group=a", "--wait", "--verify"},
			env: map[string]string{cli.EnvFleetStateMachineArn: fleetSM},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusSucceeded, states: fleetStates, mapItems: 3,
					output: `{"Total":3,"Succeeded":3,"RolledBack":0,"Abandoned":0,"CompensationFailed":0}`}
			}},
		{name: "rotate_fleet_wait_json", args: []string{"rotate", "--tag", "group=a", "--wait", "--output", "json"}, exit: 1,
			env: map[string]string{cli.EnvFleetStateMachineArn: fleetSM},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusSucceeded, states: fleetStates, mapItems: 4, output: fleetSummary}
			}},
		{name: "rotate_fleet_wait_selection_failed", args: []string{"rotate", "--tag", "group=a", "--wait"}, exit: 1,
			env: map[string]string{cli.EnvFleetStateMachineArn: fleetSM},
			setup: func(_ *fakeSM, _ *fakeDB, f *fakeSFN) {
				f.next = fakeExec{polls: 1, status: sfntypes.ExecutionStatusFailed, errName: "InputError",
					cause:  `{"errorMessage":"InputError: secret \"\", step listsecrets: 1200 secrets carry group=a, more than the Limit of 1000","errorType":"InputError"}`,
					states: []string{"FleetDefaults", "ListSecrets", "SelectionFailed"}, failed: map[string]string{"ListSecrets": "InputError"}}
			}},
		{name: "rotate_fleet_bad_tag", args: []string{"rotate", "--tag", "payments", "--fleet-state-machine-arn", fleetSM}, exit: 2},
		{name: "rotate_fleet_and_secret", args: []string{"rotate", "app/db", "--tag", "a=b", "--fleet-state-machine-arn", fleetSM}, exit: 2},
		{name: "rotate_fleet_no_state_machine", args: []string{"rotate", "--tag", "a=b", "--state-machine-arn", smArn}, exit: 2},
		{name: "rotate_fleet_bad_concurrency", args: []string{"rotate", "--tag", "a=b", "--max-concurrency", "0", "--fleet-state-machine-arn", fleetSM}, exit: 2},

		{name: "audit", args: []string{"audit"}},
		{name: "audit_csv_since", args: []string{"audit", "--since", "15d", "--format", "csv"}},
		{name: "audit_json_since_rfc3339", args: []string{"audit", "--since", "2025-05-31T00:00:00Z", "--format", "json"}},
		{name: "audit_bad_since", args: []string{"audit", "--since", "yesterday"}, exit: 2},
		{name: "audit_custom_table", args: []string{"audit", "--ledger-table", "other"}, env: map[string]string{cli.EnvLedgerTable: "ignored"}},

		{name: "compliance", args: []string{"compliance", "--max-age", "90d"}, exit: 3},
		{name: "compliance_json", args: []string{"compliance", "--max-age", "90d", "--output", "json"}, exit: 3},
		{name: "compliance_prefix_ok", args: []string{"compliance", "--max-age", "2w", "--name-prefix", "app/db"}},
		{name: "compliance_prefix_stale", args: []string{"compliance", "--max-age", "1w", "--name-prefix", "app/db"}, exit: 3},
		{name: "compliance_bad_age", args: []string{"compliance", "--max-age", "ninety"}, exit: 2},

		{name: "get_current", args: []string{"get", "app/db", "--stage", "AWSCURRENT"}, getter: true},
		{name: "get_default_stage", args: []string{"get", "app/db"}, getter: true},
		{name: "get_version_json", args: []string{"get", "app/db", "--version", v1, "--output", "json"}, getter: true},
		{name: "get_missing_version", args: []string{"get", "app/db", "--version", v6}, exit: 1},
		{name: "get_missing_secret", args: []string{"get", "no/such/secret"}, exit: 1},
		{name: "get_missing_stage", args: []string{"get", "app/db", "--stage", "NOPE"}, exit: 1},
		{name: "empty_ledger_table", args: []string{"status", "app/db", "--ledger-table", ""}, exit: 2},
		{name: "empty_ledger_table_global", args: []string{"--ledger-table", " ", "audit"}, exit: 2},
	}
	for _, c := range []string{"status", "history", "rotate", "rollback", "audit", "compliance", "get"} {
		cs = append(cs, tcase{name: "help_" + c, args: []string{c, "--help"}})
	}
	return cs
}

func cloneStrings(s []string) []string { return append([]string(nil), s...) }

func run(t *testing.T, c tcase, s *fakeSM, db *fakeDB, f *fakeSFN) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	deps := cli.Deps{
		SM: s, DB: db, SFN: f,
		Now:      func() time.Time { return now },
		Getenv:   func(k string) string { return c.env[k] },
		Sleep:    func(context.Context, time.Duration) error { return nil },
		NewToken: func() string { return "77777777-7777-4777-8777-777777777777" },
	}
	code := cli.Run(context.Background(), c.args, &stdout, &stderr, deps)
	return code, stdout.String(), stderr.String()
}

func TestGolden(t *testing.T) {
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			s, db, f := fixture()
			if c.setup != nil {
				c.setup(s, db, f)
			}
			code, stdout, stderr := run(t, c, s, db, f)
			if code != c.exit {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.exit, stdout, stderr)
			}
			for _, pw := range passwords {
				if strings.Contains(stderr, pw) || (!c.getter && strings.Contains(stdout, pw)) {
					t.Errorf("a password appears in the output:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
				}
			}
			if strings.Contains(c.name, "json") && code != 2 && !json.Valid([]byte(stdout)) {
				t.Errorf("stdout is not JSON:\n%s", stdout)
			}
			got := "exit: " + strconv.Itoa(code) + "\n--- stdout\n" + stdout + "--- stderr\n" + stderr
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update to accept)\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

func TestRotateInput(t *testing.T) {
	s, db, f := fixture()
	f.next = fakeExec{status: sfntypes.ExecutionStatusSucceeded}
	code, _, stderr := run(t, tcase{args: []string{"rotate", "app/db", "--verify", "--state-machine-arn", smArn}}, s, db, f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var in map[string]any
	if len(f.started) != 1 || json.Unmarshal([]byte(f.started[0]), &in) != nil {
		t.Fatalf("started %v", f.started)
	}
	if in["SecretId"] != okArn || in["Verify"] != true || in["ClientRequestToken"] != "77777777-7777-4777-8777-777777777777" {
		t.Fatalf("input %v", in)
	}
}

func TestNoClients(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"status", "x"}, &stdout, &stderr, cli.Deps{ClientErr: os.ErrNotExist})
	if code != 1 || !strings.Contains(stderr.String(), "no Secrets Manager client") {
		t.Fatalf("exit %d stderr %s", code, stderr.String())
	}
	// Help needs no client.
	if code := cli.Run(context.Background(), []string{"get", "-h"}, &stdout, &stderr, cli.Deps{}); code != 0 {
		t.Fatalf("help exit %d", code)
	}
}

func TestRollbackInput(t *testing.T) {
	s, db, f := fixture()
	f.next = fakeExec{status: sfntypes.ExecutionStatusSucceeded}
	code, _, stderr := run(t, tcase{args: []string{"rollback", "app/db", "--state-machine-arn", smArn}}, s, db, f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var in map[string]any
	if len(f.started) != 1 || json.Unmarshal([]byte(f.started[0]), &in) != nil {
		t.Fatalf("started %v", f.started)
	}
	if len(in) != 3 || in["SecretId"] != okArn || in["Rollback"] != true || in["ClientRequestToken"] != v1 {
		t.Fatalf("input %v, want the AWSPREVIOUS version %s", in, v1)
	}
}

func TestRollbackRefusedStartsNothing(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(*fakeSM)
	}{
		{"no AWSPREVIOUS", nil},
		{"AWSPREVIOUS is AWSCURRENT", func(s *fakeSM) {
			s.secrets[3].versions[0].stages = []string{"AWSCURRENT", "AWSPREVIOUS"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, db, f := fixture()
			if c.setup != nil {
				c.setup(s)
			}
			code, _, stderr := run(t, tcase{args: []string{"rollback", "app/new", "--state-machine-arn", smArn}}, s, db, f)
			if code != 1 || !strings.Contains(stderr, "cannot roll back app/new") || len(f.started) != 0 {
				t.Fatalf("exit %d, started %v, stderr %s", code, f.started, stderr)
			}
		})
	}
}

func TestFleetInput(t *testing.T) {
	s, db, f := fixture()
	f.next = fakeExec{status: sfntypes.ExecutionStatusSucceeded}
	code, _, stderr := run(t, tcase{args: []string{"rotate", "--tag", "k=v=w", "--max-concurrency", "7", "--fleet-state-machine-arn", fleetSM}}, s, db, f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var in map[string]any
	if len(f.started) != 1 || json.Unmarshal([]byte(f.started[0]), &in) != nil {
		t.Fatalf("started %v", f.started)
	}
	if len(in) != 3 || in["TagKey"] != "k" || in["TagValue"] != "v=w" || in["MaxConcurrency"] != 7.0 {
		t.Fatalf("input %v", in)
	}
}

package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

func consumer(role, version string, daysBack float64) ledger.Consumer {
	return ledger.Consumer{PK: "SECRET#" + okArn, SK: ledger.ConsumerPrefix + role, Secret: okArn, Consumer: role,
		Principal: strings.Replace(role, ":iam::", ":sts::", 1) + "/s", LastRead: daysAgo(daysBack).UnixMilli(), VersionID: version}
}

// consumers lists what the audit recorded; rotate --require-fresh-consumers
// refuses, starting nothing, while a consumer holds a version older than
// AWSCURRENT, and starts the rotation once every consumer is fresh.
func TestConsumersAndRequireFresh(t *testing.T) {
	const fresh, stale = "arn:aws:iam::111122223333:role/fresh-app", "arn:aws:iam::111122223333:role/cached-app"
	s, db, f := fixture()
	db.put(consumer(fresh, v2, 1))
	db.put(consumer(stale, v1, 30))
	code, stdout, stderr := run(t, tcase{args: []string{"consumers", "app/db", "--output", "json"}}, s, db, f)
	if code != 0 {
		t.Fatalf("consumers: exit %d: %s", code, stderr)
	}
	var rep struct {
		Consumers []struct {
			Consumer              string
			Stale, AlreadyInvalid bool
			VersionsBehind        int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Consumers) != 2 {
		t.Fatalf("consumers output %s: %v", stdout, err)
	}
	// Sorted by role: cached-app first. Single user (no lease, no tag):
	// its password already changed.
	if c := rep.Consumers[0]; c.Consumer != stale || !c.Stale || !c.AlreadyInvalid || c.VersionsBehind != 1 {
		t.Errorf("stale consumer = %+v", c)
	}
	if c := rep.Consumers[1]; c.Consumer != fresh || c.Stale {
		t.Errorf("fresh consumer = %+v", c)
	}
	f.next = fakeExec{status: sfntypes.ExecutionStatusSucceeded}
	code, _, stderr = run(t, tcase{args: []string{"rotate", "app/db", "--require-fresh-consumers", "--state-machine-arn", smArn}}, s, db, f)
	if code != 1 || !strings.Contains(stderr, "refused, nothing started") || !strings.Contains(stderr, stale) || len(f.started) != 0 {
		t.Fatalf("stale consumer: exit %d, started %v, stderr %s", code, f.started, stderr)
	}
	// It reads again: fresh.
	db.items = db.items[:len(db.items)-1]
	db.put(consumer(stale, v2, 0.1))
	code, _, stderr = run(t, tcase{args: []string{"rotate", "app/db", "--require-fresh-consumers", "--state-machine-arn", smArn}}, s, db, f)
	if code != 0 || len(f.started) != 1 {
		t.Fatalf("fresh consumers: exit %d, started %v, stderr %s", code, f.started, stderr)
	}
	if code, _, _ := run(t, tcase{args: []string{"rotate", "--tag", "k=v", "--require-fresh-consumers"}}, s, db, f); code != 2 {
		t.Errorf("--tag with --require-fresh-consumers: exit %d, want usage", code)
	}
	code, stdout, _ = run(t, tcase{args: []string{"consumers", "app/db"}}, s, db, f)
	if code != 0 || !strings.Contains(stdout, "NEXT ROTATION") || !strings.Contains(stdout, "fine") {
		t.Errorf("consumers table: exit %d\n%s", code, stdout)
	}
}

// audit --with-reads merges the access audit's items with the journal, in
// time order; without it the export is the journal alone.
func TestAuditWithReads(t *testing.T) {
	s, db, f := fixture()
	at := daysAgo(5)
	for _, a := range []ledger.Access{
		{Secret: okArn, EventID: "ev-read", EventName: "GetSecretValue", At: at.UnixMilli(), Principal: "arn:aws:sts::111122223333:assumed-role/app/s",
			Consumer: "arn:aws:iam::111122223333:role/app", VersionID: v2, Verdict: "declared"},
		{Secret: okArn, EventID: "ev-denied", EventName: "GetSecretValue", At: at.Add(time.Minute).UnixMilli(), Principal: "arn:aws:sts::111122223333:assumed-role/mallory/s",
			Consumer: "arn:aws:iam::111122223333:role/mallory", ErrorCode: "AccessDenied", Verdict: "denied"},
	} {
		a.PK, a.SK = "SECRET#"+okArn, ledger.AccessSK(a.Time(), a.EventID)
		db.put(a)
	}
	_, plain, _ := run(t, tcase{args: []string{"audit", "--format", "json"}}, s, db, f)
	code, merged, stderr := run(t, tcase{args: []string{"audit", "--with-reads", "--format", "json"}}, s, db, f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var a, b []struct {
		Time         time.Time
		State, Actor string
		Version      string
		ErrorClass   string
	}
	if json.Unmarshal([]byte(plain), &a) != nil || json.Unmarshal([]byte(merged), &b) != nil || len(b) != len(a)+2 {
		t.Fatalf("plain %d records, merged %d; want 2 more\n%s", len(a), len(b), merged)
	}
	states := ""
	for i, r := range b {
		if i > 0 && r.Time.Before(b[i-1].Time) {
			t.Errorf("not in time order at %d", i)
		}
		if r.State == "READ" || r.State == "DENIED" {
			states += r.State + ":" + r.Version + ":" + r.ErrorClass + " "
		}
	}
	if states != "READ:"+v2+": DENIED::AccessDenied " {
		t.Errorf("reads in the export: %q", states)
	}
	code, csvOut, _ := run(t, tcase{args: []string{"audit", "--with-reads", "--format", "csv"}}, s, db, f)
	if code != 0 || !strings.Contains(csvOut, "READ,arn:aws:sts::111122223333:assumed-role/app/s") {
		t.Errorf("csv:\n%s", csvOut)
	}
}

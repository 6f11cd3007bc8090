package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

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

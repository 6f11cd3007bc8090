package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

const secretARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf"

type fakeSM struct {
	tags   map[string]string
	stages map[string][]string
	calls  int
}

func (f *fakeSM) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	f.calls++
	if id := aws.ToString(in.SecretId); id != "app/db" && id != secretARN {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("no")}
	}
	out := &secretsmanager.DescribeSecretOutput{ARN: aws.String(secretARN), VersionIdsToStages: f.stages}
	for k, v := range f.tags {
		out.Tags = append(out.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out, nil
}

type fakeJournal struct {
	lease ledger.Lease
	hist  []ledger.Record
}

func (f *fakeJournal) Get(context.Context, string) (ledger.Lease, bool, error) {
	return f.lease, true, nil
}
func (f *fakeJournal) History(context.Context, string) ([]ledger.Record, error) {
	return f.hist, nil
}

// fakeStore keeps items as the ledger would: one access per event, a
// consumer's last read only moving forward.
type fakeStore struct {
	mu        sync.Mutex
	accesses  map[string]ledger.Access
	consumers map[string]ledger.Consumer
	puts      int
	// journal backs RecentJournal (the ledger's read items share its table).
	journal      *fakeJournal
	journalReads int
}

func newStore() *fakeStore {
	return &fakeStore{accesses: map[string]ledger.Access{}, consumers: map[string]ledger.Consumer{}}
}

func (f *fakeStore) Record(_ context.Context, a ledger.Access) (ledger.Access, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.accesses[a.EventID]; ok {
		return old, false, nil
	}
	f.puts++
	f.accesses[a.EventID] = a
	return a, true, nil
}

func (f *fakeStore) AlertSent(_ context.Context, a ledger.Access) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.accesses[a.EventID]
	x.AlertPending = false
	f.accesses[a.EventID] = x
	return nil
}

func (f *fakeStore) Touch(_ context.Context, c ledger.Consumer) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.consumers[c.Consumer]; ok && old.LastRead > c.LastRead {
		return false, nil
	}
	f.consumers[c.Consumer] = c
	return true, nil
}

func (f *fakeStore) RecentJournal(ctx context.Context, _ string, n int32) ([]ledger.Record, error) {
	f.journalReads++
	hist, _ := f.journal.History(ctx, "")
	if len(hist) > int(n) {
		hist = hist[len(hist)-int(n):]
	}
	return hist, nil
}

func (f *fakeStore) Consumers(context.Context, string) ([]ledger.Consumer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.Consumer
	for _, c := range f.consumers {
		out = append(out, c)
	}
	return out, nil
}

type fakeBus struct {
	failNext int
	sent     []struct {
		DetailType string
		Alert      Alert
	}
}

func (f *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	if f.failNext > 0 {
		f.failNext--
		return nil, errors.New("connection reset")
	}
	for _, e := range in.Entries {
		var a Alert
		if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &a); err != nil {
			return nil, err
		}
		f.sent = append(f.sent, struct {
			DetailType string
			Alert      Alert
		}{aws.ToString(e.DetailType), a})
	}
	return &eventbridge.PutEventsOutput{}, nil
}

type rig struct {
	svc   *Service
	sm    *fakeSM
	store *fakeStore
	bus   *fakeBus
	logs  *bytes.Buffer
}

func newRig() *rig {
	r := &rig{
		sm: &fakeSM{tags: map[string]string{GroupTag: "prod", ReadersTag: "app-reader"},
			stages: map[string][]string{"v2": {"AWSCURRENT"}, "v1": {"AWSPREVIOUS"}}},
		store: newStore(), bus: &fakeBus{}, logs: &bytes.Buffer{},
	}
	at := func(s string) int64 { t, _ := time.Parse(time.RFC3339, s); return t.UnixMilli() }
	j := &fakeJournal{hist: []ledger.Record{
		{State: ledger.Started, At: at("2026-12-01T00:00:00Z"), Token: "v1", PreviousVersion: "v0"},
		{State: ledger.Finished, At: at("2026-12-01T00:00:01Z"), Token: "v1"},
		{State: ledger.Started, At: at("2026-12-03T05:00:00Z"), Token: "v2", PreviousVersion: "v1"},
		{State: ledger.Finished, At: at("2026-12-03T05:00:01Z"), Token: "v2"},
	}}
	r.store.journal = j
	r.svc = &Service{SM: r.sm, Journal: j, Store: r.store, Events: r.bus, Group: "prod",
		Trusted: ParseReaders("arn:aws:iam::111122223333:role/secretsaga-*"),
		Log:     slog.New(slog.NewJSONHandler(r.logs, nil))}
	return r
}

func withPrincipal(arn string) func(map[string]any) {
	return func(r map[string]any) { r["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": arn} }
}

func TestHandle(t *testing.T) {
	ctx := context.Background()
	stranger := withPrincipal("arn:aws:sts::111122223333:assumed-role/intruder/s")
	for _, c := range []struct {
		name      string
		events    [][]byte
		setup     func(*rig)
		wantErr   string // fault name
		accesses  int
		verdict   string
		version   string
		alerts    []string
		consumers int
		log       string
	}{
		{name: "declared reader: recorded, the version from the journal, no alert", events: [][]byte{event(nil)},
			accesses: 1, verdict: VerdictDeclared, version: "v1", consumers: 1},
		{name: "undeclared principal: alert", events: [][]byte{event(stranger)},
			accesses: 1, verdict: VerdictUndeclared, version: "v1", alerts: []string{UnauthorizedSecretAccess}, consumers: 1},
		{name: "denied call: alert, no consumer", events: [][]byte{event(func(r map[string]any) { r["errorCode"] = "AccessDenied" })},
			accesses: 1, verdict: VerdictDenied, alerts: []string{UnauthorizedSecretAccess}},
		{name: "the product's own function: trusted, not a consumer",
			events:   [][]byte{event(withPrincipal("arn:aws:sts::111122223333:assumed-role/secretsaga-createsecret/x"))},
			accesses: 1, verdict: VerdictTrusted, version: "v1"},
		{name: "no readers declared: recorded, not judged", setup: func(r *rig) { delete(r.sm.tags, ReadersTag) },
			events: [][]byte{event(stranger)}, accesses: 1, verdict: VerdictUnjudged, version: "v1", consumers: 1},
		{name: "named version", events: [][]byte{event(func(r map[string]any) {
			r["requestParameters"] = map[string]any{"secretId": "app/db", "versionId": "v9"}
		})}, accesses: 1, verdict: VerdictDeclared, version: "v9", consumers: 1},
		{name: "a read after the second rotation gets v2", events: [][]byte{event(func(r map[string]any) { r["eventTime"] = "2026-12-03T06:00:00Z" })},
			accesses: 1, verdict: VerdictDeclared, version: "v2", consumers: 1},
		{name: "redelivered undeclared read: one item, one alert", events: [][]byte{event(stranger), event(stranger)},
			accesses: 1, verdict: VerdictUndeclared, version: "v1", alerts: []string{UnauthorizedSecretAccess}, consumers: 1},
		{name: "secret outside the group: ignored", setup: func(r *rig) { r.sm.tags[GroupTag] = "other" },
			events: [][]byte{event(stranger)}, log: "secret outside the rotation group"},
		{name: "unknown secret: ignored", events: [][]byte{event(func(r map[string]any) {
			r["requestParameters"] = map[string]any{"secretId": "gone"}
		})}, log: "no such secret"},
		{name: "malformed: ignored with a log line", events: [][]byte{[]byte("{"), []byte(`{"source":"aws.s3"}`)}, log: "event ignored"},
		{name: "a call that reads nothing: noted", events: [][]byte{event(func(r map[string]any) { r["eventName"] = "DescribeSecret" })}, log: "call noted"},
		{name: "alert not published: retryable, nothing lost", setup: func(r *rig) { r.bus.failNext = 1 },
			events: [][]byte{event(stranger)}, wantErr: faults.NameRetryable, accesses: 1, verdict: VerdictUndeclared, version: "v1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			if c.setup != nil {
				c.setup(r)
			}
			var err error
			for _, e := range c.events {
				if err = r.svc.Handle(ctx, e); err != nil {
					break
				}
			}
			if got := faults.Name(err); got != c.wantErr {
				t.Fatalf("error %v (%q), want %q", err, got, c.wantErr)
			}
			if len(r.store.accesses) != c.accesses {
				t.Fatalf("%d accesses recorded, want %d", len(r.store.accesses), c.accesses)
			}
			for _, a := range r.store.accesses {
				if a.Verdict != c.verdict || a.VersionID != c.version {
					t.Errorf("access = %+v, want verdict %s version %q", a, c.verdict, c.version)
				}
				if c.wantErr == "" && a.AlertPending {
					t.Errorf("alert still pending: %+v", a)
				}
			}
			var alerts []string
			for _, s := range r.bus.sent {
				alerts = append(alerts, s.DetailType)
				if s.Alert.Severity != "critical" || s.Alert.SecretARN != secretARN || s.Alert.Action == "" {
					t.Errorf("alert = %+v", s.Alert)
				}
			}
			if strings.Join(alerts, ",") != strings.Join(c.alerts, ",") {
				t.Errorf("alerts %v, want %v", alerts, c.alerts)
			}
			if len(r.store.consumers) != c.consumers {
				t.Errorf("%d consumers, want %d", len(r.store.consumers), c.consumers)
			}
			if !strings.Contains(r.logs.String(), c.log) {
				t.Errorf("log lacks %q:\n%s", c.log, r.logs.String())
			}
		})
	}
}

// The alert that failed to go out goes out on the retry; the call is still
// recorded once.
func TestAlertRetried(t *testing.T) {
	r := newRig()
	r.bus.failNext = 1
	ev := event(withPrincipal("arn:aws:sts::111122223333:assumed-role/intruder/s"))
	if err := r.svc.Handle(context.Background(), ev); faults.Name(err) != faults.NameRetryable {
		t.Fatalf("first attempt: %v", err)
	}
	if err := r.svc.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if len(r.bus.sent) != 1 || r.store.puts != 1 {
		t.Errorf("%d alerts, %d puts; want 1, 1", len(r.bus.sent), r.store.puts)
	}
}

// A consumer that read v1 before the rotation to v2 is announced when
// AWSCURRENT moves: with alternating users it breaks at the next rotation,
// with a single user its password already changed.
func TestStaleConsumerOnFinish(t *testing.T) {
	finish := event(func(r map[string]any) {
		r["eventName"] = "UpdateSecretVersionStage"
		r["eventID"] = "finish"
		r["eventTime"] = "2026-12-03T05:00:01Z"
		r["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/secretsaga-finishsecret/x"}
		r["requestParameters"] = map[string]any{"secretId": secretARN, "versionStage": "AWSCURRENT", "moveToVersionId": "v2", "removeFromVersionId": "v1"}
	})
	for _, c := range []struct {
		name          string
		logins        string
		breaks, known bool
	}{
		{"alternating users", "LOGIN#postgres#db#5432#app LOGIN#postgres#db#5432#app_clone", true, false},
		{"single user", "LOGIN#postgres#db#5432#app", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			r.sm.tags[ReadersTag] = "app-reader other-app"
			r.svc.Journal.(*fakeJournal).lease = ledger.Lease{Logins: c.logins}
			if err := r.svc.Handle(context.Background(), event(nil)); err != nil { // reads v1 at 01:02
				t.Fatal(err)
			}
			fresh := event(func(rec map[string]any) {
				rec["eventID"] = "fresh"
				rec["eventTime"] = "2026-12-03T06:00:00Z"
				rec["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/other-app/s"}
			})
			if err := r.svc.Handle(context.Background(), fresh); err != nil { // reads v2
				t.Fatal(err)
			}
			if err := r.svc.Handle(context.Background(), finish); err != nil {
				t.Fatal(err)
			}
			if len(r.bus.sent) != 1 || r.bus.sent[0].DetailType != StaleConsumerEvent {
				t.Fatalf("events = %+v, want one Stale Consumer", r.bus.sent)
			}
			a := r.bus.sent[0].Alert
			if a.Consumer != "arn:aws:iam::111122223333:role/app-reader" || a.VersionID != "v1" || a.VersionsBehind != 1 ||
				a.BreaksAtNextRotation != c.breaks || a.AlreadyInvalid != c.known || a.Severity != "warning" {
				t.Errorf("alert = %+v", a)
			}
		})
	}
}

func TestAssess(t *testing.T) {
	stages := map[string][]string{"v3": {"AWSCURRENT"}, "v2": {"AWSPREVIOUS"}}
	cs := []ledger.Consumer{{Consumer: "cur", VersionID: "v3"}, {Consumer: "prev", VersionID: "v2"}, {Consumer: "old", VersionID: "v1"}}
	type want struct {
		behind                int
		stale, breaks, broken bool
	}
	for _, c := range []struct {
		alternating bool
		want        []want
	}{
		{false, []want{{0, false, false, false}, {1, true, false, true}, {2, true, false, true}}},
		{true, []want{{0, false, false, false}, {1, true, true, false}, {2, true, false, true}}},
	} {
		for i, st := range Assess(cs, stages, c.alternating) {
			got := want{st.VersionsBehind, st.Stale, st.BreaksAtNextRotation, st.AlreadyInvalid}
			if got != c.want[i] {
				t.Errorf("alternating=%v %s: %+v, want %+v", c.alternating, st.Consumer.Consumer, got, c.want[i])
			}
		}
	}
	if !Alternating(ledger.Lease{}, "alternating") || Alternating(ledger.Lease{Logins: "a a_clone"}, "single") || Alternating(ledger.Lease{Logins: "a b"}, "") {
		t.Error("Alternating")
	}
}

func TestStagesAt(t *testing.T) {
	at := func(s int) int64 { return time.Unix(int64(s), 0).UnixMilli() }
	hist := []ledger.Record{
		{State: ledger.Started, At: at(10), Token: "v2", PreviousVersion: "v1"},
		{State: ledger.FinishDone, At: at(20), Token: "v2"},
		{State: ledger.RolledBack, At: at(30), Token: "v2", PreviousVersion: "v1"},
	}
	for _, c := range []struct {
		t         int
		cur, prev string
	}{{5, "", ""}, {9, "", ""}, {10, "v1", ""}, {15, "v1", ""}, {20, "v2", "v1"}, {25, "v2", "v1"}, {35, "v1", "v2"}} {
		cur, prev := StagesAt(hist, time.Unix(int64(c.t), 0))
		if cur != c.cur || prev != c.prev {
			t.Errorf("at %d: %q/%q, want %q/%q", c.t, cur, prev, c.cur, c.prev)
		}
	}
}

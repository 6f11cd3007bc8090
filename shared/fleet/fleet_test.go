package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
)

// fakeSecrets pages through a fixed list, two entries a page, and applies
// the tag-key and tag-value filters separately, as AWS does.
type fakeSecrets struct {
	list []smtypes.SecretListEntry
	err  error
	page int // entries a page; 0 means 2
}

func (f *fakeSecrets) ListSecrets(_ context.Context, in *sm.ListSecretsInput, _ ...func(*sm.Options)) (*sm.ListSecretsOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	var match []smtypes.SecretListEntry
	for _, e := range f.list {
		ok := true
		for _, flt := range in.Filters {
			found := false
			for _, t := range e.Tags {
				if (flt.Key == smtypes.FilterNameStringTypeTagKey && aws.ToString(t.Key) == flt.Values[0]) ||
					(flt.Key == smtypes.FilterNameStringTypeTagValue && aws.ToString(t.Value) == flt.Values[0]) {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			match = append(match, e)
		}
	}
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	end := min(start+cmp.Or(f.page, 2), len(match))
	out := &sm.ListSecretsOutput{SecretList: match[start:end]}
	if end < len(match) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

func entry(arn string, deleted bool, tags ...string) smtypes.SecretListEntry {
	e := smtypes.SecretListEntry{ARN: aws.String(arn)}
	for i := 0; i+1 < len(tags); i += 2 {
		e.Tags = append(e.Tags, smtypes.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
	}
	if deleted {
		e.DeletedDate = aws.Time(time.Unix(0, 0))
	}
	return e
}

func TestList(t *testing.T) {
	secrets := &fakeSecrets{list: []smtypes.SecretListEntry{
		entry("arn:c", false, "group", "a"),
		entry("arn:a", false, "group", "a"),
		entry("arn:b", false, "group", "b"),
		entry("arn:x", false, "group", "b", "other", "a"), // key and value match, but not as one pair
		entry("arn:d", true, "group", "a"),                // scheduled for deletion
		entry("arn:e", false, "group", "a"),
	}}
	tests := []struct {
		name    string
		in      ListInput
		want    []string
		wantErr string
	}{
		{"tag pair, sorted, across pages", ListInput{TagKey: "group", TagValue: "a"}, []string{"arn:a", "arn:c", "arn:e"}, ""},
		{"other value", ListInput{TagKey: "group", TagValue: "b"}, []string{"arn:b", "arn:x"}, ""},
		{"nothing matches", ListInput{TagKey: "group", TagValue: "z"}, nil, ""},
		{"missing key", ListInput{TagValue: "a"}, nil, faults.NameInput},
		{"over the limit", ListInput{TagKey: "group", TagValue: "a", Limit: 2}, nil, faults.NameInput},
		{"negative limit", ListInput{TagKey: "group", TagValue: "a", Limit: -1}, nil, faults.NameInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := (&Service{Secrets: secrets}).List(context.Background(), tt.in)
			if got := faults.Name(err); got != tt.wantErr && !(tt.wantErr == "" && err == nil) {
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
			if tt.wantErr == "" && (!slices.Equal(out.SecretIds, tt.want) || out.Count != len(tt.want)) {
				t.Fatalf("got %v (%d), want %v", out.SecretIds, out.Count, tt.want)
			}
		})
	}
}

func TestListClassifiesAPIErrors(t *testing.T) {
	_, err := (&Service{Secrets: &fakeSecrets{err: errors.New("connection reset")}}).List(context.Background(), ListInput{TagKey: "k", TagValue: "v"})
	if faults.Name(err) != faults.NameRetryable {
		t.Fatalf("err = %v, want RetryableError", err)
	}
}

func TestSummarize(t *testing.T) {
	in := SummaryInput{Results: []ItemResult{
		{SecretArn: "a", State: "FINISHED"},
		{SecretArn: "b", State: "FINISHED"},
		{SecretId: "c", Error: faults.NameTestFailed},
		{SecretId: "d", Error: faults.NameRetryable},
		{SecretId: "e", Error: faults.NameConflict},
		{SecretId: "f", Error: faults.NameCompensationFailed},
	}}
	sum, err := (&Service{}).Summarize(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Total: 6, Succeeded: 2, RolledBack: 2, Abandoned: 1, CompensationFailed: 1}
	if sum.Total != want.Total || sum.Succeeded != want.Succeeded || sum.RolledBack != want.RolledBack ||
		sum.Abandoned != want.Abandoned || sum.CompensationFailed != want.CompensationFailed || len(sum.Failures) != 4 {
		t.Fatalf("summary %+v, want %+v and 4 failures", sum, want)
	}
	if s := sum.String(); s != "6 secrets: 2 succeeded, 2 rolled back, 1 abandoned, 1 compensation failed" {
		t.Errorf("String() = %q", s)
	}
}

// fakeBus records what is published, or fails.
type fakeBus struct {
	got []events.Event
	err error
}

func (b *fakeBus) Publish(_ context.Context, e events.Event) error {
	if b.err != nil {
		return b.err
	}
	b.got = append(b.got, e)
	return nil
}

func TestReport(t *testing.T) {
	tests := []struct {
		name         string
		in           ReportInput
		busErr       error
		wantErr      string
		wantOutcome  string
		wantSeverity string
	}{
		{"lease held at acquire", ReportInput{SecretId: "arn:a", ExecutionArn: "arn:x", Error: CaughtError{Error: faults.NameConflict, Cause: "lease held"}}, nil, "", OutcomeAbandoned, "critical"},
		{"acquire failed", ReportInput{SecretId: "arn:a", Error: CaughtError{Error: faults.NameInput}}, nil, "", OutcomeRolledBack, "warning"},
		{"compensation failed", ReportInput{SecretId: "arn:a", Error: CaughtError{Error: faults.NameCompensationFailed}}, nil, "", OutcomeCompensationFailed, "critical"},
		{"no secret", ReportInput{Error: CaughtError{Error: faults.NameConflict}}, nil, faults.NameInput, "", ""},
		{"no error", ReportInput{SecretId: "arn:a"}, nil, faults.NameInput, "", ""},
		{"bus down", ReportInput{SecretId: "arn:a", Error: CaughtError{Error: faults.NameConflict}}, errors.New("connection reset"), faults.NameRetryable, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := &fakeBus{err: tt.busErr}
			_, err := (&Service{Events: bus}).Report(context.Background(), tt.in)
			if got := faults.Name(err); got != tt.wantErr && !(tt.wantErr == "" && err == nil) {
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				if len(bus.got) != 0 {
					t.Fatalf("published %+v on error", bus.got)
				}
				return
			}
			if len(bus.got) != 1 {
				t.Fatalf("published %d events, want 1", len(bus.got))
			}
			e := bus.got[0]
			if e.DetailType != events.FleetRotationFailed || e.Detail.SecretARN != tt.in.SecretId || e.Detail.ExecutionARN != tt.in.ExecutionArn ||
				e.Detail.ErrorClass != tt.in.Error.Error || e.Detail.Outcome != tt.wantOutcome || e.Detail.Severity != tt.wantSeverity {
				t.Fatalf("event %+v", e)
			}
		})
	}
}

// pages lists every page of the selection, as the fleet machine's loop does.
func pages(t *testing.T, svc *Service, in ListInput) [][]string {
	t.Helper()
	var out [][]string
	for {
		page, err := svc.List(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.SecretIds)
		if page.Next == "" {
			return out
		}
		if len(out) > 10000 {
			t.Fatal("no last page")
		}
		in.After = page.Next
	}
}

func TestListPages(t *testing.T) {
	long := strings.Repeat("n", 512) // the longest secret name
	tests := []struct {
		name      string
		n         int    // secrets carrying the tag
		nameOf    string // their names' stem
		pageSize  int
		wantPages int
	}{
		{"page size 2, 5 secrets", 5, "s", 2, 3},
		{"page size 2, 4 secrets", 4, "s", 2, 2},
		// ~70-byte ARNs: 48 KiB hold 670.
		{"default page size, bounded by bytes", 2500, "s", 0, 4},
		{"default page size", 1500, "", 0, 2},
		{"one secret", 1, "s", 0, 1},
		{"no secret", 0, "s", 0, 1},
		// 48 KiB of ~580-byte ARNs: 84 a page.
		{"the longest names: bounded by bytes", 300, long, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := &fakeSecrets{page: 100}
			var want []string
			for i := range tt.n {
				arn := fmt.Sprintf("arn:aws:secretsmanager:us-east-1:123456789012:secret:%s%05d-AbCdEf", tt.nameOf, i)
				if tt.nameOf == "" {
					arn = fmt.Sprintf("arn:%05d", i) // short: bounded by the page size
				}
				secrets.list = append(secrets.list, entry(arn, false, "group", "a"))
				want = append(want, arn)
			}
			secrets.list = append(secrets.list, entry("arn:other", false, "group", "b"))
			got := pages(t, &Service{Secrets: secrets}, ListInput{TagKey: "group", TagValue: "a", PageSize: tt.pageSize})
			if len(got) != tt.wantPages {
				t.Errorf("%d pages, want %d", len(got), tt.wantPages)
			}
			var all []string
			for _, p := range got {
				if b, _ := json.Marshal(p); len(b) > PageBytes {
					t.Errorf("a page of %d bytes, more than %d", len(b), PageBytes)
				}
				if len(p) > cmp.Or(tt.pageSize, MaxPageSize) {
					t.Errorf("a page of %d secrets", len(p))
				}
				all = append(all, p...)
			}
			if !slices.Equal(all, want) {
				t.Errorf("the pages hold %d secrets, want each of the %d exactly once", len(all), len(want))
			}
		})
	}
}

// TestListCursorIsStable: secrets tagged or untagged between two pages
// shift positions, not the order, so no secret is taken twice or skipped.
func TestListCursorIsStable(t *testing.T) {
	secrets := &fakeSecrets{list: []smtypes.SecretListEntry{
		entry("arn:b", false, "group", "a"), entry("arn:d", false, "group", "a"), entry("arn:f", false, "group", "a"), entry("arn:h", false, "group", "a"),
	}}
	svc := &Service{Secrets: secrets}
	in := ListInput{TagKey: "group", TagValue: "a", PageSize: 2}
	first, err := svc.List(context.Background(), in)
	if err != nil || !slices.Equal(first.SecretIds, []string{"arn:b", "arn:d"}) || first.Next != "arn:d" {
		t.Fatalf("first page %+v, %v", first, err)
	}
	// Meanwhile arn:a is tagged and arn:b untagged (both before the cursor).
	secrets.list = append(secrets.list[1:], entry("arn:a", false, "group", "a"))
	in.After = first.Next
	second, err := svc.List(context.Background(), in)
	if err != nil || !slices.Equal(second.SecretIds, []string{"arn:f", "arn:h"}) || second.Next != "" {
		t.Fatalf("second page %+v, %v", second, err)
	}
}

func TestListPageInput(t *testing.T) {
	secrets := &fakeSecrets{list: []smtypes.SecretListEntry{entry("arn:a", false, "g", "a"), entry("arn:b", false, "g", "a"), entry("arn:c", false, "g", "a")}}
	for _, tt := range []struct {
		name    string
		in      ListInput
		wantErr string
	}{
		{"page size too large", ListInput{TagKey: "g", TagValue: "a", PageSize: MaxPageSize + 1}, faults.NameInput},
		{"negative page size", ListInput{TagKey: "g", TagValue: "a", PageSize: -1}, faults.NameInput},
		{"over the limit on the first page", ListInput{TagKey: "g", TagValue: "a", Limit: 2, PageSize: 1}, faults.NameInput},
		// Later pages do not stop a fleet that has started.
		{"over the limit on a later page", ListInput{TagKey: "g", TagValue: "a", Limit: 2, PageSize: 1, After: "arn:a"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Service{Secrets: secrets}).List(context.Background(), tt.in)
			if got := faults.Name(err); got != tt.wantErr && !(tt.wantErr == "" && err == nil) {
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
		})
	}
}

// TestSummarizePages: each page adds to the Totals of the pages before;
// the counts stay exact when the failure list is full.
func TestSummarizePages(t *testing.T) {
	svc := &Service{}
	var sum Summary
	for page := range 3 {
		var in SummaryInput
		in.Totals = sum
		for i := range 40 {
			r := ItemResult{SecretArn: fmt.Sprintf("arn:%d-%d", page, i), State: "FINISHED"}
			if i%2 == 0 {
				r = ItemResult{SecretId: r.SecretArn, Error: faults.NameTestFailed}
			}
			in.Results = append(in.Results, r)
		}
		var err error
		if sum, err = svc.Summarize(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if sum.Total != 120 || sum.Succeeded != 60 || sum.RolledBack != 60 || len(sum.Failures) != MaxListedFailures || sum.FailuresNotListed != 60-MaxListedFailures {
		t.Fatalf("summary %+v (%d failures listed)", sum, len(sum.Failures))
	}
	if sum.Failures[0].SecretId != "arn:0-0" || sum.Failures[MaxListedFailures-1].SecretId != "arn:2-18" {
		t.Errorf("failures listed %v ... %v, want the first ones in order", sum.Failures[0], sum.Failures[MaxListedFailures-1])
	}
}

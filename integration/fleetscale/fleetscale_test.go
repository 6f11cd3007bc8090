//go:build integration

// Package fleetscale runs the fleet state machine's frame at fleet sizes
// the full local stack cannot rotate in a test: the real listsecrets,
// fleetsummary and fleetreport steps (shared/fleet, over an in-memory
// Secrets Manager listing) around a one-Task stand-in for each secret's
// saga, on the same local ASL interpreter, measuring every state's input
// and output against Step Functions' payload limit.
package fleetscale

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/integration/lambdalocal"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/statemachines"
)

// listing is an in-memory ListSecrets: every secret carries the tag pair,
// 100 a page as AWS answers at most.
type listing struct{ arns []string }

func (l *listing) ListSecrets(_ context.Context, in *sm.ListSecretsInput, _ ...func(*sm.Options)) (*sm.ListSecretsOutput, error) {
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	end := min(start+100, len(l.arns))
	out := &sm.ListSecretsOutput{}
	for _, a := range l.arns[start:end] {
		out.SecretList = append(out.SecretList, smtypes.SecretListEntry{ARN: aws.String(a),
			Tags: []smtypes.Tag{{Key: aws.String("group"), Value: aws.String("big")}}})
	}
	if end < len(l.arns) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

type bus struct {
	mu  sync.Mutex
	got []events.Event
}

func (b *bus) Publish(_ context.Context, e events.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, e)
	return nil
}

// TestFailedError is the stand-in saga's failure: a Catch matches its
// name, as it matches shared/faults' TestFailedError.
type TestFailedError struct{ msg string }

func (e *TestFailedError) Error() string { return e.msg }

// withStandInSaga is the fleet definition whose Rotate branch is one Task,
// the stand-in for the saga: the frame around it (the page loop, the
// Parallel and its Catch, ReportFailure, Summarize) is the real one. A
// saga's result is cut to {"State"} by Rotate's ResultSelector either way,
// so the state the frame carries is what the real saga would give it.
func withStandInSaga(t *testing.T) []byte {
	t.Helper()
	var def map[string]any
	if err := json.Unmarshal(statemachines.Fleet, &def); err != nil {
		t.Fatal(err)
	}
	rotate := def["States"].(map[string]any)["RotateEach"].(map[string]any)["ItemProcessor"].(map[string]any)["States"].(map[string]any)["Rotate"].(map[string]any)
	rotate["Branches"] = []any{map[string]any{"StartAt": "Saga", "States": map[string]any{
		"Saga": map[string]any{"Type": "Task", "Resource": local.FunctionARN("saga"), "End": true},
	}}}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	subs := map[string]string{}
	for placeholder, fn := range local.Functions {
		subs[placeholder] = local.FunctionARN(fn)
	}
	out, err := sfnlocal.Substitute(b, subs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFleetPayloadSize: a fleet of 10,000 secrets, every third failing,
// rotates each secret exactly once, and no state's input or output comes
// near 256 KiB; also with the longest secret names (512 characters) and
// every secret failing, the worst case for the results and the failure
// list. The frame before paging held every ARN in one state: 10,000 ARNs
// of ~90 bytes are ~900 KB.
func TestFleetPayloadSize(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		nameOf    func(i int) string
		fails     func(i int) bool
		pageSize  int
		wantPages int
	}{
		{"10,000 secrets, every third failing", 10000, func(i int) string { return fmt.Sprintf("app/db-%05d", i) }, func(i int) bool { return i%3 == 0 }, 0, 0},
		{"2,000 secrets of the longest names, all failing", 2000, func(i int) string { return fmt.Sprintf("%s%05d", strings.Repeat("n", 507), i) }, func(int) bool { return true }, 0, 0},
		{"25 secrets, pages of 10", 25, func(i int) string { return fmt.Sprintf("s%02d", i) }, func(i int) bool { return i == 7 }, 10, 3},
	}
	lam := lambdalocal.New()
	defer lam.Close()
	var (
		mu       sync.Mutex
		rotated  map[string]int
		failing  map[string]bool
		list     = &listing{}
		reported = &bus{}
	)
	svc := &fleet.Service{Secrets: list, Events: reported}
	lam.Register("secretsaga-listsecrets", svc.List, 0)
	lam.Register("secretsaga-fleetsummary", svc.Summarize, 0)
	lam.Register("secretsaga-fleetreport", svc.Report, 0)
	lam.Register("secretsaga-saga", func(in struct{ SecretId string }) (map[string]string, error) {
		mu.Lock()
		defer mu.Unlock()
		rotated[in.SecretId]++
		if failing[in.SecretId] {
			return nil, &TestFailedError{msg: "the stand-in saga fails " + in.SecretId}
		}
		return map[string]string{"State": "FINISHED"}, nil
	}, 0)
	url, err := lam.Start()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	runner, err := sfnlocal.Start(ctx, sfnlocal.Options{Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	def := withStandInSaga(t)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rotated, failing = map[string]int{}, map[string]bool{}
			list.arns = nil
			reported.got = nil
			wantFailed := 0
			for i := range tt.n {
				arn := fmt.Sprintf("arn:aws:secretsmanager:us-east-1:123456789012:secret:%s-AbCdEf", tt.nameOf(i))
				list.arns = append(list.arns, arn)
				if tt.fails(i) {
					failing[arn] = true
					wantFailed++
				}
			}
			x, err := runner.Execute(ctx, sfnlocal.Request{Definition: def, LambdaEndpoint: url,
				Input: map[string]any{"TagKey": "group", "TagValue": "big", "MaxConcurrency": 200, "PageSize": tt.pageSize}})
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != "SUCCEEDED" {
				t.Fatalf("fleet ended %s %s: %s", x.Status, x.Error, x.Cause)
			}
			// Exactly once each.
			if len(rotated) != tt.n {
				t.Errorf("%d secrets rotated, want %d", len(rotated), tt.n)
			}
			for arn, k := range rotated {
				if k != 1 {
					t.Errorf("%s rotated %d times", arn, k)
				}
			}
			var sum fleet.Summary
			if err := json.Unmarshal(x.Output, &sum); err != nil {
				t.Fatal(err)
			}
			if sum.Total != tt.n || sum.RolledBack != wantFailed || sum.Succeeded != tt.n-wantFailed ||
				len(sum.Failures)+sum.FailuresNotListed != wantFailed || len(sum.Failures) > fleet.MaxListedFailures {
				t.Errorf("summary %s (%d listed, %d not), want %d secrets, %d rolled back", sum, len(sum.Failures), sum.FailuresNotListed, tt.n, wantFailed)
			}
			if len(reported.got) != wantFailed {
				t.Errorf("%d Fleet Rotation Failed events, want %d", len(reported.got), wantFailed)
			}
			// Every state's input and output, and the largest of each state.
			largest := map[string]int{}
			pages, most := 0, 0
			for _, e := range x.Events {
				size := max(e.InputBytes, e.OutputBytes)
				largest[e.State] = max(largest[e.State], size)
				most = max(most, size)
				if size > sfnlocal.MaxPayloadBytes {
					t.Errorf("%s %s: %d bytes, over the %d-byte limit", e.Type, e.State, size, sfnlocal.MaxPayloadBytes)
				}
				if e.Type == "StateEntered" && e.State == "ListSecrets" {
					pages++
				}
			}
			if tt.wantPages > 0 && pages != tt.wantPages {
				t.Errorf("%d pages, want %d", pages, tt.wantPages)
			}
			var names []string
			for n := range largest {
				names = append(names, n)
			}
			slices.Sort(names)
			var b strings.Builder
			for _, n := range names {
				fmt.Fprintf(&b, " %s %d;", n, largest[n])
			}
			t.Logf("%d secrets, %d pages in %v; largest state input/output in bytes:%s", tt.n, pages, x.Duration, b.String())
			if most > sfnlocal.MaxPayloadBytes*3/4 {
				t.Errorf("a state of %d bytes: less than a quarter of the limit to spare", most)
			}
		})
	}
}

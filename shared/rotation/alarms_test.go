package rotation

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// bakeWith acquires with in's bake settings, runs the saga to finish and
// returns what Verify says.
func (f *fixture) bakeWith(t *testing.T, in AcquireInput) error {
	t.Helper()
	in.SecretId, in.ClientRequestToken, in.ExecutionArn = "app/db", token, execution
	rc, err := f.svc.Acquire(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	s := f.svc
	f.steps(t, rc, s.Create, s.Set, s.Test, s.Finish)
	_, err = s.Verify(context.Background(), rc)
	return err
}

func TestBakeAlarms(t *testing.T) {
	for _, tt := range []struct {
		name   string
		setup  func(*fakeAlarms)
		want   string
		naming string // the error must name it
	}{
		{name: "alarm OK", setup: func(a *fakeAlarms) { a.set("api-5xx", cwtypes.StateValueOk) }},
		{name: "insufficient data is not an alarm", setup: func(a *fakeAlarms) { a.set("api-5xx", cwtypes.StateValueInsufficientData) }},
		{name: "alarm in ALARM", setup: func(a *fakeAlarms) { a.set("api-5xx", cwtypes.StateValueAlarm) },
			want: faults.NameTestFailed, naming: `"api-5xx" is in ALARM`},
		{name: "composite alarm in ALARM", setup: func(a *fakeAlarms) { a.composite["api-5xx"] = cwtypes.StateValueAlarm },
			want: faults.NameTestFailed, naming: `"api-5xx" is in ALARM`},
		{name: "unknown alarm", want: faults.NameInput, naming: `"api-5xx", named in the execution input's BakeAlarms, does not exist`},
		{name: "access denied", setup: func(a *fakeAlarms) {
			a.fail = &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform: cloudwatch:DescribeAlarms"}
		}, want: faults.NameInput, naming: "cloudwatch:DescribeAlarms"},
		{name: "throttled", setup: func(a *fakeAlarms) {
			a.fail = &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
		}, want: faults.NameRetryable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.setup != nil {
				tt.setup(f.alarms)
			}
			err := f.bakeWith(t, AcquireInput{BakeAlarms: []string{"api-5xx"}})
			if faults.Name(err) != tt.want || (tt.want == "" && err != nil) {
				t.Fatalf("verify = %v, want %q", err, tt.want)
			}
			if tt.naming != "" && !strings.Contains(err.Error(), tt.naming) {
				t.Errorf("error %q does not say %q", err, tt.naming)
			}
			if f.alarms.calls() != 1 {
				t.Errorf("DescribeAlarms called %d times in a bake of 0 s, want 1", f.alarms.calls())
			}
			if verified := f.last() == ledger.Verified; verified != (tt.want == "") {
				t.Errorf("journal ends %s", f.last())
			}
		})
	}
}

// The deploy-time alarms (BAKE_ALARM_NAMES) are watched with the
// execution's, each once, and name their source when missing.
func TestBakeAlarmsMergeDeployTimeNames(t *testing.T) {
	f := newFixture(t)
	f.svc.BakeAlarmNames = []string{"fleet-errors", "api-5xx"}
	f.alarms.set("fleet-errors", cwtypes.StateValueOk)
	f.alarms.set("api-5xx", cwtypes.StateValueOk)
	f.alarms.set("api-latency", cwtypes.StateValueOk)
	if err := f.bakeWith(t, AcquireInput{BakeAlarms: []string{"api-5xx", "api-latency"}}); err != nil {
		t.Fatal(err)
	}
	if got := f.alarms.asked[0]; !slices.Equal(got, []string{"fleet-errors", "api-5xx", "api-latency"}) {
		t.Errorf("asked for %v", got)
	}

	f = newFixture(t)
	f.svc.BakeAlarmNames = []string{"fleet-errors"}
	f.alarms.set("fleet-errors", cwtypes.StateValueAlarm)
	f.alarms.set("api-5xx", cwtypes.StateValueOk)
	err := f.bakeWith(t, AcquireInput{BakeAlarms: []string{"api-5xx"}})
	if faults.Name(err) != faults.NameTestFailed || !strings.Contains(err.Error(), `"fleet-errors"`) {
		t.Fatalf("verify = %v, want TestFailedError naming fleet-errors", err)
	}

	// Deploy-time alarms alone bake, too (the state machine enters Verify
	// for them when Verify is true).
	f = newFixture(t)
	f.svc.BakeAlarmNames = []string{"gone"}
	err = f.bakeWith(t, AcquireInput{})
	if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), `"gone", named in the verify function's BAKE_ALARM_NAMES, does not exist`) {
		t.Fatalf("verify = %v, want InputError naming the missing alarm and BAKE_ALARM_NAMES", err)
	}
}

// The alarms are read at every bake check, not once: one that goes into
// ALARM during the bake fails it. BakeSeconds needs no HealthCheckUrl when
// alarms are watched.
func TestBakeAlarmFlipsDuringBake(t *testing.T) {
	f := newFixture(t)
	f.alarms.set("api-5xx", cwtypes.StateValueOk)
	f.alarms.beforeCall = func(a *fakeAlarms, n int) {
		if n == 2 {
			a.mu.Lock()
			a.metric["api-5xx"] = cwtypes.StateValueAlarm
			a.mu.Unlock()
		}
	}
	start := time.Now()
	err := f.bakeWith(t, AcquireInput{BakeAlarms: []string{"api-5xx"}, BakeSeconds: 1})
	if faults.Name(err) != faults.NameTestFailed || !strings.Contains(err.Error(), `"api-5xx" is in ALARM during the bake (after 1 good checks)`) {
		t.Fatalf("verify = %v, want TestFailedError on the second check", err)
	}
	if f.alarms.calls() != 2 || time.Since(start) > 10*time.Second {
		t.Errorf("%d checks in %v", f.alarms.calls(), time.Since(start))
	}
}

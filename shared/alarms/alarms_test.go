package alarms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/shared/rotation"
)

// fakeCW answers DescribeAlarms as CloudWatch does: metric alarms, and
// composite alarms only when AlarmTypes asks for them, at most page
// alarms per response with a NextToken for the rest.
type fakeCW struct {
	metric, composite map[string]cwtypes.StateValue
	page              int
	calls             []*cloudwatch.DescribeAlarmsInput
	fail              error
}

func (f *fakeCW) DescribeAlarms(_ context.Context, in *cloudwatch.DescribeAlarmsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error) {
	f.calls = append(f.calls, in)
	if f.fail != nil {
		return nil, f.fail
	}
	if len(in.AlarmNames) > 100 {
		return nil, errors.New("ValidationError: at most 100 alarm names")
	}
	var names []string
	for _, n := range in.AlarmNames {
		if _, ok := f.metric[n]; ok {
			names = append(names, "m:"+n)
		}
		if _, ok := f.composite[n]; ok && slices.Contains(in.AlarmTypes, cwtypes.AlarmTypeCompositeAlarm) {
			names = append(names, "c:"+n)
		}
	}
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	out := &cloudwatch.DescribeAlarmsOutput{}
	end := min(start+f.page, len(names))
	for _, n := range names[start:end] {
		if n[0] == 'm' {
			out.MetricAlarms = append(out.MetricAlarms, cwtypes.MetricAlarm{AlarmName: aws.String(n[2:]), StateValue: f.metric[n[2:]], StateReason: aws.String("why")})
		} else {
			out.CompositeAlarms = append(out.CompositeAlarms, cwtypes.CompositeAlarm{AlarmName: aws.String(n[2:]), StateValue: f.composite[n[2:]]})
		}
	}
	if end < len(names) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

func TestAlarmStates(t *testing.T) {
	f := &fakeCW{page: 2,
		metric:    map[string]cwtypes.StateValue{"a": cwtypes.StateValueOk, "b": cwtypes.StateValueAlarm, "c": cwtypes.StateValueInsufficientData},
		composite: map[string]cwtypes.StateValue{"d": cwtypes.StateValueAlarm}}
	got, err := New(f).AlarmStates(context.Background(), []string{"a", "b", "c", "d", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rotation.AlarmState{"a": {State: "OK", Reason: "why"}, "b": {State: "ALARM", Reason: "why"}, "c": {State: "INSUFFICIENT_DATA", Reason: "why"}, "d": {State: "ALARM"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v (the composite one needs AlarmTypes, the pages NextToken)", got, want)
	}
	if len(f.calls) != 2 {
		t.Errorf("%d calls for 4 alarms in pages of 2", len(f.calls))
	}
}

func TestAlarmStatesChunks(t *testing.T) {
	f := &fakeCW{page: 1000, metric: map[string]cwtypes.StateValue{}}
	var names []string
	for i := range 250 {
		n := fmt.Sprint("alarm-", i)
		names = append(names, n)
		f.metric[n] = cwtypes.StateValueOk
	}
	got, err := New(f).AlarmStates(context.Background(), names)
	if err != nil || len(got) != 250 || len(f.calls) != 3 {
		t.Errorf("%d states, %d calls, %v; want 250 in 3 calls of at most %d names", len(got), len(f.calls), err, rotation.MaxBakeAlarms)
	}
}

func TestAlarmStatesError(t *testing.T) {
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform: cloudwatch:DescribeAlarms"}
	_, err := New(&fakeCW{fail: denied}).AlarmStates(context.Background(), []string{"a"})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Errorf("error %v: CloudWatch's error lost", err)
	}
}

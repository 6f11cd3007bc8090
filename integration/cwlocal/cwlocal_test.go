package cwlocal

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
)

func start(t *testing.T) (*Server, *cloudwatch.Client) {
	t.Helper()
	s, url, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	client := cloudwatch.New(cloudwatch.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", "")})
	return s, client
}

// The real SDK client (Smithy RPC v2 CBOR) reads what the stand-in answers.
func TestDescribeAlarmsThroughSDK(t *testing.T) {
	s, client := start(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	s.SetAlarm("api-5xx", OK)
	s.SetAlarm("api-latency", Alarm)
	s.SetAlarm("unrelated", Alarm)
	out, err := client.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{
		AlarmNames: []string{"api-5xx", "api-latency", "missing"},
		AlarmTypes: []types.AlarmType{types.AlarmTypeMetricAlarm, types.AlarmTypeCompositeAlarm},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]types.MetricAlarm{}
	for _, a := range out.MetricAlarms {
		got[aws.ToString(a.AlarmName)] = a
	}
	if len(got) != 2 || got["api-5xx"].StateValue != types.StateValueOk || got["api-latency"].StateValue != types.StateValueAlarm {
		t.Fatalf("alarms = %+v", out.MetricAlarms)
	}
	a := got["api-latency"]
	if aws.ToString(a.AlarmArn) != "arn:aws:cloudwatch:us-east-1:000000000000:alarm:api-latency" || aws.ToString(a.StateReason) == "" {
		t.Errorf("arn %q, reason %q", aws.ToString(a.AlarmArn), aws.ToString(a.StateReason))
	}
	if a.StateUpdatedTimestamp == nil || a.StateUpdatedTimestamp.Before(before) || a.StateUpdatedTimestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("StateUpdatedTimestamp = %v", a.StateUpdatedTimestamp)
	}
	if len(out.CompositeAlarms) != 0 || out.NextToken != nil {
		t.Errorf("composite %v, next token %v", out.CompositeAlarms, out.NextToken)
	}

	// Flips and deletions show in the next answer.
	s.SetAlarm("api-5xx", Alarm)
	s.DeleteAlarm("api-latency")
	out, err = client.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"api-5xx", "api-latency"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.MetricAlarms) != 1 || out.MetricAlarms[0].StateValue != types.StateValueAlarm {
		t.Fatalf("after flip and delete: %+v", out.MetricAlarms)
	}
	if s.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2", s.Calls())
	}

	// Only composite alarms asked for: no metric alarms.
	out, err = client.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"api-5xx"},
		AlarmTypes: []types.AlarmType{types.AlarmTypeCompositeAlarm}})
	if err != nil || len(out.MetricAlarms) != 0 {
		t.Fatalf("composite only: %v %+v", err, out)
	}
}

func TestPagination(t *testing.T) {
	s, client := start(t)
	want := []string{"a", "b", "c", "d", "e"}
	for _, n := range want {
		s.SetAlarm(n, InsufficientData)
	}
	var names []string
	pages := 0
	p := cloudwatch.NewDescribeAlarmsPaginator(client, &cloudwatch.DescribeAlarmsInput{MaxRecords: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, a := range out.MetricAlarms {
			names = append(names, aws.ToString(a.AlarmName))
		}
	}
	if !slices.Equal(names, want) || pages != 3 {
		t.Fatalf("names %v in %d pages", names, pages)
	}
}

// Errors carry __type and X-Amzn-Query-Error, which the client turns into
// the modeled error types.
func TestErrors(t *testing.T) {
	_, client := start(t)
	ctx := context.Background()
	_, err := client.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{NextToken: aws.String("forged")})
	var bad *types.InvalidNextToken
	if !errors.As(err, &bad) {
		t.Fatalf("bad token: %v (%T)", err, err)
	}
	_, err = client.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{MaxRecords: aws.Int32(1000)})
	var inv *types.InvalidParameterValueException
	if !errors.As(err, &inv) || inv.ErrorCode() != "InvalidParameterValue" {
		t.Fatalf("MaxRecords 1000: %v (%T)", err, err)
	}
	_, err = client.GetDashboard(ctx, &cloudwatch.GetDashboardInput{DashboardName: aws.String("d")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("unimplemented operation: %v", err)
	}
}

// A request that is not RPC v2 CBOR is refused.
func TestRefusesOtherProtocols(t *testing.T) {
	s, url, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Post(url+"/service/"+service+"/operation/DescribeAlarms", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

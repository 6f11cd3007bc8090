// Package alarms reads the states of CloudWatch alarms for the bake
// (rotation.Alarms), apart from shared/rotation so that only the function
// that bakes, verify, links CloudWatch's client.
package alarms

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/secretsaga/secretsaga/shared/rotation"
)

// API is the CloudWatch call the bake makes (*cloudwatch.Client
// implements it).
type API interface {
	DescribeAlarms(ctx context.Context, in *cloudwatch.DescribeAlarmsInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
}

// CloudWatch is rotation.Alarms over CloudWatch's DescribeAlarms.
type CloudWatch struct{ API API }

// New returns the alarms api reads.
func New(api API) CloudWatch { return CloudWatch{API: api} }

// AlarmStates describes names in calls of at most rotation.MaxBakeAlarms
// names (DescribeAlarms takes at most 100), following NextToken, and
// asks for composite alarms too: without AlarmTypes, DescribeAlarms
// describes metric alarms only (CloudWatch API reference, DescribeAlarms:
// "If you omit this parameter, only metric alarms are returned").
func (c CloudWatch) AlarmStates(ctx context.Context, names []string) (map[string]rotation.AlarmState, error) {
	states := map[string]rotation.AlarmState{}
	for chunk := range slices.Chunk(names, rotation.MaxBakeAlarms) {
		in := &cloudwatch.DescribeAlarmsInput{AlarmNames: chunk, MaxRecords: aws.Int32(rotation.MaxBakeAlarms),
			AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}}
		for {
			out, err := c.API.DescribeAlarms(ctx, in)
			if err != nil {
				return nil, err
			}
			for _, a := range out.MetricAlarms {
				states[aws.ToString(a.AlarmName)] = rotation.AlarmState{State: string(a.StateValue), Reason: aws.ToString(a.StateReason)}
			}
			for _, a := range out.CompositeAlarms {
				states[aws.ToString(a.AlarmName)] = rotation.AlarmState{State: string(a.StateValue), Reason: aws.ToString(a.StateReason)}
			}
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	return states, nil
}

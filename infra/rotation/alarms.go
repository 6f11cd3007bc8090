package rotation

import (
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// LedgerOperations are the DynamoDB operations the functions make on the
// ledger (shared/ledger): the ones whose throttling LedgerThrottlesAlarm
// watches.
var LedgerOperations = []awsdynamodb.Operation{
	awsdynamodb.Operation_GET_ITEM, awsdynamodb.Operation_QUERY, awsdynamodb.Operation_TRANSACT_WRITE_ITEMS,
}

// addOperationalAlarms raises an alarm, to the alert topic, for every
// failure that no event or execution status reports by itself:
//
//   - per function, Lambda Errors (a step that failed, including one the
//     state machine then retries or compensates, and nativerotation failing
//     Secrets Manager's rotation) and Throttles (reserved concurrency is
//     10 for the database-facing functions, and a fleet runs many
//     rotations at once);
//   - a failed fleet child (fleetreport's Invocations): the fleet's Catch
//     makes the child execution succeed, so no execution alarm sees it;
//   - DynamoDB throttling of the ledger's operations;
//   - anything in the schedules' dead-letter queue (a rotation or a repair
//     run that could not be started).
//
// Each is the Sum over 5 minutes, at or above 1, missing data not
// breaching: one occurrence is worth a look.
func (r *Rotation) addOperationalAlarms() {
	action := awscloudwatchactions.NewSnsAction(r.AlarmTopic)
	five := awscdk.Duration_Minutes(jsii.Number(5))
	add := func(id, what string, metric awscloudwatch.IMetric) {
		a := awscloudwatch.NewAlarm(r.Construct, jsii.String(id), &awscloudwatch.AlarmProps{
			Metric:             metric,
			AlarmDescription:   jsii.String("secretsaga (" + r.RotationGroup + "): " + what + " in the last 5 minutes"),
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
		r.Alarms = append(r.Alarms, a)
	}
	names := make([]string, 0, len(r.Functions))
	for n := range r.Functions {
		names = append(names, n)
	}
	sort.Strings(names) // construct ids in a stable order
	sum := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}
	for _, n := range names {
		fn := r.Functions[n]
		add(n+"ErrorsAlarm", "the "+n+" function returned an error (see its log group)", fn.MetricErrors(sum))
		add(n+"ThrottlesAlarm", "invocations of the "+n+" function were throttled (reserved or account concurrency)", fn.MetricThrottles(sum))
	}
	// Every failed fleet child invokes fleetreport once (retries aside),
	// which publishes its Fleet Rotation Failed event; the child execution
	// itself succeeds (the fleet's Catch), so no execution alarm sees it.
	if fn, ok := r.Functions["fleetreport"]; ok {
		add("FleetChildFailuresAlarm", "a secret's rotation in a fleet failed (its Fleet Rotation Failed event on the bus names it)",
			fn.MetricInvocations(sum))
	}
	add("LedgerThrottlesAlarm", "DynamoDB throttled requests to the ledger table",
		r.Table.MetricThrottledRequestsForOperations(&awsdynamodb.OperationsMetricOptions{
			Operations: &LedgerOperations, Period: five, Statistic: jsii.String("Sum"),
		}))
	add("ScheduleDeadLettersAlarm", "a schedule could not start a rotation or run the repair; the event is in the ScheduleDeadLetters queue",
		r.ScheduleDeadLetters.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}))

	// CloudWatch publishes the alarms' notifications: from this account's
	// alarms only (the topic has a policy of its own, which replaces SNS's
	// default one).
	stack := awscdk.Stack_Of(r.Construct)
	r.AlarmTopic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{r.AlarmTopic.TopicArn()},
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"aws:SourceAccount": *stack.Account()},
			"ArnLike": map[string]interface{}{"aws:SourceArn": *stack.FormatArn(&awscdk.ArnComponents{
				Service: jsii.String("cloudwatch"), Resource: jsii.String("alarm"), ResourceName: jsii.String("*"),
				ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
			})},
		},
	}))
}

package rotation

import (
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/shared/faults"
)

// ExpectedErrorTypes are the errorTypes a saga step (or nativerotation,
// reporting the saga's outcome to Secrets Manager) returns by design: the
// state machine retries a RetryableError and compensates or stops on the
// others, so a rollback, an abandon, a conflict or a refused input makes the
// function fail without anything being wrong with it. The function alarms
// leave them out; CompensationFailedError (a person may have to act) and
// every error outside the taxonomy (a panic, a timeout, an out-of-memory
// kill, an init failure: errors without the handler's log line) page.
var ExpectedErrorTypes = []string{faults.NameRetryable, faults.NameConflict, faults.NameInput, faults.NameTestFailed}

// ExpectedErrorsPattern matches the JSON line a handler logs when it
// returns one of ExpectedErrorTypes (shared/rotation's "step failed",
// shared/native's "native rotation step failed": one line per returned
// error, with the errorType Lambda reports).
func ExpectedErrorsPattern() awslogs.IFilterPattern {
	var ps []awslogs.JsonPattern
	for _, t := range ExpectedErrorTypes {
		ps = append(ps, awslogs.FilterPattern_StringValue(jsii.String("$.errorType"), jsii.String("="), jsii.String(t)))
	}
	return awslogs.FilterPattern_Any(ps...)
}

// Step Functions log events (LogLevel ALL) by type: a rotation execution
// that ends in one of the definition's Fail states (RolledBack, Abandoned,
// LeaseHeld, NotStarted, CompensationFailed) logs FailStateEntered first.
const (
	executionFailedPattern  = `{ $.type = "ExecutionFailed" }`
	failStateEnteredPattern = `{ $.type = "FailStateEntered" }`
)

// MetricNamespace is where the construct's log metric filters publish:
// one namespace per rotation group, so two deployments in one account and
// region do not count each other's lines.
func (r *Rotation) MetricNamespace() string { return "secretsaga/" + r.RotationGroup }

// LedgerOperations are the DynamoDB operations the functions make on the
// ledger (shared/ledger): the ones whose throttling LedgerThrottlesAlarm
// watches.
var LedgerOperations = []awsdynamodb.Operation{
	awsdynamodb.Operation_GET_ITEM, awsdynamodb.Operation_QUERY, awsdynamodb.Operation_TRANSACT_WRITE_ITEMS,
}

// addOperationalAlarms raises an alarm, to the alert topic, for every
// failure that needs a person or points at a defect, and for none that the
// saga handles by design (a rollback is announced by its event, not paged):
//
//   - per function, its errors outside ExpectedErrorTypes: Lambda Errors
//     minus the function's own log lines of an expected error (a metric
//     filter on its log group), for the functions that return the
//     taxonomy (the saga's, repair, nativerotation); the fleet's functions
//     never fail by design, so all their Errors count;
//   - per function, Throttles (reserved concurrency is 10 for the
//     database-facing functions, and a fleet runs many rotations at once);
//   - DynamoDB throttling of the ledger's operations;
//   - anything in the schedules' dead-letter queue (a rotation or a repair
//     run that could not be started).
//
// A failed fleet child is announced by its Fleet Rotation Failed event on
// the alert topic, like a single rotation's outcome events.
//
// Each is the Sum over 5 minutes, at or above 1, missing data not
// breaching: one occurrence is worth a look.
func (r *Rotation) addOperationalAlarms() {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	add := r.alarmAdder()
	names := make([]string, 0, len(r.Functions))
	for n := range r.Functions {
		names = append(names, n)
	}
	sort.Strings(names) // construct ids in a stable order
	sum := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}
	taxonomy := map[string]bool{}
	for _, h := range allHandlers() {
		// The short-lived login functions return the taxonomy's errors too.
		taxonomy[h.Name] = h.Ledger || h.Native || h.Ephemeral
	}
	for _, n := range names {
		fn := r.Functions[n]
		if !taxonomy[n] {
			add(n+"ErrorsAlarm", "the "+n+" function returned an error (see its log group)", fn.MetricErrors(sum))
		} else {
			expected := awslogs.NewMetricFilter(r.Construct, jsii.String(n+"ExpectedErrors"), &awslogs.MetricFilterProps{
				LogGroup:        fn.LogGroup(),
				FilterPattern:   ExpectedErrorsPattern(),
				MetricNamespace: jsii.String(r.MetricNamespace()),
				MetricName:      jsii.String(n + "ExpectedErrors"),
				MetricValue:     jsii.String("1"),
			}).Metric(sum)
			add(n+"ErrorsAlarm", "the "+n+" function failed with an error the saga does not expect (CompensationFailedError, a panic, "+
				"a timeout, an init failure: Lambda Errors minus its log lines of a Retryable, Conflict, Input or TestFailed error; see its log group)",
				awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
					Expression:   jsii.String("FILL(errors, 0) - FILL(expected, 0)"),
					UsingMetrics: &map[string]awscloudwatch.IMetric{"errors": fn.MetricErrors(sum), "expected": expected},
					Label:        jsii.String(n + " unexpected errors"),
					Period:       five,
				}))
		}
		add(n+"ThrottlesAlarm", "invocations of the "+n+" function were throttled (reserved or account concurrency)", fn.MetricThrottles(sum))
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

// alarmAdder returns the function that adds one alarm (Sum over 5 minutes
// ≥ 1, missing data not breaching) whose action is the alert topic.
func (r *Rotation) alarmAdder() func(id, what string, metric awscloudwatch.IMetric) {
	action := awscloudwatchactions.NewSnsAction(r.AlarmTopic)
	return func(id, what string, metric awscloudwatch.IMetric) {
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
}

// addUnexpectedFailuresAlarm replaces the rotation state machine's
// ExecutionsFailed alarm: every rollback, abandon, held lease or refused
// start fails the execution by design, in one of the definition's Fail
// states, so the alarm counts only executions that failed without entering
// one (a States.Runtime error, a definition defect): ExecutionFailed minus
// FailStateEntered events of the machine's log (LogLevel ALL; the event
// types are logged without execution data). A Compensation Failed still
// pages through its event and compensate's own error alarm. The fleet
// machine keeps its ExecutionsFailed alarm: its children's failures are
// caught, so the fleet fails only when its selection or summary does.
func (r *Rotation) addUnexpectedFailuresAlarm() {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	sum := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}
	metric := func(id, pattern string) awscloudwatch.Metric {
		return awslogs.NewMetricFilter(r.Construct, jsii.String(id), &awslogs.MetricFilterProps{
			LogGroup:        r.rotationLogs,
			FilterPattern:   awslogs.FilterPattern_Literal(jsii.String(pattern)),
			MetricNamespace: jsii.String(r.MetricNamespace()),
			MetricName:      jsii.String(id),
			MetricValue:     jsii.String("1"),
		}).Metric(sum)
	}
	r.alarmAdder()("ExecutionsFailedAlarm", "a rotation execution failed outside the saga's Fail states (not a rollback, abandon, held lease "+
		"or refused start: a definition or service error; see the state machine's executions)",
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("FILL(failed, 0) - FILL(failStates, 0)"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"failed":     metric("RotationExecutionFailed", executionFailedPattern),
				"failStates": metric("RotationFailStateEntered", failStateEnteredPattern),
			},
			Label:  jsii.String("rotation executions failed outside a Fail state"),
			Period: five,
		}))
}

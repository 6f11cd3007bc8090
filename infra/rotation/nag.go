package rotation

import (
	"regexp"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// The cdk-nag (AwsSolutions pack) suppressions of the construct. Each names
// the AWS limitation that leaves a wildcard in a policy, and applies to that
// one wildcard (appliesTo), on the one role that has it: any other wildcard
// is still a finding. The infra tests run the pack on every variant of the
// stack and fail on any finding left.

// NagRuleWildcard is the AwsSolutions rule every suppression here is for:
// IAM5, wildcard permissions.
const NagRuleWildcard = "AwsSolutions-IAM5"

// TracingActions are what active tracing (Tracing ACTIVE on a function,
// TracingEnabled on a state machine) adds to a role, on Resource "*".
var TracingActions = []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

// stateMachineTracingActions: a state machine's tracing reads the sampling
// rules too.
var stateMachineTracingActions = []string{"xray:GetSamplingRules", "xray:GetSamplingTargets"}

// LogDeliveryActions are what a state machine's logging to CloudWatch Logs
// adds to its role, on Resource "*" (Step Functions delivers the logs
// through CloudWatch vended log delivery).
var LogDeliveryActions = []string{
	"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
	"logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}

// NagStarReasonPrefix starts the reason of every Resource "*" suppression;
// the actions it lists follow it, separated by ", ", up to the first ". ".
// The tests read that list back and compare it with the policy.
const NagStarReasonPrefix = "Resource * holds only actions that have no resource-level permissions (the Service Authorization Reference lists no resource type for them, so IAM accepts only *): "

func starReason(actions []string, why string) string {
	return NagStarReasonPrefix + strings.Join(actions, ", ") + ". " + why
}

// arnFinding matches cdk-nag's finding id of one ARN wildcard: partition,
// region and account are "<AWS::Partition>" and the like, or literals when
// the stack has an explicit environment, hence the regular expression; the
// rest (service and resource) is matched literally, the whole id anchored.
func arnFinding(service, resource string) *cdknag.RegexAppliesTo {
	const seg = "(?:<AWS::[A-Za-z]+>|[a-z0-9-]+)" // "<AWS::Region>" or "eu-west-1"
	re := "/^Resource::arn:" + seg + ":" + regexp.QuoteMeta(service) + ":" + seg + ":" + seg + ":" + regexp.QuoteMeta(resource) + "$/"
	return &cdknag.RegexAppliesTo{Regex: jsii.String(re)}
}

// suppressWildcard adds an IAM5 suppression for the given findings to scope
// and its children (a role and its DefaultPolicy).
func suppressWildcard(scope constructs.IConstruct, reason string, appliesTo ...any) {
	cdknag.NagSuppressions_AddResourceSuppressions(scope, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String(NagRuleWildcard),
		Reason:    jsii.String(reason),
		AppliesTo: &appliesTo,
	}}, jsii.Bool(true))
}

// Reasons of the suppressions that name no action list.
const (
	nagSecretsReason = "Secrets Manager cannot name the rotation group's secrets in a policy: a secret's ARN ends in a random suffix " +
		"and the group is the set of secrets tagged " + RotationGroupTag + " at run time. Every action on secret:* is limited by the " +
		"secretsmanager:ResourceTag/" + RotationGroupTag + " condition instead (attribute-based access control)."
	nagNativeExecutionsReason = "Step Functions execution names are chosen at run time (nativerotation names each execution after " +
		"the rotation's client request token), so DescribeExecution cannot name one; the ARN is limited to the executions of the " +
		"rotation state machine."
	nagFleetExecutionsReason = "A Distributed Map names its child executions at run time (map run label and a generated id), " +
		"so the fleet's role cannot name them; the ARNs are limited to the fleet state machine's own executions."
)

// unscopedWhy says, for a handler's actions on Resource "*", what each does
// (why "*" grants nothing dangerous).
func unscopedWhy(h Handler) string {
	notes := []string{"Active tracing uploads trace segments to the account's X-Ray."}
	for _, a := range h.Unscoped {
		switch a {
		case smList:
			notes = append(notes, "ListSecrets returns metadata (names, ARNs, tags), never a value; every action on a listed secret is still subject to the rotation-group condition.")
		case cwDescribeAlarms:
			notes = append(notes, "DescribeAlarms reads alarm states, never a secret; the bake's alarms are also named at run time.")
		}
	}
	return strings.Join(notes, " ")
}

// suppressRule suppresses a rule that has no finding ids (the whole rule)
// on scope alone: for facts cdk-nag cannot see, never for a wildcard.
func suppressRule(scope constructs.IConstruct, rule, reason string) {
	cdknag.NagSuppressions_AddResourceSuppressions(scope, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String(rule), Reason: jsii.String(reason),
	}}, jsii.Bool(false))
}

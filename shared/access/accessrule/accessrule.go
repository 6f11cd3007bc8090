// Package accessrule holds the EventBridge event patterns that feed the
// access audit, in one place for the CDK app (which may import only the
// standard library's kind of package) and the local stack.
package accessrule

// State is the rules' state: GetSecretValue and BatchGetSecretValue are
// read-only management events, which EventBridge hands only to rules in this
// state (EventBridge user guide, "Receiving read-only management events from
// AWS services"). A real account also needs a CloudTrail trail logging
// management events for EventBridge to receive "AWS API Call via CloudTrail"
// events at all.
const State = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"

// Calls are the Secrets Manager calls the audit takes (issue 16): the reads,
// and the calls that change versions or the secret's existence.
var Calls = []string{"GetSecretValue", "BatchGetSecretValue", "PutSecretValue", "UpdateSecretVersionStage", "DeleteSecret", "RotateSecret"}

// Patterns are the two rules' event patterns: the calls above, and every
// other Secrets Manager call that was denied ("anything-but" the calls
// above, so no event matches both rules and none is delivered twice).
var Patterns = []string{
	`{"source":["aws.secretsmanager"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventSource":["secretsmanager.amazonaws.com"],"eventName":["GetSecretValue","BatchGetSecretValue","PutSecretValue","UpdateSecretVersionStage","DeleteSecret","RotateSecret"]}}`,
	`{"source":["aws.secretsmanager"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventSource":["secretsmanager.amazonaws.com"],"errorCode":[{"prefix":"AccessDenied"}],"eventName":[{"anything-but":["GetSecretValue","BatchGetSecretValue","PutSecretValue","UpdateSecretVersionStage","DeleteSecret","RotateSecret"]}]}}`,
}

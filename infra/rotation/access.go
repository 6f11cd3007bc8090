package rotation

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/shared/access/accessrule"
	"github.com/secretsaga/secretsaga/shared/functions"
)

// The access audit (shared/access): the accessaudit function, fed by rules on
// the default bus, where CloudTrail's "AWS API Call via CloudTrail" events of
// Secrets Manager arrive (README: the access audit; the account needs a
// CloudTrail trail logging management events).
const (
	EnvRotationGroup     = functions.EnvRotationGroup
	EnvTrustedPrincipals = functions.EnvTrustedPrincipals
)

// AccessAuditActions are its ledger actions: the access and consumer items
// (conditional PutItem, GetItem of a redelivered event's item, UpdateItem
// once its alert is out), the lease (GetItem: the strategy) and the journal
// (Query).
var AccessAuditActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}

// AccessAuditHandler is the audit's function: it describes a secret (its
// tags and stages, never its value), records reads in the ledger and
// publishes its alerts. Deployed with RotationProps.AccessAuditEnabled.
var AccessAuditHandler = Handler{Name: "accessaudit", AccessAudit: true, Secrets: []string{smDescribe}, PutEvents: true,
	Description: "secretsaga accessaudit: records who reads the rotation group's secrets and alerts on unauthorized or stale readers"}

// AccessAlertDetailTypes are the audit's events, sent to the alert topic
// with the others (AlertDetailTypes).
var AccessAlertDetailTypes = []string{"Unauthorized Secret Access", "Stale Consumer"}

// trustedRoleArns lists the roles of the product's other functions: their
// reads are recorded as trusted, never alerted on.
func (r *Rotation) trustedRoleArns() *string {
	var names []string
	for n := range r.Roles {
		if n != "accessaudit" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var arns []*string
	for _, n := range names {
		arns = append(arns, r.Roles[n].RoleArn())
	}
	return awscdk.Fn_Join(jsii.String(","), &arns)
}

// accessAuditGrants gives the audit's role its ledger actions on the table.
func (r *Rotation) accessAuditGrants(role awsiam.Role) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("AccessAuditLedger"),
		Actions:   jsii.Strings(AccessAuditActions...),
		Resources: jsii.Strings(*r.Table.TableArn()),
	}))
}

// addAccessAudit adds the rules (accessrule.Patterns, in the state that
// lets read-only management events through) with the function as target,
// and the permission for EventBridge to invoke it from those rules only.
func (r *Rotation) addAccessAudit() {
	fn, ok := r.Functions["accessaudit"]
	if !ok {
		return
	}
	for i, p := range accessrule.Patterns {
		var pattern map[string]any
		if err := json.Unmarshal([]byte(p), &pattern); err != nil {
			panic(fmt.Sprintf("secretsaga: access rule pattern %d: %v", i, err))
		}
		id := fmt.Sprintf("AccessAuditRule%d", i)
		rule := awsevents.NewCfnRule(r.Construct, jsii.String(id), &awsevents.CfnRuleProps{
			Description:  jsii.String("secretsaga access audit (" + r.RotationGroup + "): CloudTrail's Secrets Manager calls"),
			EventPattern: pattern,
			State:        jsii.String(accessrule.State),
			Targets:      &[]interface{}{&awsevents.CfnRule_TargetProperty{Arn: fn.FunctionArn(), Id: jsii.String("AccessAudit")}},
		})
		fn.AddPermission(jsii.String(id+"Invoke"), &awslambda.Permission{
			Principal: awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil),
			Action:    jsii.String("lambda:InvokeFunction"),
			SourceArn: rule.AttrArn(),
		})
	}
}

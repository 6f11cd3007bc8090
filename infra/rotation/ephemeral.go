package rotation

import (
	"fmt"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/statemachines"
)

// Short-lived database logins (shared/ephemeral, README "Short-lived
// database logins"): five functions, the state machine that runs a lease,
// the sweeper's schedule and the alert on Revocation Failed. Deployed with
// RotationProps.Ephemeral.Enabled.
const (
	// EphemeralTemplateTag marks a template secret; its value is the
	// rotation group whose functions may read it (ABAC).
	EphemeralTemplateTag = "secretsaga:ephemeral-template"
	// EphemeralGroupTag is the tag an issued login's secret carries (the
	// template's group): the functions may create, read and delete only
	// secrets that carry the group's.
	EphemeralGroupTag = "secretsaga:ephemeral-group"
	// EphemeralSecretPrefix names the issued logins' secrets.
	EphemeralSecretPrefix = "secretsaga/ephemeral/"
	// EphemeralIndex is the ledger's sparse index of open leases (the
	// sweeper's query), on EphemeralQueueAttr and EphemeralDueAttr.
	EphemeralIndex     = "ephemeral"
	EphemeralQueueAttr = "ephemeralQueue"
	EphemeralDueAttr   = "revokeAt"
	// DefaultEphemeralSweepSchedule runs the sweeper: a login outlives
	// its expiry by at most about this much when its own execution could
	// not revoke it.
	DefaultEphemeralSweepSchedule = "rate(5 minutes)"
)

// EphemeralAlertDetailTypes are the events sent to the alert topic.
var EphemeralAlertDetailTypes = []string{"Revocation Failed", "Ephemeral Login Unaccounted"}

// EphemeralProps configures short-lived logins.
type EphemeralProps struct {
	// Enabled deploys them (off by default).
	Enabled bool `json:"enabled,omitempty"`
	// SweepSchedule is the sweeper's Scheduler expression;
	// DefaultEphemeralSweepSchedule if empty.
	SweepSchedule string `json:"sweepSchedule,omitempty"`
}

// EphemeralHandlers are the short-lived logins' functions. Their grants are
// not Handler.Secrets and Ledger (which name the rotation group's secrets
// and the rotation's ledger actions) but ephemeralGrants.
var EphemeralHandlers = []Handler{
	{Name: "ephemeralissue", Placeholder: "EphemeralIssueFunctionArn", Target: true, Ephemeral: true, PutEvents: true,
		Description: "secretsaga ephemeralissue: issues a short-lived database login from a template"},
	{Name: "ephemeralstatus", Placeholder: "EphemeralStatusFunctionArn", Ephemeral: true,
		Description: "secretsaga ephemeralstatus: reads a short-lived login's lease (its expiry, renewed or not)"},
	{Name: "ephemeralrevoke", Placeholder: "EphemeralRevokeFunctionArn", Target: true, Ephemeral: true, PutEvents: true,
		Description: "secretsaga ephemeralrevoke: revokes a short-lived login (sessions, login, secret)"},
	{Name: "ephemeralalert", Placeholder: "EphemeralAlertFunctionArn", Ephemeral: true, PutEvents: true,
		Description: "secretsaga ephemeralalert: publishes Revocation Failed"},
	{Name: "ephemeralsweep", Target: true, Ephemeral: true, PutEvents: true, Unscoped: []string{smList},
		Description: "secretsaga ephemeralsweep: revokes every short-lived login whose expiry passed"},
}

// ephemeralGrant is what one function may do, by resource.
type ephemeralGrant struct {
	templates []string // on the group's templates (tag EphemeralTemplateTag)
	masters   []string // on the group's secrets (tag RotationGroupTag): the templates' masters
	logins    []string // on the issued logins' secrets (EphemeralSecretPrefix, tag EphemeralGroupTag)
	create    bool     // CreateSecret (and TagResource, which tags at creation need) of an issued login's secret
	ledger    []string // on the ledger table
	index     bool     // Query on EphemeralIndex (the sweeper)
}

// ephemeralGrants are the actions of the calls each function made in the
// recorded scenarios (integration TestRecordedActions), by resource.
var ephemeralGrants = map[string]ephemeralGrant{
	"ephemeralissue": {templates: []string{smDescribe, smGetValue}, masters: []string{smGetValue},
		logins: []string{smDescribe, smPutValue}, create: true, ledger: []string{"dynamodb:GetItem", "dynamodb:PutItem"}},
	"ephemeralstatus": {ledger: []string{"dynamodb:GetItem"}},
	"ephemeralrevoke": {masters: []string{smGetValue}, logins: []string{smDelete},
		ledger: []string{"dynamodb:GetItem", "dynamodb:PutItem"}},
	// PutItem: the alert marks a lease it alerted for when no failed
	// attempt had (EphemeralGrantExceptions).
	"ephemeralalert": {ledger: []string{"dynamodb:GetItem", "dynamodb:PutItem"}},
	"ephemeralsweep": {templates: []string{smGetValue}, masters: []string{smGetValue}, logins: []string{smDelete},
		ledger: []string{"dynamodb:GetItem", "dynamodb:PutItem"}, index: true},
}

const (
	smCreate = "secretsmanager:CreateSecret"
	smDelete = "secretsmanager:DeleteSecret"
	smTag    = "secretsmanager:TagResource"
)

const nagEphemeralSecretsReason = "Secrets Manager cannot name a group's templates, their masters or the logins issued from them in a " +
	"policy: a secret's ARN ends in a random suffix and the logins are created at run time. Every action on secret:* is limited by " +
	"a secretsmanager:ResourceTag condition (" + EphemeralTemplateTag + ", " + RotationGroupTag + " or " + EphemeralGroupTag +
	" equal to the group), and CreateSecret by the aws:RequestTag/" + EphemeralGroupTag + " the new secret must carry " +
	"(attribute-based access control)."

// EphemeralGrantExceptions are the grants of the short-lived login
// functions that no recorded call shows, with their reasons (the infra
// test's grantExceptions for them).
var EphemeralGrantExceptions = map[string]map[string]string{
	"ephemeralissue": {smTag: "CreateSecret with Tags is authorized by secretsmanager:TagResource as well (the issued login's secret is created tagged with its lease, expiry, owner and group)"},
	"ephemeralalert": {"dynamodb:PutItem": "the alert journals that it alerted when the lease's failed attempts had not (the execution's retries ended before the sweeper's third attempt); the recorded scenario's lease had alerted already"},
}

// allHandlers are every handler the construct knows.
func allHandlers() []Handler { return append(slices.Clone(Handlers), EphemeralHandlers...) }

// ephemeralGrants gives a short-lived login function its grants.
func (r *Rotation) ephemeralGrants(role awsiam.Role, name string) {
	g, ok := ephemeralGrants[name]
	if !ok {
		panic(fmt.Sprintf("secretsaga: no grants for %s", name))
	}
	stack := awscdk.Stack_Of(r.Construct)
	secrets := func(name string) *string {
		return stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
			ResourceName: jsii.String(name), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	}
	tagged := func(key string) *map[string]interface{} {
		return &map[string]interface{}{"StringEquals": map[string]interface{}{"secretsmanager:ResourceTag/" + key: r.RotationGroup}}
	}
	add := func(sid string, actions []string, resource *string, cond *map[string]interface{}) {
		if len(actions) == 0 {
			return
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: &[]*string{resource}, Conditions: cond,
		}))
	}
	add("EphemeralTemplates", g.templates, secrets("*"), tagged(EphemeralTemplateTag))
	add("EphemeralMasters", g.masters, secrets("*"), tagged(RotationGroupTag))
	add("EphemeralLogins", g.logins, secrets(EphemeralSecretPrefix+"*"), tagged(EphemeralGroupTag))
	if g.create {
		add("EphemeralCreateLogins", []string{smCreate, smTag}, secrets(EphemeralSecretPrefix+"*"),
			&map[string]interface{}{"StringEquals": map[string]interface{}{"aws:RequestTag/" + EphemeralGroupTag: r.RotationGroup}})
	}
	add("EphemeralLedger", g.ledger, r.Table.TableArn(), nil)
	if g.index {
		add("EphemeralSweep", []string{"dynamodb:Query"}, jsii.String(*r.Table.TableArn()+"/index/"+EphemeralIndex), nil)
	}
	findings := []any{}
	if len(g.templates)+len(g.masters) > 0 {
		findings = append(findings, arnFinding("secretsmanager", "secret:*"))
	}
	if len(g.logins) > 0 || g.create {
		findings = append(findings, arnFinding("secretsmanager", "secret:"+EphemeralSecretPrefix+"*"))
	}
	if len(findings) > 0 {
		suppressWildcard(role, nagEphemeralSecretsReason, findings...)
	}
}

// addEphemeral adds the state machine and the alert rule, once the
// functions exist; it returns the rule (the alert topic's targets are set
// once, for every rule).
func (r *Rotation) addEphemeral(p EphemeralProps) awsevents.Rule {
	if !p.Enabled {
		return nil
	}
	r.EphemeralStateMachine = r.newStateMachine("EphemeralStateMachine", "secretsaga short-lived database logins (rotation group "+r.RotationGroup+")", statemachines.Ephemeral)
	return awsevents.NewRule(r.Construct, jsii.String("EphemeralAlerts"), &awsevents.RuleProps{
		Description: jsii.String("secretsaga short-lived logins whose revocation failed, or found by the sweeper with no lease"),
		EventBus:    r.EventBus,
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(EventSource),
			DetailType: jsii.Strings(EphemeralAlertDetailTypes...),
		},
	})
}

// addEphemeralSweepSchedule runs the sweeper on its schedule, with a role
// that may invoke it and nothing else (and send to the dead-letter queue).
func (r *Rotation) addEphemeralSweepSchedule(p EphemeralProps) {
	if !p.Enabled {
		return
	}
	expr := p.SweepSchedule
	if expr == "" {
		expr = DefaultEphemeralSweepSchedule
	}
	r.EphemeralSweepSchedule = r.invokeOnSchedule(scheduledInvoke{
		id: "EphemeralSweepSchedule", fn: "ephemeralsweep", expr: expr, maxEventAge: 300,
		role:        "secretsaga sweeper schedule: runs the short-lived logins' sweeper (" + r.RotationGroup + ")",
		description: "secretsaga: revoke every short-lived login whose expiry passed",
	})
}

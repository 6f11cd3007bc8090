// Package rotation is the AWS CDK construct that deploys secretsaga: the
// twelve Lambda functions (eight saga steps, two fleet steps, the Secrets
// Manager native rotation entry, the scheduled repair; five more for
// short-lived logins with RotationProps.Ephemeral), the rotation saga and the fleet rotation
// (Step Functions), the DynamoDB ledger, an EventBridge bus with alert rules,
// Scheduler schedules and CloudWatch alarms. NewRotation drops it into any
// stack; NewRotationStack wraps it in a stack of its own with CloudFormation
// outputs.
package rotation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/statemachines"
)

// Names shared with the functions (shared/config, shared/events) and the
// secrets users attach. They are repeated here rather than imported so that
// this module does not pull the AWS SDK.
const (
	// RotationGroupTag is the secret tag whose value must equal the
	// construct's RotationGroup for its functions to touch the secret.
	RotationGroupTag = "secretsaga:rotation-group"
	// DefaultRotationGroup is RotationGroup's default.
	DefaultRotationGroup = "default"
	// EventSource is the EventBridge source of the functions' events.
	EventSource = "secretsaga"
	// The functions' environment variables: shared/functions names them
	// and lists which function reads which; the functions are deployed
	// with exactly that list (newFunctions).
	EnvLedgerTable = functions.EnvLedgerTable
	EnvEventBus    = functions.EnvEventBus
	// EnvStateMachineArn is the native rotation entry's environment
	// variable: the rotation state machine it starts (shared/config).
	EnvStateMachineArn = functions.EnvStateMachineArn
	// EnvBakeAlarmNames: the CloudWatch alarms (comma-separated) every bake
	// watches (shared/config); set only when BakeAlarmNames are given.
	EnvBakeAlarmNames = functions.EnvBakeAlarmNames
	// The repair function's backoff (shared/config): Go durations, set
	// only when RepairProps gives them.
	EnvRepairBackoff    = functions.EnvRepairBackoff
	EnvRepairMaxBackoff = functions.EnvRepairMaxBackoff
	EnvRepairAlertAfter = functions.EnvRepairAlertAfter
	// RepairIndex is the ledger's sparse index of the repair queue, keyed
	// by RepairQueueAttr (shared/ledger).
	RepairIndex     = "repair"
	RepairQueueAttr = "repairQueue"
	// DefaultRepairSchedule runs the repair function: often enough that a
	// due attempt (hours apart) waits at most a quarter of an hour.
	DefaultRepairSchedule = "rate(15 minutes)"
	// SecretsManagerPrincipal invokes the native rotation entry.
	SecretsManagerPrincipal = "secretsmanager.amazonaws.com"
	// EnvLambdaAssetDir overrides where the built bootstraps are looked for.
	EnvLambdaAssetDir = "SECRETSAGA_LAMBDA_ASSET_DIR"
	// DefaultReservedConcurrency caps the functions that talk to databases.
	DefaultReservedConcurrency = 10
	// EnvLedgerRetentionDays and its default (RotationProps.LedgerRetentionDays).
	EnvLedgerRetentionDays     = functions.EnvLedgerRetentionDays
	DefaultLedgerRetentionDays = functions.DefaultLedgerRetentionDays
)

// AlertDetailTypes are the secretsaga events sent to the alert topic.
// Fleet Rotation Failed (fleetreport) announces a fleet child that failed,
// including one refused at acquire, which publishes nothing else.
var AlertDetailTypes = append([]string{"Rotation Rolled Back", "Rotation Abandoned", "Compensation Failed", "Rotation Repair Needed", "Fleet Rotation Failed"},
	AccessAlertDetailTypes...)

// Secrets Manager actions, by name.
const (
	smDescribe    = "secretsmanager:DescribeSecret"
	smGetValue    = "secretsmanager:GetSecretValue"
	smPutValue    = "secretsmanager:PutSecretValue"
	smUpdateStage = "secretsmanager:UpdateSecretVersionStage"
	smList        = "secretsmanager:ListSecrets"
	smVersions    = "secretsmanager:ListSecretVersionIds"
)

// cwDescribeAlarms reads the bake's CloudWatch alarms (verify).
const cwDescribeAlarms = "cloudwatch:DescribeAlarms"

// unscopedActions are the only actions a handler may get on Resource "*"
// (Handler.Unscoped): none supports resource-level permissions (nor, for
// the Secrets Manager ones, the secretsmanager:ResourceTag condition), so
// IAM cannot scope them. ListSecrets returns metadata (names, ARNs, tags), never a value, and
// every action on a listed secret is still subject to the rotation-group
// condition of the saga's roles. DescribeAlarms (verify only) reads alarm
// states and configuration, never a secret; the alarms a bake watches are
// named at run time (BakeAlarms) as well as at deploy time.
var unscopedActions = map[string]bool{smList: true, cwDescribeAlarms: true}

// LedgerActions are the DynamoDB actions every ledger function gets on the
// ledger table: shared/ledger reads items with GetItem and writes only with
// TransactWriteItems, which is authorized by the per-item actions it
// contains: Put items (PutItem) and the ConditionCheck items of the login
// locks (ConditionCheckItem: Acquire and every journal write that does not
// release the lease). Nothing issues UpdateItem; Query (the journal's
// History, the repair queue) is the repair function's alone (Handler.Repair).
var LedgerActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"}

// Handler describes one Lambda function of the saga or of the fleet.
type Handler struct {
	Name        string   // directory under functions/ and under the asset dir
	Placeholder string   // the ${Name} it fills in the state machine definitions (as in shared/functions)
	Database    bool     // talks to the target: reserved concurrency
	Ledger      bool     // LedgerActions on the ledger table (and the LEDGER_TABLE, EVENT_BUS_NAME environment)
	Secrets     []string // Secrets Manager actions on the rotation group's secrets
	Unscoped    []string // actions on Resource "*": only those of unscopedActions
	BakeAlarms  bool     // the bake: gets BAKE_ALARM_NAMES (RotationProps.BakeAlarmNames)
	PutEvents   bool
	// Target: the function logs in to the database or cache a secret
	// names, so it goes into the VPC when one is given (RotationProps.Vpc
	// or VpcId); the others reach only AWS APIs and stay out of it.
	Target bool
	Fleet  bool // a step of the fleet only: left out when RotationProps.FleetEnabled is false
	// Native is the Secrets Manager native rotation entry: it gets no
	// ledger, secret or event access, only states:StartExecution and
	// states:DescribeExecution on the rotation state machine (added once the
	// machine exists, see addNativeRotation), stays out of the VPC, and is
	// left out when RotationProps.NativeRotationEnabled is false.
	Native bool
	// Repair is the scheduled self-healing function: Query on the ledger
	// table (the journal's History: did the version pass its test?) and on
	// its repair index too, REPAIR_* in its environment, and run by the
	// repair schedule (no state machine calls it).
	Repair bool
	// AccessAudit is the access audit (access.go): AccessAuditActions on
	// the ledger table, the rotation group and the other functions' roles
	// in its environment, run by the access rules.
	AccessAudit bool
	// Ephemeral is a short-lived login function (ephemeral.go): its grants
	// are ephemeralGrants, deployed with RotationProps.Ephemeral.Enabled.
	Ephemeral   bool
	Description string
}

// Handlers lists the functions: the saga's in saga order, then the fleet's.
// Each gets the Secrets Manager actions of the calls its step makes
// (shared/rotation through shared/secretstore), no more.
var Handlers = []Handler{
	// acquirelease reads BAKE_ALARM_NAMES too: it validates the bake
	// (BakeSeconds needs something to watch) before anything starts. It
	// lists versions (unlabelled ones included) to refuse a token that
	// names an old version, and takes AWSPENDING off the empty version
	// RotateSecret made for a rotation it refuses (UpdateSecretVersionStage).
	{Name: "acquirelease", Placeholder: "AcquireLeaseFunctionArn", Ledger: true, BakeAlarms: true,
		Secrets:     []string{smDescribe, smGetValue, smVersions, smUpdateStage},
		Description: "secretsaga acquirelease: takes the secret's lease and records its versions"},
	// createsecret logs in with AWSCURRENT before it makes a password (a
	// secret that cannot log in is not rotated), and labels its own
	// version AWSPENDING again when an earlier
	// attempt stored the value but lost the label (UpdateSecretVersionStage).
	{Name: "createsecret", Target: true, Placeholder: "CreateSecretFunctionArn", Ledger: true,
		Secrets:     []string{smDescribe, smGetValue, smPutValue, smUpdateStage},
		Description: "secretsaga createsecret: generates the new password as AWSPENDING"},
	// setsecret and testsecret only read the versions the rotation context
	// names (GetSecretValue by version id); they never describe the secret.
	{Name: "setsecret", Target: true, Placeholder: "SetSecretFunctionArn", Database: true, Ledger: true,
		Secrets:     []string{smGetValue},
		Description: "secretsaga setsecret: changes the credential on the target"},
	{Name: "testsecret", Target: true, Placeholder: "TestSecretFunctionArn", Database: true, Ledger: true,
		Secrets:     []string{smGetValue},
		Description: "secretsaga testsecret: logs in to the target with AWSPENDING"},
	// finishsecret publishes nothing: releaselease announces the outcome.
	{Name: "finishsecret", Placeholder: "FinishSecretFunctionArn", Ledger: true,
		Secrets:     []string{smDescribe, smUpdateStage},
		Description: "secretsaga finishsecret: moves AWSCURRENT to the new version"},
	{Name: "verify", Target: true, Placeholder: "VerifyFunctionArn", Database: true, Ledger: true,
		Secrets: []string{smDescribe, smGetValue}, Unscoped: []string{cwDescribeAlarms}, BakeAlarms: true,
		Description: "secretsaga verify: bakes the new AWSCURRENT against the target"},
	// releaselease describes the secret only for the Compensation Failed
	// alert: a deleted secret needs a person to restore it.
	{Name: "releaselease", Placeholder: "ReleaseLeaseFunctionArn", Ledger: true,
		Secrets: []string{smDescribe}, PutEvents: true,
		Description: "secretsaga releaselease: journals the outcome and releases the lease"},
	{Name: "compensate", Target: true, Placeholder: "CompensateFunctionArn", Database: true, Ledger: true,
		Secrets: []string{smDescribe, smGetValue, smUpdateStage}, PutEvents: true,
		Description: "secretsaga compensate: undoes a failed rotation"},
	// The fleet's steps. listsecrets selects the secrets by tag; ListSecrets
	// has no resource-level permissions, hence Resource "*" (see
	// unscopedActions). fleetsummary only counts the Map's results: no AWS
	// call, so no permission beyond its logs.
	{Name: "listsecrets", Placeholder: "ListSecretsFunctionArn", Fleet: true,
		Unscoped:    []string{smList},
		Description: "secretsaga listsecrets: lists the secrets that carry the fleet's tag"},
	{Name: "fleetsummary", Placeholder: "FleetSummaryFunctionArn", Fleet: true,
		Description: "secretsaga fleetsummary: counts the fleet's outcomes"},
	// fleetreport publishes one failed fleet child's Fleet Rotation Failed
	// event: nothing else (it reads neither the secret nor the ledger).
	{Name: "fleetreport", Placeholder: "FleetReportFunctionArn", Fleet: true, PutEvents: true,
		Description: "secretsaga fleetreport: announces a failed fleet child"},
	// The entry Secrets Manager's native rotation (RotateSecret, a secret's
	// rotation schedule) invokes: it starts the saga on createSecret and
	// watches it; finishSecret waits for the saga, hence the long timeout.
	{Name: "nativerotation", Native: true,
		Description: "secretsaga nativerotation: Secrets Manager native rotation entry that starts and watches the saga"},
	// The self-healing of secrets left in COMPENSATION_FAILED: it reads the
	// repair queue, logs in with the secret's versions, and finishes or
	// undoes the rotation (the stage moves of finish and compensate).
	{Name: "repair", Target: true, Ledger: true, Repair: true, PutEvents: true,
		Secrets:     []string{smDescribe, smGetValue, smUpdateStage},
		Description: "secretsaga repair: heals secrets left in COMPENSATION_FAILED once the target answers"},
}

// LedgerTablePlaceholder is the definition's placeholder for the table name.
const LedgerTablePlaceholder = "LedgerTableName"

// ScheduleProps is one EventBridge Scheduler schedule that rotates a secret.
type ScheduleProps struct {
	// Name identifies the schedule (construct id and description).
	Name string `json:"name"`
	// SecretArn or SecretId: the secret to rotate (one is required).
	SecretArn string `json:"secretArn,omitempty"`
	SecretId  string `json:"secretId,omitempty"`
	// Expression is a Scheduler expression: "rate(30 days)", "cron(0 3 ? * SUN *)".
	Expression string `json:"expression"`
	// Timezone of a cron expression (IANA name); UTC if empty.
	Timezone string `json:"timezone,omitempty"`
	// Verify overrides RotationProps.VerifyEnabled for this schedule.
	Verify *bool `json:"verify,omitempty"`
}

// RotationProps configures the construct. The zero value is valid.
type RotationProps struct {
	// RotationGroup is the value of the secretsaga:rotation-group tag a
	// secret must carry for these functions to read or change it. "default"
	// if empty.
	RotationGroup string
	// SecretKmsKeyArns are the customer managed KMS keys the secrets are
	// encrypted with. Empty means the AWS managed key aws/secretsmanager,
	// which needs no grant.
	SecretKmsKeyArns []string
	// Schedules start rotations on a timetable.
	Schedules []ScheduleProps
	// AlarmEmail, if set, is subscribed to the alarm topic.
	AlarmEmail string
	// LambdaAssetDir holds <name>/bootstrap for every handler (`make
	// build`). Default: $SECRETSAGA_LAMBDA_ASSET_DIR, else build/lambda at
	// the repository root.
	LambdaAssetDir string
	// VerifyEnabled adds "Verify": true to scheduled executions' input, so
	// the saga runs the bake step.
	VerifyEnabled bool
	// BakeAlarmNames are CloudWatch alarms (in the stack's account and
	// region) that every bake watches, besides an execution's BakeAlarms:
	// one in ALARM rolls the rotation back. They reach the verify function
	// as BAKE_ALARM_NAMES; the bake runs when the saga enters Verify
	// (Verify, HealthCheckUrl or BakeAlarms in the input).
	BakeAlarmNames []string
	// EventBusName is the custom bus's name: "secretsaga" for the default
	// group, "secretsaga-<group>" otherwise.
	EventBusName string
	// ReservedConcurrency of the functions that talk to databases; 0 means
	// DefaultReservedConcurrency. DisableReservedConcurrency turns it off
	// (accounts whose concurrency quota is still 10 cannot reserve any).
	ReservedConcurrency        int
	DisableReservedConcurrency bool
	// FleetEnabled deploys the fleet rotation (its state machine and the
	// listsecrets and fleetsummary functions); nil means true.
	FleetEnabled *bool
	// NativeRotationEnabled deploys the nativerotation function, which a
	// secret's Secrets Manager rotation configuration can name; nil means
	// true.
	NativeRotationEnabled *bool
	// AccessAuditEnabled deploys the access audit (AccessAuditHandler and
	// its rules, access.go); nil means false: it needs a CloudTrail trail
	// logging management events, and its rules receive every read-only
	// Secrets Manager event of the account.
	AccessAuditEnabled *bool
	// Repair times the self-healing of secrets left in COMPENSATION_FAILED.
	Repair RepairProps
	// Ephemeral deploys short-lived database logins (off by default).
	Ephemeral EphemeralProps
	// LedgerRetentionDays is how long journal records are kept: the
	// functions that write the ledger give each record that TTL (the
	// table's expiresAt). nil means DefaultLedgerRetentionDays; 0 keeps
	// them forever. Lease items never expire.
	LedgerRetentionDays *int
	// Vpc, if set, places the functions that log in to targets
	// (Handler.Target) in it, in VpcSubnets (the VPC's private subnets if
	// nil), with SecurityGroups (if empty, one security group the
	// construct makes, DatabaseClientSecurityGroup, that allows all
	// outbound traffic and no inbound: allow it into the databases'
	// security groups). Those functions reach Secrets Manager, DynamoDB,
	// EventBridge, CloudWatch and X-Ray from the subnets, so the subnets
	// need a NAT gateway or VPC endpoints for them.
	Vpc            awsec2.IVpc
	VpcSubnets     *awsec2.SubnetSelection
	SecurityGroups []awsec2.ISecurityGroup
	// VpcId, VpcSubnetIds and VpcSecurityGroupIds name an existing VPC by
	// its ids when Vpc is nil (the app's vpcId, vpcSubnetIds and
	// vpcSecurityGroupIds context keys). They are imported as given, with
	// no lookup, so synthesis needs no AWS account. VpcSubnetIds is
	// required with VpcId; VpcSecurityGroupIds may be empty (see Vpc).
	VpcId               string
	VpcSubnetIds        []string
	VpcSecurityGroupIds []string
}

// vpcIDPattern checks the ids of VpcId, VpcSubnetIds and
// VpcSecurityGroupIds (EC2's resource ids: prefix and hex).
var vpcIDPattern = map[string]*regexp.Regexp{
	"vpc":    regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`),
	"subnet": regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`),
	"sg":     regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`),
}

// CheckVpcIds reports what is wrong with VpcId, VpcSubnetIds and
// VpcSecurityGroupIds, or nil.
func (p *RotationProps) CheckVpcIds() error {
	if p.VpcId == "" {
		if len(p.VpcSubnetIds) > 0 || len(p.VpcSecurityGroupIds) > 0 {
			return fmt.Errorf("subnet or security group ids without a VPC id: give the VPC's id too")
		}
		return nil
	}
	if p.Vpc != nil {
		return fmt.Errorf("both a Vpc and a VPC id: give one")
	}
	if !vpcIDPattern["vpc"].MatchString(p.VpcId) {
		return fmt.Errorf("VPC id %q is not a VPC id (vpc- and 8 to 17 hex digits)", p.VpcId)
	}
	if len(p.VpcSubnetIds) == 0 {
		return fmt.Errorf("VPC %s: no subnet ids: name the (private) subnets the functions that reach the databases run in", p.VpcId)
	}
	for _, id := range p.VpcSubnetIds {
		if !vpcIDPattern["subnet"].MatchString(id) {
			return fmt.Errorf("subnet id %q is not a subnet id (subnet- and 8 to 17 hex digits)", id)
		}
	}
	for _, id := range p.VpcSecurityGroupIds {
		if !vpcIDPattern["sg"].MatchString(id) {
			return fmt.Errorf("security group id %q is not a security group id (sg- and 8 to 17 hex digits)", id)
		}
	}
	return nil
}

// RepairProps times the repair function. Zero values take the defaults.
type RepairProps struct {
	// Schedule is the Scheduler expression that runs the repair function;
	// DefaultRepairSchedule if empty. It only looks for due attempts: the
	// backoff below decides when a secret is attempted.
	Schedule string `json:"schedule,omitempty"`
	// Backoff (first attempt after the failure, then doubling), MaxBackoff
	// and AlertAfter (when a person is called if nothing answers) are Go
	// durations ("1h", "24h", "168h"); empty: the function's defaults of
	// 1h, 24h and 168h.
	Backoff    string `json:"backoff,omitempty"`
	MaxBackoff string `json:"maxBackoff,omitempty"`
	AlertAfter string `json:"alertAfter,omitempty"`
}

// env returns the repair function's REPAIR_* variables; it panics on a
// value that is not a positive Go duration, which the function would refuse
// at start-up.
func (p RepairProps) env() map[string]string {
	out := map[string]string{}
	for _, v := range []struct{ name, value string }{
		{EnvRepairBackoff, p.Backoff}, {EnvRepairMaxBackoff, p.MaxBackoff}, {EnvRepairAlertAfter, p.AlertAfter},
	} {
		if v.value == "" {
			continue
		}
		if d, err := time.ParseDuration(v.value); err != nil || d <= 0 {
			panic(fmt.Sprintf("secretsaga: Repair: %s=%q is not a positive duration such as 1h or 30m", v.name, v.value))
		}
		out[v.name] = v.value
	}
	return out
}

// Rotation is the construct; its fields are the resources other code may
// want to wire to.
type Rotation struct {
	constructs.Construct
	RotationGroup string
	Functions     map[string]awslambda.Function // by handler name
	Roles         map[string]awsiam.Role        // by handler name
	StateMachine  awsstepfunctions.StateMachine // the rotation saga
	// FleetStateMachine rotates every secret a tag selects; nil when
	// RotationProps.FleetEnabled is false.
	FleetStateMachine awsstepfunctions.StateMachine
	// NativeRotationFunction is the Secrets Manager native rotation entry
	// (also Functions["nativerotation"]); nil when
	// RotationProps.NativeRotationEnabled is false.
	NativeRotationFunction awslambda.Function
	// RepairSchedule runs the repair function.
	RepairSchedule awsscheduler.CfnSchedule
	// EphemeralStateMachine runs a short-lived login and
	// EphemeralSweepSchedule its sweeper; nil unless
	// RotationProps.Ephemeral.Enabled.
	EphemeralStateMachine  awsstepfunctions.StateMachine
	EphemeralSweepSchedule awsscheduler.CfnSchedule
	// DatabaseClientSecurityGroup is the security group of the functions
	// in the VPC when the props name none; nil otherwise.
	DatabaseClientSecurityGroup awsec2.ISecurityGroup
	// ScheduleDeadLetters receives what a schedule could not deliver after
	// its retries (EventBridge Scheduler sends it with the schedule's role).
	ScheduleDeadLetters awssqs.Queue

	fleetName  string
	Table      awsdynamodb.Table
	EventBus   awsevents.EventBus
	AlarmTopic awssns.Topic
	Alarms     []awscloudwatch.Alarm
	Schedules  []awsscheduler.CfnSchedule

	// rotationLogs is the rotation state machine's log group (the
	// unexpected-failures alarm counts its events).
	rotationLogs awslogs.LogGroup
}

// NewRotation adds secretsaga to scope.
func NewRotation(scope constructs.Construct, id string, props *RotationProps) *Rotation {
	if props == nil {
		props = &RotationProps{}
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	stack := awscdk.Stack_Of(c)
	r := &Rotation{
		Construct:     c,
		RotationGroup: props.RotationGroup,
		Functions:     map[string]awslambda.Function{},
		Roles:         map[string]awsiam.Role{},
	}
	if r.RotationGroup == "" {
		r.RotationGroup = DefaultRotationGroup
	}
	assets := ResolveLambdaAssetDir(props.LambdaAssetDir)
	fleet := props.FleetEnabled == nil || *props.FleetEnabled
	native := props.NativeRotationEnabled == nil || *props.NativeRotationEnabled
	// A fixed name (per stack: Step Functions names are per account and
	// region) so the fleet's role can name its own child executions.
	r.fleetName = *awscdk.Stack_Of(c).StackName() + "-" + *c.Node().Id() + "-fleet"

	// Ledger.
	r.Table = awsdynamodb.NewTable(c, jsii.String("Ledger"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String("sk"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection:  jsii.Bool(true),
		TimeToLiveAttribute: jsii.String("expiresAt"),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	})
	// The repair queue: only lease items awaiting repair carry
	// repairQueue, so this sparse index holds exactly them.
	r.Table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String(RepairIndex),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(RepairQueueAttr), Type: awsdynamodb.AttributeType_STRING},
		ProjectionType: awsdynamodb.ProjectionType_ALL,
	})
	// The open short-lived logins: only their lease items carry
	// ephemeralQueue, sorted by when each is due for revocation (the
	// sweeper's query).
	r.Table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String(EphemeralIndex),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(EphemeralQueueAttr), Type: awsdynamodb.AttributeType_STRING},
		SortKey:        &awsdynamodb.Attribute{Name: jsii.String(EphemeralDueAttr), Type: awsdynamodb.AttributeType_NUMBER},
		ProjectionType: awsdynamodb.ProjectionType_ALL,
	})

	// Events.
	busName := props.EventBusName
	if busName == "" {
		busName = "secretsaga"
		if r.RotationGroup != DefaultRotationGroup {
			busName += "-" + r.RotationGroup
		}
	}
	r.EventBus = awsevents.NewEventBus(c, jsii.String("Bus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(busName),
	})

	// Functions.
	secretArns := stack.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("secretsmanager"),
		Resource:     jsii.String("secret"),
		ResourceName: jsii.String("*"),
		ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
	tagCondition := &map[string]interface{}{
		"StringEquals": map[string]interface{}{
			"secretsmanager:ResourceTag/" + RotationGroupTag: r.RotationGroup,
		},
	}
	viaSecretsManager := &map[string]interface{}{
		"StringEquals": map[string]interface{}{
			"kms:ViaService": "secretsmanager." + *stack.Region() + ".amazonaws.com",
		},
	}
	reserved := props.ReservedConcurrency
	if reserved == 0 {
		reserved = DefaultReservedConcurrency
	}
	// What the stack gives the environment variables of shared/functions.
	retention := DefaultLedgerRetentionDays
	if props.LedgerRetentionDays != nil {
		retention = *props.LedgerRetentionDays
	}
	if retention < 0 {
		panic(fmt.Sprintf("secretsaga: LedgerRetentionDays %d: want 0 (keep forever) or more days", retention))
	}
	env := map[string]*string{
		EnvLedgerTable:         r.Table.TableName(),
		EnvEventBus:            r.EventBus.EventBusName(),
		EnvLedgerRetentionDays: jsii.String(strconv.Itoa(retention)),
	}
	if len(props.BakeAlarmNames) > 0 {
		env[EnvBakeAlarmNames] = jsii.String(strings.Join(props.BakeAlarmNames, ","))
	}
	for k, v := range props.Repair.env() {
		env[k] = jsii.String(v)
	}
	env[EnvRotationGroup] = jsii.String(r.RotationGroup)
	for _, n := range props.BakeAlarmNames {
		if n == "" || len(n) > 255 || strings.Contains(n, ",") {
			panic(fmt.Sprintf("secretsaga: BakeAlarmNames: %q is not a CloudWatch alarm name this construct can pass on (1 to 255 characters, no comma)", n))
		}
	}
	vpc := r.vpc(props)
	handlers := Handlers
	if props.Ephemeral.Enabled {
		handlers = append(slices.Clone(handlers), EphemeralHandlers...)
	}
	if props.AccessAuditEnabled != nil && *props.AccessAuditEnabled {
		handlers = append(slices.Clone(handlers), AccessAuditHandler) // last: its environment names the others' roles
	}
	for _, h := range handlers {
		if (h.Fleet && !fleet) || (h.Native && !native) {
			continue
		}
		role := awsiam.NewRole(c, jsii.String(h.Name+"Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("secretsaga " + h.Name + " (rotation group " + r.RotationGroup + ")"),
		})
		logs := awslogs.NewLogGroup(c, jsii.String(h.Name+"Logs"), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_RETAIN, // expire by retention, survive stack deletion
		})
		logs.GrantWrite(role)
		if len(h.Secrets) > 0 {
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("SecretsInRotationGroup"),
				Actions:    jsii.Strings(h.Secrets...),
				Resources:  jsii.Strings(*secretArns),
				Conditions: tagCondition,
			}))
		}
		if len(h.Unscoped) > 0 {
			for _, a := range h.Unscoped {
				if !unscopedActions[a] {
					panic(fmt.Sprintf("secretsaga: handler %s: %s must not be allowed on Resource \"*\"", h.Name, a))
				}
			}
			// These actions have no resource-level permissions: "*" is
			// the only resource IAM accepts for them (see unscopedActions).
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("NoResourceLevelPermissions"),
				Actions:   jsii.Strings(h.Unscoped...),
				Resources: jsii.Strings("*"),
			}))
		}
		if kms := kmsActions(h); len(props.SecretKmsKeyArns) > 0 && len(kms) > 0 {
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("SecretKeys"),
				Actions:    jsii.Strings(kms...),
				Resources:  jsii.Strings(props.SecretKmsKeyArns...),
				Conditions: viaSecretsManager,
			}))
		}
		if h.Ledger {
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("Ledger"),
				Actions:   jsii.Strings(LedgerActions...),
				Resources: jsii.Strings(*r.Table.TableArn()),
			}))
		}
		if h.Repair {
			// The journal (History) on the table, the queue on its index.
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("RepairQueue"),
				Actions:   jsii.Strings("dynamodb:Query"),
				Resources: jsii.Strings(*r.Table.TableArn(), *r.Table.TableArn()+"/index/"+RepairIndex),
			}))
		}
		if h.PutEvents {
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("Events"),
				Actions:   jsii.Strings("events:PutEvents"),
				Resources: jsii.Strings(*r.EventBus.EventBusArn()),
			}))
		}
		if h.Ephemeral {
			r.ephemeralGrants(role, h.Name)
		}
		if h.AccessAudit {
			r.accessAuditGrants(role)
			env[EnvTrustedPrincipals] = r.trustedRoleArns()
		}
		settings := functions.MustGet(h.Name)
		fp := &awslambda.FunctionProps{
			Description:  jsii.String(h.Description),
			Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture: awslambda.Architecture_ARM_64(),
			Handler:      jsii.String("bootstrap"),
			Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(assets, h.Name)), nil),
			// Timeout and memory come from shared/functions, the table the
			// local stack runs the functions with.
			MemorySize: jsii.Number(settings.MemoryMB),
			Timeout:    awscdk.Duration_Seconds(jsii.Number(settings.Timeout.Seconds())),
			Role:       role,
			LogGroup:   logs,
			Tracing:    awslambda.Tracing_ACTIVE,
		}
		// Exactly the variables shared/functions lists for the function
		// (the local stack runs the built binaries with the same list).
		vars := map[string]*string{}
		for _, name := range settings.Env {
			if v, ok := env[name]; ok {
				vars[name] = v
				continue
			}
			// STATE_MACHINE_ARN: added once the machine exists
			// (addNativeRotation); an optional one: not configured.
			if name != EnvStateMachineArn && !functions.OptionalEnv(name) {
				panic(fmt.Sprintf("secretsaga: function %s reads %s, which this construct does not set", h.Name, name))
			}
		}
		if len(vars) > 0 {
			fp.Environment = &vars
		}
		if h.Database && !props.DisableReservedConcurrency {
			fp.ReservedConcurrentExecutions = jsii.Number(reserved)
		}
		onStar := append(slices.Clone(TracingActions), h.Unscoped...)
		why := unscopedWhy(h)
		if vpc != nil && h.Target {
			fp.Vpc, fp.VpcSubnets, fp.SecurityGroups = vpc.vpc, vpc.subnets, &vpc.groups
			vpc.allow(role)
			onStar = append(onStar, ec2DescribeNetworkInterfaces)
			why += " " + nagDescribeNetworkInterfacesWhy
			suppressWildcard(role, nagNetworkInterfacesReason, arnFinding("ec2", "network-interface/*"))
		}
		r.Roles[h.Name] = role
		r.Functions[h.Name] = awslambda.NewFunction(c, jsii.String(h.Name), fp)
		suppressWildcard(role, starReason(onStar, why), "Resource::*")
		if len(h.Secrets) > 0 {
			suppressWildcard(role, nagSecretsReason, arnFinding("secretsmanager", "secret:*"))
		}
	}

	// State machines: the rotation saga, and the fleet that runs the same
	// saga for every secret a tag selects.
	r.StateMachine = r.newStateMachine("StateMachine", "secretsaga rotation saga (rotation group "+r.RotationGroup+")", statemachines.Rotation)
	machines := []struct {
		prefix, what string
		sm           awsstepfunctions.StateMachine
	}{{"", "rotation", r.StateMachine}}
	if fleet {
		r.FleetStateMachine = r.newStateMachine("FleetStateMachine", "secretsaga fleet rotation (rotation group "+r.RotationGroup+")", statemachines.Fleet)
		r.allowDistributedMap(r.FleetStateMachine, r.fleetName)
		machines = append(machines, struct {
			prefix, what string
			sm           awsstepfunctions.StateMachine
		}{"Fleet", "fleet", r.FleetStateMachine})
	}
	if native {
		r.addNativeRotation()
	}
	var machineArns []string
	for _, m := range machines {
		machineArns = append(machineArns, *m.sm.StateMachineArn())
	}

	// Alerts: one topic for events and alarms.
	r.AlarmTopic = awssns.NewTopic(c, jsii.String("Alerts"), &awssns.TopicProps{
		DisplayName: jsii.String("secretsaga alerts (" + r.RotationGroup + ")"),
		EnforceSSL:  jsii.Bool(true),
	})
	if props.AlarmEmail != "" {
		r.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(props.AlarmEmail), nil))
	}
	rotationAlerts := awsevents.NewRule(c, jsii.String("RotationAlerts"), &awsevents.RuleProps{
		Description: jsii.String("secretsaga rotations that rolled back, were abandoned, could not be compensated or failed in a fleet"),
		EventBus:    r.EventBus,
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(EventSource),
			DetailType: jsii.Strings(AlertDetailTypes...),
		},
	})
	executionAlerts := awsevents.NewRule(c, jsii.String("ExecutionAlerts"), &awsevents.RuleProps{
		Description: jsii.String("secretsaga rotation and fleet executions that failed, timed out or were aborted"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.states"),
			DetailType: jsii.Strings("Step Functions Execution Status Change"),
			Detail: &map[string]interface{}{
				"status":          []string{"FAILED", "TIMED_OUT", "ABORTED"},
				"stateMachineArn": machineArns,
			},
		},
	})
	alertRules := []awsevents.Rule{rotationAlerts, executionAlerts}
	if rule := r.addEphemeral(props.Ephemeral); rule != nil {
		alertRules = append(alertRules, rule)
	}
	r.alertTopicTargetOf(alertRules...)
	alarm := awscloudwatchactions.NewSnsAction(r.AlarmTopic)
	for _, sm := range machines {
		for _, m := range []struct {
			id, what string
			metric   awscloudwatch.Metric
		}{
			{"ExecutionsFailed", "failed", sm.sm.MetricFailed(nil)},
			{"ExecutionsTimedOut", "timed out", sm.sm.MetricTimedOut(nil)},
			{"ExecutionsAborted", "was aborted", sm.sm.MetricAborted(nil)},
		} {
			if sm.prefix == "" && m.id == "ExecutionsFailed" {
				continue // every rollback fails a rotation execution: see addUnexpectedFailuresAlarm
			}
			a := m.metric.With(&awscloudwatch.MetricOptions{
				Period:    awscdk.Duration_Minutes(jsii.Number(5)),
				Statistic: jsii.String("Sum"),
			}).CreateAlarm(c, jsii.String(sm.prefix+m.id+"Alarm"), &awscloudwatch.CreateAlarmOptions{
				AlarmDescription:   jsii.String("secretsaga (" + r.RotationGroup + "): a " + sm.what + " execution " + m.what + " in the last 5 minutes; see the AlertTopic e-mail and the state machine's executions"),
				Threshold:          jsii.Number(1),
				EvaluationPeriods:  jsii.Number(1),
				ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
				TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			})
			a.AddAlarmAction(alarm)
			r.Alarms = append(r.Alarms, a)
		}
	}

	r.addAccessAudit()
	r.addScheduleDeadLetters()
	r.addRepairSchedule(props.Repair)
	r.addEphemeralSweepSchedule(props.Ephemeral)
	r.addOperationalAlarms()
	r.addUnexpectedFailuresAlarm()

	// Schedules.
	if len(props.Schedules) > 0 {
		role := awsiam.NewRole(c, jsii.String("SchedulerRole"), &awsiam.RoleProps{
			AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
				Conditions: &map[string]interface{}{
					"StringEquals": map[string]interface{}{"aws:SourceAccount": *stack.Account()},
				},
			}),
			Description: jsii.String("secretsaga schedules: start rotations (" + r.RotationGroup + ")"),
		})
		r.StateMachine.GrantStartExecution(role)
		r.allowDeadLetters(role)
		for _, s := range props.Schedules {
			r.Schedules = append(r.Schedules, r.addSchedule(s, props.VerifyEnabled, role))
		}
	}
	return r
}

// addNativeRotation wires the nativerotation function to the rotation state
// machine, which must exist: its STATE_MACHINE_ARN, states:StartExecution on
// that machine and states:DescribeExecution on its executions only, and a
// resource-based permission that lets Secrets Manager of this account (and
// no other: aws:SourceAccount guards against the confused deputy) invoke
// it. Only the function depends on the machine, never the other way round.
func (r *Rotation) addNativeRotation() {
	stack := awscdk.Stack_Of(r.Construct)
	fn, role := r.Functions["nativerotation"], r.Roles["nativerotation"]
	sm := r.StateMachine
	fn.AddEnvironment(jsii.String(EnvStateMachineArn), sm.StateMachineArn(), nil)
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("StartRotation"),
		Actions:   jsii.Strings("states:StartExecution"),
		Resources: &[]*string{sm.StateMachineArn()},
	}))
	// Execution ARNs: arn:<partition>:states:<region>:<account>:execution:<machine name>:<execution name>.
	executions := stack.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("states"),
		Resource:     jsii.String("execution"),
		ResourceName: jsii.String(*sm.StateMachineName() + ":*"),
		ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("WatchRotation"),
		Actions:   jsii.Strings("states:DescribeExecution"),
		Resources: &[]*string{executions},
	}))
	// cdk-nag renders the machine's name as <logical id.Name>.
	smID := fmt.Sprint(stack.Resolve(stack.GetLogicalId(sm.Node().DefaultChild().(awscdk.CfnElement))))
	suppressWildcard(role, nagNativeExecutionsReason, arnFinding("states", "execution:<"+smID+".Name>:*"))
	fn.AddPermission(jsii.String("SecretsManagerInvoke"), &awslambda.Permission{
		Principal:     awsiam.NewServicePrincipal(jsii.String(SecretsManagerPrincipal), nil),
		Action:        jsii.String("lambda:InvokeFunction"),
		SourceAccount: stack.Account(),
	})
	r.NativeRotationFunction = fn
}

// alertTopicTargetOf makes the alert topic the target of the rules, and
// lets EventBridge publish to it for those rules only: the topic policy's
// statement for events.amazonaws.com carries an aws:SourceArn condition
// naming them (the confused-deputy guard; awseventstargets.SnsTopic would
// grant the service principal publishing for any rule of any account).
func (r *Rotation) alertTopicTargetOf(rules ...awsevents.Rule) {
	var arns []*string
	for _, rule := range rules {
		cfn := rule.Node().DefaultChild().(awsevents.CfnRule)
		cfn.SetTargets(&[]interface{}{&awsevents.CfnRule_TargetProperty{Arn: r.AlarmTopic.TopicArn(), Id: jsii.String("AlertTopic")}})
		arns = append(arns, rule.RuleArn())
	}
	r.AlarmTopic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("EventBridgeAlertRules"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{r.AlarmTopic.TopicArn()},
		Conditions: &map[string]interface{}{"ArnEquals": map[string]interface{}{"aws:SourceArn": arns}},
	}))
}

// allowDistributedMap lets a state machine run its Distributed Map: each
// item is a child execution of the machine itself, which it starts,
// watches and, when the map is stopped, stops. The ARNs are built from the
// machine's fixed name, because naming the machine's own ARN in its role's
// policy would make the template circular.
func (r *Rotation) allowDistributedMap(sm awsstepfunctions.StateMachine, name string) {
	stack := awscdk.Stack_Of(r.Construct)
	arn := func(resource, name string) *string {
		return stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("states"), Resource: jsii.String(resource),
			ResourceName: jsii.String(name), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	}
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapChildren"),
		Actions:   jsii.Strings("states:StartExecution"),
		Resources: &[]*string{arn("stateMachine", name)},
	}))
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapChildExecutions"),
		Actions:   jsii.Strings("states:DescribeExecution", "states:StopExecution"),
		Resources: &[]*string{arn("execution", name+"/*"), arn("execution", name+":*")},
	}))
	suppressWildcard(sm.Role(), nagFleetExecutionsReason,
		arnFinding("states", "execution:"+name+"/*"), arnFinding("states", "execution:"+name+":*"))
}

// newStateMachine is a Standard state machine from an embedded definition
// whose placeholders CloudFormation fills (DefinitionSubstitutions): the
// function ARNs and the ledger table's name. Its role may invoke exactly the
// functions the definition names, and it logs (ALL, without execution data)
// to a log group of its own.
func (r *Rotation) newStateMachine(id, comment string, def []byte) awsstepfunctions.StateMachine {
	subs := map[string]*string{}
	var invoked []awslambda.Function
	for _, p := range statemachines.Placeholders(def) {
		if p == LedgerTablePlaceholder {
			subs[p] = r.Table.TableName()
			continue
		}
		var fn awslambda.Function
		for _, h := range allHandlers() {
			if h.Placeholder == p {
				fn = r.Functions[h.Name]
			}
		}
		if fn == nil {
			panic(fmt.Sprintf("secretsaga: %s: no function for the placeholder ${%s}", id, p))
		}
		subs[p] = fn.FunctionArn()
		invoked = append(invoked, fn)
	}
	logs := awslogs.NewLogGroup(r.Construct, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN, // expire by retention, survive stack deletion
	})
	if id == "StateMachine" {
		r.rotationLogs = logs
	}
	var name *string
	if id == "FleetStateMachine" {
		name = jsii.String(r.fleetName)
	}
	sm := awsstepfunctions.NewStateMachine(r.Construct, jsii.String(id), &awsstepfunctions.StateMachineProps{
		StateMachineName:        name,
		Comment:                 jsii.String(comment),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(string(def))),
		DefinitionSubstitutions: &subs,
		Logs: &awsstepfunctions.LogOptions{
			Destination:          logs,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(false),
		},
		TracingEnabled: jsii.Bool(true),
	})
	// The definition names each function by its unqualified ARN, so the
	// role may invoke exactly those ARNs (GrantInvoke would add every
	// version and alias too, "<arn>:*", which the machine never calls).
	var arns []*string
	for _, fn := range invoked {
		arns = append(arns, fn.FunctionArn())
	}
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("InvokeSteps"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: &arns,
	}))
	star := append(append(slices.Clone(LogDeliveryActions), TracingActions...), stateMachineTracingActions...)
	suppressWildcard(sm.Role(), starReason(star, "Step Functions delivers the execution logs through CloudWatch Logs vended log delivery, whose actions act on the account's deliveries rather than on a log group, and X-Ray tracing is account-wide."), "Resource::*")
	return sm
}

func (r *Rotation) addSchedule(s ScheduleProps, verify bool, role awsiam.Role) awsscheduler.CfnSchedule {
	secret := s.SecretArn
	if secret == "" {
		secret = s.SecretId
	}
	if s.Name == "" || secret == "" || s.Expression == "" {
		panic(fmt.Sprintf("secretsaga: schedule %+v needs a name, a secretArn or secretId, and an expression", s))
	}
	if s.Verify != nil {
		verify = *s.Verify
	}
	in := map[string]any{"SecretId": secret}
	if verify {
		in["Verify"] = true
	}
	input, _ := json.Marshal(in)
	sp := &awsscheduler.CfnScheduleProps{
		Description:        jsii.String("secretsaga: rotate " + s.Name),
		ScheduleExpression: jsii.String(s.Expression),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     r.StateMachine.StateMachineArn(),
			RoleArn: role.RoleArn(),
			Input:   jsii.String(string(input)),
			// A rotation that could not be started after the retries
			// lands here (and raises the DeadLettersAlarm).
			DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: r.ScheduleDeadLetters.QueueArn()},
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(3),
				MaximumEventAgeInSeconds: jsii.Number(3600),
			},
		},
	}
	if s.Timezone != "" {
		sp.ScheduleExpressionTimezone = jsii.String(s.Timezone)
	}
	return awsscheduler.NewCfnSchedule(r.Construct, jsii.String("Schedule-"+s.Name), sp)
}

// addScheduleDeadLetters is the schedules' dead-letter queue: encrypted at
// rest (SQS managed keys: the scheduler's role needs no KMS grant), TLS
// only (its policy denies any request without it), kept 14 days (SQS's
// maximum) for a person to read and replay. EventBridge Scheduler sends to
// it with each schedule's own role, which gets sqs:SendMessage on it.
func (r *Rotation) addScheduleDeadLetters() {
	r.ScheduleDeadLetters = awssqs.NewQueue(r.Construct, jsii.String("ScheduleDeadLetters"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	suppressRule(r.ScheduleDeadLetters, "AwsSolutions-SQS3", "This queue is the dead-letter queue of the EventBridge Scheduler schedules (their Target.DeadLetterConfig); cdk-nag only recognizes a queue as a dead-letter queue when another SQS queue's RedrivePolicy names it, and a dead-letter queue needs none of its own.")
}

// allowDeadLetters lets a schedule's role send to the dead-letter queue:
// sqs:SendMessage only (GrantSendMessages adds GetQueueAttributes and
// GetQueueUrl, which the scheduler does not call).
func (r *Rotation) allowDeadLetters(role awsiam.Role) {
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DeadLetters"),
		Actions:   jsii.Strings("sqs:SendMessage"),
		Resources: &[]*string{r.ScheduleDeadLetters.QueueArn()},
	}))
}

// addRepairSchedule runs the repair function on a schedule, with a role
// that may invoke that function and nothing else.
func (r *Rotation) addRepairSchedule(p RepairProps) {
	expr := p.Schedule
	if expr == "" {
		expr = DefaultRepairSchedule
	}
	r.RepairSchedule = r.invokeOnSchedule(scheduledInvoke{
		id: "RepairSchedule", fn: "repair", expr: expr, maxEventAge: 600,
		role:        "secretsaga repair schedule: runs the repair function (" + r.RotationGroup + ")",
		description: "secretsaga: repair secrets left in COMPENSATION_FAILED whose next attempt is due",
	})
}

// scheduledInvoke is a function the Scheduler invokes with "{}" on a
// schedule (the repair function, the ephemeral logins' sweeper).
type scheduledInvoke struct {
	id, fn, expr      string // the schedule's construct id, the function, its expression
	role, description string // the role's and the schedule's descriptions
	maxEventAge       float64
}

// invokeOnSchedule makes the schedule s describes, with a role of its own
// (RepairSchedule's is RepairSchedulerRole) that may invoke the function
// and send to the dead-letter queue, and nothing else.
func (r *Rotation) invokeOnSchedule(s scheduledInvoke) awsscheduler.CfnSchedule {
	fn := r.Functions[s.fn]
	role := awsiam.NewRole(r.Construct, jsii.String(strings.TrimSuffix(s.id, "Schedule")+"SchedulerRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"aws:SourceAccount": *awscdk.Stack_Of(r.Construct).Account()},
			},
		}),
		Description: jsii.String(s.role),
	})
	// Exactly the unqualified ARN the schedule targets (GrantInvoke would
	// add every version and alias, "<arn>:*").
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: &[]*string{fn.FunctionArn()},
	}))
	r.allowDeadLetters(role)
	return awsscheduler.NewCfnSchedule(r.Construct, jsii.String(s.id), &awsscheduler.CfnScheduleProps{
		Description:        jsii.String(s.description),
		ScheduleExpression: jsii.String(s.expr),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     fn.FunctionArn(),
			RoleArn: role.RoleArn(),
			Input:   jsii.String("{}"),
			// A run that could not be invoked lands in the dead-letter
			// queue (and raises the DeadLettersAlarm).
			DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: r.ScheduleDeadLetters.QueueArn()},
			// The next run comes soon anyway: no retries piling up.
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(0),
				MaximumEventAgeInSeconds: jsii.Number(s.maxEventAge),
			},
		},
	})
}

// kmsActions are the KMS actions a handler needs on a customer managed key.
func kmsActions(h Handler) []string {
	var out []string
	for _, a := range h.Secrets {
		switch a {
		case smGetValue:
			out = append(out, "kms:Decrypt")
		case smPutValue:
			out = append(out, "kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt")
		}
	}
	sort.Strings(out)
	j := 0
	for i, a := range out {
		if i == 0 || a != out[i-1] {
			out[j] = a
			j++
		}
	}
	return out[:j]
}

// FindLambdaAssetDir returns an absolute directory holding
// <name>/bootstrap for every handler: dir if given, else
// $SECRETSAGA_LAMBDA_ASSET_DIR, else build/lambda at the repository root
// (found from this source file, or upwards from the working directory). The
// error says how to build the missing bootstraps.
func FindLambdaAssetDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(EnvLambdaAssetDir)
	}
	if dir == "" {
		dir = findBuildDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, h := range Handlers {
		if _, err := os.Stat(filepath.Join(abs, h.Name, "bootstrap")); err != nil {
			return "", fmt.Errorf("%s/bootstrap not found in %s: run `make build` at the repository root first, or set %s or the lambdaAssetDir context", h.Name, abs, EnvLambdaAssetDir)
		}
	}
	return abs, nil
}

// ResolveLambdaAssetDir is FindLambdaAssetDir that panics on error.
func ResolveLambdaAssetDir(dir string) string {
	abs, err := FindLambdaAssetDir(dir)
	if err != nil {
		panic("secretsaga: " + err.Error())
	}
	return abs
}

func findBuildDir() string {
	const rel = "build/lambda"
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		// file is <repo>/infra/rotation/rotation.go.
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", rel))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, filepath.Join(d, rel))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return rel
}

// RotationStackProps configures NewRotationStack.
type RotationStackProps struct {
	awscdk.StackProps
	Rotation RotationProps
}

// NewRotationStack is a stack holding one Rotation ("Rotation") and outputs
// for its state machines, ledger table, event bus and alert topic.
func NewRotationStack(scope constructs.Construct, id string, props *RotationStackProps) awscdk.Stack {
	if props == nil {
		props = &RotationStackProps{}
	}
	sp := props.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String("secretsaga: credential rotation as a saga (Step Functions, Lambda, DynamoDB ledger)")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sp)
	r := NewRotation(stack, "Rotation", &props.Rotation)
	for _, o := range []struct {
		id, desc string
		value    *string
	}{
		{"StateMachineArn", "the rotation saga; start an execution with {\"SecretId\": \"...\"}", r.StateMachine.StateMachineArn()},
		{"LedgerTableName", "the DynamoDB ledger (leases and audit journal)", r.Table.TableName()},
		{"EventBusName", "the bus the functions publish rotation events to", r.EventBus.EventBusName()},
		{"AlertTopicArn", "SNS topic for alarms and failed rotations", r.AlarmTopic.TopicArn()},
	} {
		awscdk.NewCfnOutput(stack, jsii.String(o.id), &awscdk.CfnOutputProps{Value: o.value, Description: jsii.String(o.desc)})
	}
	if r.FleetStateMachine != nil {
		awscdk.NewCfnOutput(stack, jsii.String("FleetStateMachineArn"), &awscdk.CfnOutputProps{
			Value:       r.FleetStateMachine.StateMachineArn(),
			Description: jsii.String("the fleet rotation; start an execution with {\"TagKey\": \"" + RotationGroupTag + "\", \"TagValue\": \"" + r.RotationGroup + "\", \"MaxConcurrency\": 10}"),
		})
	}
	if r.NativeRotationFunction != nil {
		awscdk.NewCfnOutput(stack, jsii.String("NativeRotationFunctionArn"), &awscdk.CfnOutputProps{
			Value:       r.NativeRotationFunction.FunctionArn(),
			Description: jsii.String("Secrets Manager native rotation entry: aws secretsmanager rotate-secret --secret-id <secret> --rotation-lambda-arn <this> --rotation-rules AutomaticallyAfterDays=30"),
		})
	}
	awscdk.NewCfnOutput(stack, jsii.String("RotationGroup"), &awscdk.CfnOutputProps{
		Value:       jsii.String(r.RotationGroup),
		Description: jsii.String("tag secrets " + RotationGroupTag + "=<this> to let secretsaga rotate them"),
	})
	return stack
}

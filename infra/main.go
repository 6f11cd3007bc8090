// Command secretsaga-infra is the CDK app (see cdk.json at the repository
// root): it synthesizes the stack "SecretSaga" from context values.
//
//	npx --prefix infra cdk synth -c rotationGroup=payments -c alarmEmail=ops@example.com
//
// Context keys (cdk.json "context" or -c key=value; lists as JSON):
//
//	stackName         stack name (default SecretSaga)
//	rotationGroup     value of the secretsaga:rotation-group tag (default "default")
//	alarmEmail        e-mail subscribed to the alert topic
//	secretKmsKeyArns  customer managed KMS keys of the secrets: JSON list or comma-separated
//	schedules         JSON list of {"name","secretArn"|"secretId","expression","timezone","verify"}
//	verify            true: scheduled rotations run the bake (Verify) step
//	bakeAlarmNames    CloudWatch alarms every bake watches (verify's BAKE_ALARM_NAMES): comma-separated or JSON list
//	lambdaAssetDir    directory holding <function>/bootstrap (default build/lambda; relative to the repository root)
//	eventBusName      name of the custom event bus
//	reservedConcurrency  reserved concurrency of the database-facing functions; 0 disables
//	fleetEnabled      false: no fleet rotation (state machine, listsecrets, fleetsummary); default true
//	nativeRotationEnabled  false: no nativerotation function (Secrets Manager native rotation entry); default true
//	repairSchedule    Scheduler expression that runs the repair function (default rate(15 minutes))
//	repairBackoff, repairMaxBackoff, repairAlertAfter  the repair's backoff as Go durations (defaults 1h, 24h, 168h)
//	ledgerRetentionDays  days a journal record is kept (its DynamoDB TTL; default 400, 0 keeps records forever)
//	vpcId             an existing VPC (vpc-...) for the functions that log in to databases; needs vpcSubnetIds
//	vpcSubnetIds      its subnets those functions run in: JSON list or comma-separated (subnet-...)
//	vpcSecurityGroupIds  their security groups (sg-...); empty: the stack makes one that allows all outbound traffic
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/infra/rotation"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "secretsaga-infra:", err)
		os.Exit(1)
	}
}

func run() error {
	defer jsii.Close()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: outdir()})
	props, name, err := propsFromContext(app)
	if err != nil {
		return err
	}
	dir, err := rotation.FindLambdaAssetDir(fromRoot(props.Rotation.LambdaAssetDir))
	if err != nil {
		return err
	}
	props.Rotation.LambdaAssetDir = dir
	rotation.NewRotationStack(app, name, props)
	app.Synth(nil)
	return nil
}

// The CDK CLI runs in the repository root (cdk.json is there) and passes
// paths relative to it (the output directory, and the performance-counters
// and error files aws-cdk-lib writes, which the jsii kernel takes from the
// environment before main runs). cdk.json therefore runs the app from the
// root. Started by hand in infra/ (`go run .`), fromRoot resolves a relative
// path against the root again, so that the cloud assembly lands in
// <root>/cdk.out and -c lambdaAssetDir=build/lambda means <root>/build/lambda.
func fromRoot(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat("cdk.json"); err == nil {
		return p // started in the root: relative to here
	}
	if _, err := os.Stat(filepath.Join("..", "cdk.json")); err != nil {
		return p // not started through cdk.json: relative to here
	}
	if abs, err := filepath.Abs(filepath.Join("..", p)); err == nil {
		return abs
	}
	return p
}

func outdir() *string {
	if dir := os.Getenv("CDK_OUTDIR"); dir != "" {
		return jsii.String(fromRoot(dir))
	}
	return nil
}

// contextString returns a context value as a string ("" if absent); JSON
// values from cdk.json are re-encoded.
func contextString(app awscdk.App, key string) (string, error) {
	v := app.Node().TryGetContext(jsii.String(key))
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("context %s: %w", key, err)
		}
		return string(b), nil
	}
}

func propsFromContext(app awscdk.App) (*rotation.RotationStackProps, string, error) {
	get := func(key string) string {
		s, _ := contextString(app, key)
		return strings.TrimSpace(s)
	}
	name := get("stackName")
	if name == "" {
		name = "SecretSaga"
	}
	p := &rotation.RotationStackProps{}
	if acct, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); acct != "" && region != "" {
		p.Env = &awscdk.Environment{Account: jsii.String(acct), Region: jsii.String(region)}
	}
	r := &p.Rotation
	r.RotationGroup = get("rotationGroup")
	r.AlarmEmail = get("alarmEmail")
	r.LambdaAssetDir = get("lambdaAssetDir")
	r.EventBusName = get("eventBusName")
	r.Repair = rotation.RepairProps{Schedule: get("repairSchedule"), Backoff: get("repairBackoff"),
		MaxBackoff: get("repairMaxBackoff"), AlertAfter: get("repairAlertAfter")}
	for key, v := range map[string]string{"repairBackoff": r.Repair.Backoff, "repairMaxBackoff": r.Repair.MaxBackoff, "repairAlertAfter": r.Repair.AlertAfter} {
		if d, err := time.ParseDuration(v); v != "" && (err != nil || d <= 0) {
			return nil, "", fmt.Errorf("context %s: want a positive Go duration such as 1h or 30m, got %q", key, v)
		}
	}
	if v := get("verify"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, "", fmt.Errorf("context verify: %w", err)
		}
		r.VerifyEnabled = b
	}
	if v := get("fleetEnabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, "", fmt.Errorf("context fleetEnabled: %w", err)
		}
		r.FleetEnabled = jsii.Bool(b)
	}
	if v := get("nativeRotationEnabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, "", fmt.Errorf("context nativeRotationEnabled: %w", err)
		}
		r.NativeRotationEnabled = jsii.Bool(b)
	}
	if v := get("accessAudit"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, "", fmt.Errorf("context accessAudit: %w", err)
		}
		r.AccessAuditEnabled = jsii.Bool(b)
	}
	if v := get("ephemeral"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, "", fmt.Errorf("context ephemeral: %w", err)
		}
		r.Ephemeral.Enabled = b
	}
	r.Ephemeral.SweepSchedule = get("ephemeralSweepSchedule")
	if v := get("reservedConcurrency"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("context reservedConcurrency: want a number ≥ 0, got %q", v)
		}
		r.ReservedConcurrency = n
		r.DisableReservedConcurrency = n == 0
	}
	if v := get("ledgerRetentionDays"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("context ledgerRetentionDays: want a whole number of days ≥ 0, got %q", v)
		}
		r.LedgerRetentionDays = &n
	}
	var err error
	if r.SecretKmsKeyArns, err = list("secretKmsKeyArns", get("secretKmsKeyArns")); err != nil {
		return nil, "", err
	}
	if r.BakeAlarmNames, err = list("bakeAlarmNames", get("bakeAlarmNames")); err != nil {
		return nil, "", err
	}
	r.VpcId = get("vpcId")
	if r.VpcSubnetIds, err = list("vpcSubnetIds", get("vpcSubnetIds")); err != nil {
		return nil, "", err
	}
	if r.VpcSecurityGroupIds, err = list("vpcSecurityGroupIds", get("vpcSecurityGroupIds")); err != nil {
		return nil, "", err
	}
	if err := r.CheckVpcIds(); err != nil {
		return nil, "", fmt.Errorf("context vpcId, vpcSubnetIds, vpcSecurityGroupIds: %w", err)
	}
	if v := get("schedules"); v != "" {
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r.Schedules); err != nil {
			return nil, "", fmt.Errorf("context schedules: want a JSON list of {name, secretArn|secretId, expression}: %w", err)
		}
	}
	return p, name, nil
}

// list reads a context value that is a JSON list or comma-separated.
func list(key, v string) ([]string, error) {
	var out []string
	if strings.HasPrefix(v, "[") {
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("context %s: %w", key, err)
		}
		return out, nil
	}
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out, nil
}

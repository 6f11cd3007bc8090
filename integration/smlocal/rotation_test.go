package smlocal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/integration/lambdalocal"
)

const (
	fnARN      = "arn:aws:lambda:us-east-1:000000000000:function:rotator"
	missingARN = "arn:aws:lambda:us-east-1:000000000000:function:nobody"
	tokR       = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
	tokS       = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
)

// awsSteps is the order AWS invokes a rotation function in, written out
// rather than taken from the code under test.
var awsSteps = []string{"createSecret", "setSecret", "testSecret", "finishSecret"}

// code is the error code of an API error ("" for nil).
func code(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

// rotationEvent is what Secrets Manager sends a rotation function.
type rotationEvent struct {
	Step, SecretId, ClientRequestToken, RotationToken string
}

// templateFunction is a rotation function written as AWS's
// SecretsManagerRotationTemplate (lambda_function.py) is, against this
// emulator, so the tests see RotateSecret drive a real four-step function.
// failAt names a step that fails before doing anything.
type templateFunction struct {
	c      *secretsmanager.Client
	failAt string

	mu     sync.Mutex
	events []rotationEvent
	// block, if set, makes setSecret wait until it is closed.
	entered, block chan struct{}
}

func (f *templateFunction) seen() []rotationEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *templateFunction) handle(ctx context.Context, ev rotationEvent) error {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	if ev.Step == f.failAt {
		return fmt.Errorf("injected failure at %s", ev.Step)
	}
	if ev.Step == "setSecret" && f.block != nil {
		close(f.entered)
		<-f.block
	}
	arn, token := aws.String(ev.SecretId), aws.String(ev.ClientRequestToken)
	d, err := f.c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: arn})
	if err != nil {
		return err
	}
	if !aws.ToBool(d.RotationEnabled) {
		return fmt.Errorf("secret %s is not enabled for rotation", ev.SecretId)
	}
	stages, ok := d.VersionIdsToStages[ev.ClientRequestToken]
	if !ok {
		return fmt.Errorf("secret version %s has no stage for rotation", ev.ClientRequestToken)
	}
	if slices.Contains(stages, "AWSCURRENT") {
		return nil // already current: a retried rotation
	}
	if !slices.Contains(stages, "AWSPENDING") {
		return fmt.Errorf("secret version %s not set as AWSPENDING for rotation", ev.ClientRequestToken)
	}
	switch ev.Step {
	case "createSecret":
		if _, err := f.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: arn, VersionStage: aws.String("AWSCURRENT")}); err != nil {
			return err
		}
		_, err := f.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: arn, VersionId: token, VersionStage: aws.String("AWSPENDING")})
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			_, err = f.c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: arn, ClientRequestToken: token,
				SecretString: aws.String("rotated-" + ev.ClientRequestToken[:8]), VersionStages: []string{"AWSPENDING"}})
		}
		return err
	case "setSecret", "testSecret":
		return nil // the template's placeholders: no service to set or test here
	case "finishSecret":
		var current string
		for id, st := range d.VersionIdsToStages {
			if slices.Contains(st, "AWSCURRENT") {
				current = id
			}
		}
		_, err := f.c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: arn,
			VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: token, RemoveFromVersionId: aws.String(current)})
		return err
	}
	return fmt.Errorf("invalid step %q", ev.Step)
}

// rotationStack is an emulator whose RotateSecret invokes fn through a
// local Lambda Invoke endpoint.
func rotationStack(t *testing.T, fn *templateFunction, o Options) (*Server, *secretsmanager.Client) {
	t.Helper()
	lam := lambdalocal.New()
	lambdaURL, err := lam.Start()
	if err != nil {
		t.Fatal(err)
	}
	o.LambdaEndpoint = lambdaURL
	s, c := start(t, o)
	// Cleanups run last-registered first: the emulator (and its
	// rotations) ends before the function's endpoint does.
	t.Cleanup(func() { _ = lam.Close() })
	t.Cleanup(func() { _ = s.Close() })
	fn.c = c
	lam.Register("rotator", fn.handle, 30*time.Second)
	return s, c
}

func createSecret(t *testing.T, c *secretsmanager.Client, name string) string {
	t.Helper()
	out, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v1"), ClientRequestToken: aws.String(tokA)})
	if err != nil {
		t.Fatal(err)
	}
	return *out.ARN
}

func describe(t *testing.T, c *secretsmanager.Client, id string) *secretsmanager.DescribeSecretOutput {
	t.Helper()
	d, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range d.VersionIdsToStages {
		slices.Sort(st)
	}
	return d
}

func TestRotateSecretRuns(t *testing.T) {
	t.Parallel()
	clock := time.Date(2030, 3, 4, 10, 30, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	ctx := context.Background()
	for _, tc := range []struct {
		name, cite string
		failAt     string
		in         secretsmanager.RotateSecretInput
		wantSteps  []string
		wantErr    bool
		// stages of tokA (the first version) and tokR (the rotation's) after the run
		wantA, wantR []string
		wantRotated  bool
		wantValueR   bool // tokR holds a value
	}{
		{
			name: "full rotation", cite: `"Secrets Manager invokes the rotation function four times: createSecret, setSecret, testSecret, finishSecret" (steps in order); "the function marks the new secret version with the staging label AWSCURRENT"`,
			in:        secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)}},
			wantSteps: awsSteps, wantA: []string{"AWSPREVIOUS"}, wantR: []string{"AWSCURRENT", "AWSPENDING"}, wantRotated: true, wantValueR: true,
		},
		{
			name: "createSecret fails", cite: `"When rotation is unsuccessful, the AWSPENDING staging label might be attached to an empty secret version"; Secrets Manager stops at the failing step`,
			failAt: "createSecret", in: secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN)},
			wantSteps: awsSteps[:1], wantErr: true, wantA: []string{"AWSCURRENT"}, wantR: []string{"AWSPENDING"},
		},
		{
			name: "testSecret fails", cite: `a failed step ends the rotation: finishSecret is not invoked and AWSCURRENT stays`,
			failAt: "testSecret", in: secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN)},
			wantSteps: awsSteps[:3], wantErr: true, wantA: []string{"AWSCURRENT"}, wantR: []string{"AWSPENDING"}, wantValueR: true,
		},
		{
			name: "RotateImmediately false", cite: `"If you set RotateImmediately to false, Secrets Manager tests the rotation configuration by running the testSecret step of the Lambda rotation function. This test creates an AWSPENDING version of the secret and then removes it."`,
			in:        secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false), RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(10 days)")}},
			wantSteps: []string{"testSecret"}, wantA: []string{"AWSCURRENT"}, wantR: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fn := &templateFunction{failAt: tc.failAt}
			s, c := rotationStack(t, fn, Options{Now: now})
			arn := createSecret(t, c, "rot")
			in := tc.in
			in.SecretId, in.ClientRequestToken = aws.String("rot"), aws.String(tokR)
			out, err := c.RotateSecret(ctx, &in)
			if err != nil {
				t.Fatal(err)
			}
			if *out.ARN != arn || *out.Name != "rot" || *out.VersionId != tokR {
				t.Fatalf("RotateSecret = %+v", out)
			}
			runs := s.WaitRotations()
			if len(runs) != 1 || !slices.Equal(runs[0].Steps, tc.wantSteps) || (runs[0].Err != nil) != tc.wantErr {
				t.Fatalf("runs = %+v (%s)", runs, tc.cite)
			}
			var fe *FunctionError
			if tc.wantErr && (!errors.As(runs[0].Err, &fe) || fe.Type != "errorString" || !strings.Contains(fe.Message, tc.failAt)) {
				t.Fatalf("run error = %v", runs[0].Err)
			}
			// The events carry what AWS's events carry, the secret by ARN.
			for i, ev := range fn.seen() {
				if ev.Step != tc.wantSteps[i] || ev.SecretId != arn || ev.ClientRequestToken != tokR || len(ev.RotationToken) < 36 {
					t.Fatalf("event %d = %+v", i, ev)
				}
			}
			d := describe(t, c, "rot")
			if !slices.Equal(d.VersionIdsToStages[tokA], tc.wantA) || !slices.Equal(d.VersionIdsToStages[tokR], tc.wantR) {
				t.Fatalf("stages = %v (%s)", d.VersionIdsToStages, tc.cite)
			}
			if !aws.ToBool(d.RotationEnabled) || aws.ToString(d.RotationLambdaARN) != fnARN {
				t.Fatalf("rotation config = %v %v", d.RotationEnabled, d.RotationLambdaARN)
			}
			if rotated := d.LastRotatedDate != nil; rotated != tc.wantRotated || (rotated && !d.LastRotatedDate.Equal(clock)) {
				t.Fatalf("LastRotatedDate = %v", d.LastRotatedDate)
			}
			_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("rot"), VersionId: aws.String(tokR)})
			if (err == nil) != tc.wantValueR {
				t.Fatalf("GetSecretValue(tokR) = %v", err)
			}
		})
	}
}

// What a rotation left behind decides whether the next one may start.
func TestRotateSecretAfterFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fn := &templateFunction{failAt: "createSecret"}
	s, c := rotationStack(t, fn, Options{})
	createSecret(t, c, "rot")
	rotate := func(tok string) error {
		_, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("rot"), ClientRequestToken: aws.String(tok), RotationLambdaARN: aws.String(fnARN)})
		return err
	}
	if err := rotate(tokR); err != nil {
		t.Fatal(err)
	}
	s.WaitRotations()

	// The empty version is visible to DescribeSecret and ListSecretVersionIds
	// (recorded: VersionIdsToStages {token: [AWSPENDING]} during rotation),
	// but has no value to read.
	if got := describe(t, c, "rot").VersionIdsToStages[tokR]; !slices.Equal(got, []string{"AWSPENDING"}) {
		t.Fatalf("describe stages of the empty version = %v", got)
	}
	l, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("rot")})
	if err != nil || len(l.Versions) != 2 {
		t.Fatalf("ListSecretVersionIds = %+v, %v", l, err)
	}
	for _, tc := range []struct {
		name, cite string
		in         secretsmanager.GetSecretValueInput
		wantCode   string
		wantMsg    string
	}{
		{"by stage", `recorded: "Secrets Manager can't find the specified secret value for staging label: AWSPENDING" while the AWSPENDING version is empty`,
			secretsmanager.GetSecretValueInput{VersionStage: aws.String("AWSPENDING")}, "ResourceNotFoundException", "for staging label: AWSPENDING"},
		{"by id and stage", `AWS's template catches ResourceNotFoundException from get_secret_value(VersionId=token, VersionStage="AWSPENDING") in createSecret and then puts the value`,
			secretsmanager.GetSecretValueInput{VersionId: aws.String(tokR), VersionStage: aws.String("AWSPENDING")}, "ResourceNotFoundException", "for VersionId: " + tokR},
		{"by id", `as above, by VersionId alone`,
			secretsmanager.GetSecretValueInput{VersionId: aws.String(tokR)}, "ResourceNotFoundException", "for VersionId: " + tokR},
	} {
		in := tc.in
		in.SecretId = aws.String("rot")
		_, err := c.GetSecretValue(ctx, &in)
		if code(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: %v (%s)", tc.name, err, tc.cite)
		}
	}

	// "If the AWSPENDING staging label is present but not attached to the
	// same version as AWSCURRENT, then any later invocation of RotateSecret
	// assumes that a previous rotation request is still in progress and
	// returns an error."
	before := describe(t, c, "rot")
	err = rotate(tokS)
	if code(err) != "InvalidRequestException" || !strings.Contains(err.Error(), "A previous rotation isn't complete. That rotation will be reattempted.") {
		t.Fatalf("second RotateSecret = %v", err)
	}
	if after := describe(t, c, "rot"); fmt.Sprint(after.VersionIdsToStages) != fmt.Sprint(before.VersionIdsToStages) {
		t.Fatalf("refused RotateSecret changed stages: %v -> %v", before.VersionIdsToStages, after.VersionIdsToStages)
	}

	// CancelRotateSecret turns rotation off and names the partial version,
	// leaving its labels: "You might need to remove the staging label
	// AWSPENDING from the partially created version."
	cr, err := c.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("rot")})
	if err != nil || aws.ToString(cr.VersionId) != tokR {
		t.Fatalf("CancelRotateSecret = %+v, %v", cr, err)
	}
	d := describe(t, c, "rot")
	if d.RotationEnabled == nil || *d.RotationEnabled || d.NextRotationDate != nil || !slices.Equal(d.VersionIdsToStages[tokR], []string{"AWSPENDING"}) {
		t.Fatalf("after cancel: enabled=%v next=%v stages=%v", d.RotationEnabled, d.NextRotationDate, d.VersionIdsToStages)
	}
	if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("rot"), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(tokR)}); err != nil {
		t.Fatal(err)
	}
	// "To turn on automatic rotation again, call RotateSecret": the stored
	// function is used, and this time it succeeds.
	fn.mu.Lock()
	fn.failAt = ""
	fn.mu.Unlock()
	if _, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("rot"), ClientRequestToken: aws.String(tokS)}); err != nil {
		t.Fatal(err)
	}
	if runs := s.WaitRotations(); len(runs) != 2 || runs[1].Err != nil {
		t.Fatalf("runs = %+v", runs)
	}
	d = describe(t, c, "rot")
	if !aws.ToBool(d.RotationEnabled) || !slices.Equal(d.VersionIdsToStages[tokS], []string{"AWSCURRENT", "AWSPENDING"}) {
		t.Fatalf("after re-enable: %v %v", d.RotationEnabled, d.VersionIdsToStages)
	}
	// A retried RotateSecret (same token) answers as the first did and
	// starts nothing: "ensure that Secrets Manager doesn't attempt to
	// create a secret version twice".
	out, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("rot"), ClientRequestToken: aws.String(tokS)})
	if err != nil || *out.VersionId != tokS {
		t.Fatalf("retry = %+v, %v", out, err)
	}
	if runs := s.WaitRotations(); len(runs) != 2 {
		t.Fatalf("a retry started a rotation: %+v", runs)
	}
	// AWS's templates leave AWSPENDING on the AWSCURRENT version; that
	// does not block the next rotation ("attached to the same version as
	// the AWSCURRENT version").
	if err := rotate(tokB); err != nil {
		t.Fatal(err)
	}
	if runs := s.WaitRotations(); len(runs) != 3 || runs[2].Err != nil {
		t.Fatalf("runs = %+v", runs)
	}
}

// CancelRotateSecret during a run: "if a rotation is currently in progress,
// cancels the rotation" — no later step is invoked.
func TestCancelRotateSecretInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fn := &templateFunction{entered: make(chan struct{}), block: make(chan struct{})}
	s, c := rotationStack(t, fn, Options{})
	createSecret(t, c, "rot")
	if _, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("rot"), ClientRequestToken: aws.String(tokR), RotationLambdaARN: aws.String(fnARN)}); err != nil {
		t.Fatal(err)
	}
	<-fn.entered
	if _, err := c.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("rot")}); err != nil {
		t.Fatal(err)
	}
	runs := s.WaitRotations()
	close(fn.block)
	if len(runs) != 1 || !slices.Equal(runs[0].Steps, awsSteps[:2]) || !errors.Is(runs[0].Err, context.Canceled) {
		t.Fatalf("runs = %+v", runs)
	}
	if d := describe(t, c, "rot"); !slices.Equal(d.VersionIdsToStages[tokR], []string{"AWSPENDING"}) || aws.ToBool(d.RotationEnabled) || d.LastRotatedDate != nil {
		t.Fatalf("after cancel: %+v", d)
	}
}

// Bad input to RotateSecret and CancelRotateSecret gets AWS's error and
// changes nothing.
func TestRotateSecretRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fn := &templateFunction{}
	s, c := rotationStack(t, fn, Options{})
	createSecret(t, c, "plain")
	createSecret(t, c, "gone")
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}
	// "pending" has a rotation in progress: AWSPENDING on another version.
	createSecret(t, c, "pending")
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("pending"), SecretString: aws.String("p"), ClientRequestToken: aws.String(tokB), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatal(err)
	}
	rules := func(r types.RotationRulesType) *types.RotationRulesType { return &r }
	for _, tc := range []struct {
		name, cite, id string
		in             secretsmanager.RotateSecretInput
		wantCode       string
		wantMsg        string
	}{
		{"unknown secret", `RotateSecret errors: ResourceNotFoundException "Secrets Manager can't find the resource that you asked for."`, "ghost",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN)}, "ResourceNotFoundException", "can't find the specified secret"},
		{"deleted secret", `InvalidRequestException: "The secret is scheduled for deletion."`, "gone",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN)}, "InvalidRequestException", "marked for deletion"},
		{"invalid name", `recorded: ValidationException for an invalid name on every operation`, "bad name",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN)}, "ValidationException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"},
		{"no function", `recorded: "No Lambda rotation function ARN is associated with this secret."`, "plain",
			secretsmanager.RotateSecretInput{}, "InvalidRequestException", "No Lambda rotation function ARN is associated with this secret."},
		{"function that cannot be invoked", `"When you add a Lambda rotation function ARN to your secret, Secrets Manager checks the permissions of the function" (I get "access denied")`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(missingARN)}, "AccessDeniedException", "Secrets Manager cannot invoke the specified Lambda function"},
		{"rotation in progress", `"If the AWSPENDING staging label is present but not attached to the same version as AWSCURRENT ... returns an error"`, "pending",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN)}, "InvalidRequestException", "A previous rotation isn't complete."},
		{"days below 1", `AutomaticallyAfterDays "Valid Range: Minimum value of 1"`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(0)})}, "ValidationException", "greater than or equal to 1"},
		{"days above 1000", `AutomaticallyAfterDays "Maximum value of 1000"`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(1001)})}, "ValidationException", "less than or equal to 1000"},
		{"days and schedule", `"with AutomaticallyAfterDays or ScheduleExpression, but not both"; recorded message`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(7), ScheduleExpression: aws.String("rate(7 days)")})}, "InvalidParameterException", "You cannot specify both rotation frequency and schedule expression together."},
		{"schedule pattern", `ScheduleExpression "Pattern: [0-9A-Za-z\(\)#\?\*\-\/, ]+"`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("rate(1 day);")})}, "ValidationException", "regular expression pattern"},
		{"rate under four hours", `"You can rotate a secret as often as every four hours."`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("rate(3 hours)")})}, "InvalidParameterException", "four hours"},
		{"not rate or cron", `"A cron() or rate() expression that defines the schedule"`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("every day")})}, "InvalidParameterException", "rate() or cron()"},
		{"cron with five fields", `cron expressions have six fields (Schedule expressions in Secrets Manager rotation)`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("cron(0 10 * 2 ?)")})}, "InvalidParameterException", "6 fields"},
		{"duration pattern", `Duration "Length Constraints: Minimum length of 2. Maximum length of 3. Pattern: [0-9h]+"`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("rate(1 day)"), Duration: aws.String("3 h")})}, "ValidationException", "duration"},
		{"duration past the next window", `"The rotation window must not extend into the next UTC day or into the next rotation window."`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("rate(4 hours)"), Duration: aws.String("5h")})}, "InvalidParameterException", "next rotation window"},
		{"duration past midnight", `as above, into the next UTC day`, "plain",
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: rules(types.RotationRulesType{ScheduleExpression: aws.String("cron(0 22 * * ? *)"), Duration: aws.String("3h")})}, "InvalidParameterException", "next UTC day"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeErr := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(tc.id)})
			in := tc.in
			in.SecretId = aws.String(tc.id)
			_, err := c.RotateSecret(ctx, &in)
			if code(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want %s %q (%s)", err, tc.wantCode, tc.wantMsg, tc.cite)
			}
			after, afterErr := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(tc.id)})
			if code(beforeErr) != code(afterErr) {
				t.Fatalf("describe before %v, after %v", beforeErr, afterErr)
			}
			if beforeErr == nil && (fmt.Sprint(before.VersionIdsToStages) != fmt.Sprint(after.VersionIdsToStages) ||
				before.RotationEnabled != nil || after.RotationEnabled != nil || after.RotationLambdaARN != nil || after.RotationRules != nil) {
				t.Fatalf("refused RotateSecret changed the secret: %+v -> %+v", before, after)
			}
		})
	}
	if runs := s.WaitRotations(); len(runs) != 0 || len(fn.seen()) != 0 {
		t.Fatalf("a refused RotateSecret ran the function: %+v", runs)
	}
	for _, tc := range []struct{ id, wantCode string }{
		{"ghost", "ResourceNotFoundException"}, {"gone", "InvalidRequestException"}, {"bad name", "ValidationException"},
	} {
		if _, err := c.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String(tc.id)}); code(err) != tc.wantCode {
			t.Errorf("CancelRotateSecret(%s) = %v, want %s", tc.id, err, tc.wantCode)
		}
	}
}

// The schedule DescribeSecret reports after RotateSecret: RotationRules as
// given, and NextRotationDate, "The next rotation is scheduled to occur on
// or before this date".
func TestRotationSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 3, 4, 10, 30, 0, 0, time.UTC) // a Monday
	for _, tc := range []struct {
		name, cite string
		rules      types.RotationRulesType
		wantDays   *int64
		wantNext   time.Time // zero: absent
	}{
		{"days", `"Secrets Manager schedules the date by adding the rotation interval (number of days) to the actual date of the last rotation"; a day window closes at the end of the UTC day`,
			types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)}, aws.Int64(30), time.Date(2030, 4, 3, 23, 59, 59, 0, time.UTC)},
		{"rate in days", `"If you use a rate() expression, the rotation window starts at midnight"; AutomaticallyAfterDays "is calculated from the rotation schedule"`,
			types.RotationRulesType{ScheduleExpression: aws.String("rate(10 days)")}, aws.Int64(10), time.Date(2030, 3, 14, 23, 59, 59, 0, time.UTC)},
		{"rate in days with duration", `"You can set the Duration to change the rotation window"`,
			types.RotationRulesType{ScheduleExpression: aws.String("rate(10 days)"), Duration: aws.String("3h")}, aws.Int64(10), time.Date(2030, 3, 14, 2, 59, 59, 0, time.UTC)},
		{"rate in hours", `"For a rate in hours, the default rotation window closes after one hour."`,
			types.RotationRulesType{ScheduleExpression: aws.String("rate(4 hours)")}, nil, time.Date(2030, 3, 4, 12, 59, 59, 0, time.UTC)},
		{"cron in days", `"For a cron expression that represents a schedule in days, the default rotation window closes at the end of the day."`,
			types.RotationRulesType{ScheduleExpression: aws.String("cron(0 16 ? * SAT *)")}, nil, time.Date(2030, 3, 9, 23, 59, 59, 0, time.UTC)},
		{"cron in hours", `"For a cron expression that represents a schedule in hours, the default rotation window closes after one hour."`,
			types.RotationRulesType{ScheduleExpression: aws.String("cron(0 8-20/6 1,15 * ? *)")}, nil, time.Date(2030, 3, 15, 8, 59, 59, 0, time.UTC)},
		{"cron with #", `cron(0 8 ? * SAT#2 *) is a valid schedule; the emulator does not compute its date`,
			types.RotationRulesType{ScheduleExpression: aws.String("cron(0 8 ? * SAT#2 *)")}, nil, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fn := &templateFunction{}
			s, c := rotationStack(t, fn, Options{Now: func() time.Time { return clock }})
			createSecret(t, c, "sched")
			rules := tc.rules
			if _, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("sched"), ClientRequestToken: aws.String(tokR),
				RotationLambdaARN: aws.String(fnARN), RotationRules: &rules, RotateImmediately: aws.Bool(false)}); err != nil {
				t.Fatal(err)
			}
			s.WaitRotations()
			d := describe(t, c, "sched")
			r := d.RotationRules
			if r == nil || aws.ToString(r.ScheduleExpression) != aws.ToString(tc.rules.ScheduleExpression) || aws.ToString(r.Duration) != aws.ToString(tc.rules.Duration) ||
				fmt.Sprint(aws.ToInt64(r.AutomaticallyAfterDays)) != fmt.Sprint(aws.ToInt64(tc.wantDays)) {
				t.Fatalf("RotationRules = %+v (%s)", r, tc.cite)
			}
			if got := aws.ToTime(d.NextRotationDate); !got.Equal(tc.wantNext) {
				t.Fatalf("NextRotationDate = %v, want %v (%s)", got, tc.wantNext, tc.cite)
			}
		})
	}
}

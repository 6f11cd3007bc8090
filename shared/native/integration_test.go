//go:build integration

package native_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/config"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/native"
)

// TestNativeRotation calls Handle as Secrets Manager's RotateSecret would,
// the four steps in order with one token, against the local Step Functions
// API and stack: the saga really rotates the PostgreSQL password.
func TestNativeRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, api := local.StartWithSFNAPI(t, ctx)
	svc := config.NewNative(config.Options{AWS: env.AWS}, api.URL, api.StateMachineArn)
	svc.PollInterval = 20 * time.Millisecond

	id := uuid.NewString()[:8]
	arn, err := env.PostgresSecret(ctx, "native/"+id, "native_"+id)
	if err != nil {
		t.Fatal(err)
	}
	orig := current(t, env, arn)
	token := uuid.NewString()
	for _, step := range []string{native.StepCreate, native.StepSet, native.StepTest, native.StepFinish} {
		// Each step gets a Lambda-like deadline.
		sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
		err := svc.Handle(sctx, native.Event{Step: step, SecretId: arn, ClientRequestToken: token})
		scancel()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// A retried createSecret joins the ended execution instead of starting
	// another rotation.
	if err := svc.Handle(ctx, native.Event{Step: native.StepCreate, SecretId: arn, ClientRequestToken: token}); err != nil {
		t.Errorf("createSecret again: %v", err)
	}
	if got := current(t, env, arn); got != token {
		t.Fatalf("AWSCURRENT is %s, want the token %s (was %s)", got, token, orig)
	}
	if err := env.CanLogin(ctx, arn, "", "AWSCURRENT"); err != nil {
		t.Fatalf("the new AWSCURRENT does not log in: %v", err)
	}
	if err := env.CanLogin(ctx, arn, orig, ""); err == nil {
		t.Error("the old password still logs in")
	}
	if bad := env.CheckInvariants(ctx, arn); len(bad) > 0 {
		t.Errorf("invariants: %v", bad)
	}

	// A second rotation through the native entry.
	x := native.Event{Step: native.StepCreate, SecretId: arn, ClientRequestToken: uuid.NewString()}
	if err := svc.Handle(ctx, x); err != nil {
		t.Fatalf("createSecret: %v", err)
	}
	x.Step = native.StepFinish
	if err := svc.Handle(ctx, x); err != nil {
		t.Fatalf("finishSecret of a second rotation: %v", err)
	}
	if got := current(t, env, arn); got != x.ClientRequestToken {
		t.Fatalf("AWSCURRENT is %s after the second rotation", got)
	}
	// An AWSPENDING left by someone else: the saga refuses with a
	// ConflictError, and finishSecret reports it so that Secrets Manager
	// marks the rotation failed.
	leftover := uuid.NewString()
	if _, err := env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: &arn, ClientRequestToken: &leftover, VersionStages: []string{"AWSPENDING"},
		SecretString: aws.String(`{"engine":"postgres","host":"x","port":5432,"username":"u","password":"leftover-pw-8Jq2","dbname":"d"}`),
	}); err != nil {
		t.Fatal(err)
	}
	y := native.Event{Step: native.StepCreate, SecretId: arn, ClientRequestToken: uuid.NewString()}
	if err := svc.Handle(ctx, y); err != nil {
		t.Fatalf("createSecret: %v", err)
	}
	y.Step = native.StepFinish
	err = svc.Handle(ctx, y)
	if faults.Name(err) != faults.NameConflict {
		t.Fatalf("finishSecret of a refused rotation: %v, want ConflictError", err)
	}
	if strings.Contains(err.Error(), "leftover-pw-8Jq2") {
		t.Errorf("the error carries a password: %v", err)
	}
	if got := current(t, env, arn); got != x.ClientRequestToken {
		t.Fatalf("AWSCURRENT moved to %s after a refused rotation", got)
	}
}

func current(t *testing.T, env *local.Env, arn string) string {
	t.Helper()
	st, err := env.Stages(context.Background(), arn)
	if err != nil {
		t.Fatal(err)
	}
	for v, stages := range st {
		if slices.Contains(stages, "AWSCURRENT") {
			return v
		}
	}
	t.Fatal("no AWSCURRENT")
	return ""
}

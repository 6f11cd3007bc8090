//go:build integration

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// TestRollbackAndFleet runs `rollback` and `rotate --tag` against the local
// stack: the rotation and fleet state machines behind the local Step
// Functions API, the real SDK clients made by cli.NewDepsFromConfig.
func TestRollbackAndFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, api := local.StartWithSFNAPI(t, ctx)
	if api.FleetStateMachineArn == "" || api.FleetStateMachineArn == api.StateMachineArn {
		t.Fatalf("fleet state machine %q", api.FleetStateMachineArn)
	}
	deps := cli.NewDepsFromConfig(env.AWS, cli.Endpoints{SecretsManager: env.SMURL, DynamoDB: env.DynamoDB.Endpoint, SFN: api.URL})
	deps.Getenv = func(k string) string {
		return map[string]string{
			cli.EnvStateMachineArn: api.StateMachineArn, cli.EnvFleetStateMachineArn: api.FleetStateMachineArn, cli.EnvLedgerTable: local.Table,
		}[k]
	}
	deps.Sleep = func(ctx context.Context, d time.Duration) error {
		select {
		case <-time.After(20 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var outputs []string
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, args, &stdout, &stderr, deps)
		outputs = append(outputs, stdout.String(), stderr.String())
		t.Logf("secretctl %s → %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		if code != want {
			t.Fatalf("secretctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	var passwords []string
	current := func(arn string) string {
		t.Helper()
		out, err := env.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
		if err != nil {
			t.Fatal(err)
		}
		v, err := secret.Parse(aws.ToString(out.SecretString))
		if err != nil {
			t.Fatal(err)
		}
		passwords = append(passwords, v.Password.Reveal())
		return aws.ToString(out.VersionId)
	}
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")

	t.Run("rollback", func(t *testing.T) {
		name := "ctl/" + id + "/rollback"
		arn, err := env.PostgresSecret(ctx, name, "rb_"+id)
		if err != nil {
			t.Fatal(err)
		}
		orig := current(arn)

		// Never rotated: refused, nothing started.
		_, stderr := run(1, "rollback", name, "--wait", "--poll-interval", "50ms")
		if !strings.Contains(stderr, "no AWSPREVIOUS version") {
			t.Errorf("rollback of a never-rotated secret: %s", stderr)
		}

		run(0, "rotate", name, "--wait", "--poll-interval", "50ms")
		rotated := current(arn)
		if rotated == orig {
			t.Fatal("the rotation did not move AWSCURRENT")
		}

		stdout, _ := run(0, "rollback", name, "--wait", "--poll-interval", "50ms")
		if !strings.Contains(stdout, "started rollback of "+name) || !strings.Contains(stdout, "version:   "+orig) || !strings.Contains(stdout, "SUCCEEDED") {
			t.Errorf("rollback output:\n%s", stdout)
		}
		if got := current(arn); got != orig {
			t.Fatalf("AWSCURRENT is %s after the rollback, want the original %s", got, orig)
		}
		if err := env.CanLogin(ctx, arn, "", "AWSCURRENT"); err != nil {
			t.Fatalf("the rolled-back-to AWSCURRENT does not log in: %v", err)
		}
		if err := env.CanLogin(ctx, arn, rotated, ""); err == nil {
			t.Error("the rotated password still logs in after the rollback")
		}
		stages, err := env.Stages(ctx, arn)
		if err != nil {
			t.Fatal(err)
		}
		for v, st := range stages {
			for _, s := range st {
				if s == "AWSPENDING" {
					t.Errorf("AWSPENDING left on %s", v)
				}
			}
		}
		stdout, _ = run(0, "status", name)
		if !strings.Contains(stdout, "Health:  OK") {
			t.Errorf("status after the rollback:\n%s", stdout)
		}
	})

	t.Run("fleet", func(t *testing.T) {
		group := "ctl-" + id
		var arns, roles, orig []string
		for i := range 3 {
			role := "fl" + string(rune('a'+i)) + "_" + id
			arn, err := env.PostgresSecret(ctx, "ctl/"+id+"/fleet-"+role, role)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.SMClient.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: &arn,
				Tags: []smtypes.Tag{{Key: aws.String("secretsaga:rotation-group"), Value: aws.String(group)}}}); err != nil {
				t.Fatal(err)
			}
			arns, roles, orig = append(arns, arn), append(roles, role), append(orig, current(arn))
		}
		// An untagged secret is not selected.
		other, err := env.PostgresSecret(ctx, "ctl/"+id+"/fleet-untagged", "flx_"+id)
		if err != nil {
			t.Fatal(err)
		}
		otherOrig := current(other)

		stdout, _ := run(0, "rotate", "--tag", "secretsaga:rotation-group="+group, "--max-concurrency", "2", "--wait", "--poll-interval", "50ms")
		for _, s := range []string{"3/3 secrets ended", "3 secrets: 3 succeeded, 0 rolled back, 0 abandoned, 0 compensation failed", "SUCCEEDED"} {
			if !strings.Contains(stdout, s) {
				t.Errorf("fleet output lacks %q", s)
			}
		}
		for i, arn := range arns {
			if current(arn) == orig[i] {
				t.Errorf("%s did not rotate", arn)
			}
			if err := env.CanLogin(ctx, arn, "", "AWSCURRENT"); err != nil {
				t.Errorf("%s: AWSCURRENT does not log in: %v", arn, err)
			}
		}
		if current(other) != otherOrig {
			t.Error("the untagged secret rotated")
		}

		// One secret's AWSCURRENT no longer logs in: it rolls back, the
		// others rotate, and the exit status is 1.
		if err := env.SetRolePassword(ctx, roles[1], "changed-behind-our-back-"+uuid.NewString()); err != nil {
			t.Fatal(err)
		}
		before := []string{current(arns[0]), current(arns[1]), current(arns[2])}
		stdout, stderr := run(1, "rotate", "--tag", "secretsaga:rotation-group="+group, "--wait", "--poll-interval", "50ms")
		if !strings.Contains(stdout, "3 secrets: 2 succeeded, 1 rolled back") || !strings.Contains(stdout, arns[1]) || !strings.Contains(stderr, "1 of 3 secrets did not rotate") {
			t.Errorf("fleet with a broken secret:\n%s\n%s", stdout, stderr)
		}
		if current(arns[1]) != before[1] {
			t.Error("the broken secret's AWSCURRENT moved")
		}
		if current(arns[0]) == before[0] || current(arns[2]) == before[2] {
			t.Error("a healthy secret did not rotate")
		}
	})

	for _, o := range outputs {
		for _, pw := range passwords {
			if strings.Contains(o, pw) {
				t.Errorf("a password appears in secretctl's output:\n%s", o)
			}
		}
	}
}

//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/secret"
)

type result struct {
	code           int
	stdout, stderr string
	get            bool
}

// TestEndToEnd runs secretctl against the local stack: the real SDK
// clients, DynamoDB Local, the Secrets Manager emulator, PostgreSQL, and the
// rotation state machine behind a local Step Functions API.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, api := local.StartWithSFNAPI(t, ctx)

	deps := cli.Deps{
		SM:  secretsmanager.NewFromConfig(env.AWS, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(env.SMURL) }),
		DB:  dynamodb.NewFromConfig(env.AWS, standin.LocalDynamoDBOptions(env.DynamoDB.Endpoint)),
		SFN: sfn.NewFromConfig(env.AWS, func(o *sfn.Options) { o.BaseEndpoint = aws.String(api.URL) }),
		Getenv: func(k string) string {
			return map[string]string{cli.EnvStateMachineArn: api.StateMachineArn, cli.EnvLedgerTable: local.Table}[k]
		},
		Sleep: func(ctx context.Context, d time.Duration) error {
			select {
			case <-time.After(20 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
	var results []result
	run := func(want int, args ...string) result {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, args, &stdout, &stderr, deps)
		r := result{code: code, stdout: stdout.String(), stderr: stderr.String(), get: args[0] == "get"}
		results = append(results, r)
		t.Logf("secretctl %s → %d\n%s%s", strings.Join(args, " "), code, r.stdout, r.stderr)
		if code != want {
			t.Fatalf("secretctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, r.stdout, r.stderr)
		}
		return r
	}
	var passwords []string
	password := func(arn, stage, version string) string {
		t.Helper()
		in := &secretsmanager.GetSecretValueInput{SecretId: &arn}
		if stage != "" {
			in.VersionStage = &stage
		}
		if version != "" {
			in.VersionId = &version
		}
		out, err := env.SMClient.GetSecretValue(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		v, err := secret.Parse(aws.ToString(out.SecretString))
		if err != nil {
			t.Fatal(err)
		}
		pw := v.Password.Reveal()
		passwords = append(passwords, pw)
		return pw
	}

	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	name := "ctl/" + id + "/app"
	arn, err := env.PostgresSecret(ctx, name, "ctl_"+id)
	if err != nil {
		t.Fatal(err)
	}
	before := password(arn, "AWSCURRENT", "")

	r := run(0, "rotate", name, "--wait", "--verify", "--poll-interval", "50ms")
	for _, s := range []string{"AcquireLease", "SetSecret", "FinishSecret", "ReleaseLease", "SUCCEEDED", api.StateMachineArn[:strings.LastIndexByte(api.StateMachineArn, ':')]} {
		if !strings.Contains(r.stdout, strings.Replace(s, ":stateMachine", ":execution", 1)) {
			t.Errorf("rotate output lacks %q", s)
		}
	}
	after := password(arn, "AWSCURRENT", "")
	if after == before {
		t.Fatal("the password did not change")
	}
	if err := env.CanLoginAs(ctx, "ctl_"+id, after); err != nil {
		t.Fatalf("the new AWSCURRENT does not log in: %v", err)
	}

	r = run(0, "status", name)
	if !strings.Contains(r.stdout, "Health:  OK") || !strings.Contains(r.stdout, "FINISHED") || !strings.Contains(r.stdout, "AWSPREVIOUS") {
		t.Errorf("status:\n%s", r.stdout)
	}
	r = run(0, "status", arn, "--output", "json")
	var st struct {
		Health string
		Lease  struct {
			Fencing int64
			Held    bool
		}
		LastRotation struct{ Outcome string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Health != "OK" || st.Lease.Fencing != 1 || st.Lease.Held || st.LastRotation.Outcome != "FINISHED" {
		t.Errorf("status json %+v (%v)", st, err)
	}
	r = run(0, "history", name)
	for _, s := range []string{"STARTED", "SET_STARTED", "FINISHED", "#1"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("history lacks %q", s)
		}
	}
	r = run(0, "audit", "--format", "csv", "--since", "1h")
	if !strings.Contains(r.stdout, arn) || !strings.Contains(r.stdout, ",FINISHED,") {
		t.Errorf("audit csv:\n%s", r.stdout)
	}
	r = run(0, "audit", "--format", "json")
	if !json.Valid([]byte(r.stdout)) {
		t.Errorf("audit json:\n%s", r.stdout)
	}
	run(0, "compliance", "--max-age", "90d")

	r = run(0, "get", name, "--stage", "AWSCURRENT")
	if v, err := secret.Parse(strings.TrimSpace(r.stdout)); err != nil || v.Password.Reveal() != after {
		t.Errorf("get does not print the AWSCURRENT value (%v)", err)
	}
	cur, _ := env.Stages(ctx, arn)
	var curVersion string
	for v, stages := range cur {
		for _, s := range stages {
			if s == "AWSCURRENT" {
				curVersion = v
			}
		}
	}
	if !strings.Contains(r.stderr, curVersion) {
		t.Errorf("get's stderr %q lacks the version %s", r.stderr, curVersion)
	}

	// A second secret, never rotated: a compliance breach; then an
	// AWSPENDING left on it: stuck.
	name2 := "ctl/" + id + "/other"
	arn2, err := env.PostgresSecret(ctx, name2, "ctl2_"+id)
	if err != nil {
		t.Fatal(err)
	}
	password(arn2, "AWSCURRENT", "")
	r = run(3, "compliance", "--max-age", "90d")
	if !strings.Contains(r.stdout, name2) || !strings.Contains(r.stdout, "never rotated") {
		t.Errorf("compliance:\n%s", r.stdout)
	}
	run(0, "status", name2)
	leftover := uuid.NewString()
	if _, err := env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: &arn2, ClientRequestToken: &leftover, VersionStages: []string{"AWSPENDING"},
		SecretString: aws.String(`{"engine":"postgres","host":"x","port":5432,"username":"u","password":"leftover-pw-8Jq2","dbname":"d"}`),
	}); err != nil {
		t.Fatal(err)
	}
	passwords = append(passwords, "leftover-pw-8Jq2")
	r = run(3, "status", name2)
	if want := "aws secretsmanager update-secret-version-stage --secret-id " + arn2 + " --version-stage AWSPENDING --remove-from-version-id " + leftover; !strings.Contains(r.stdout, want) {
		t.Errorf("status does not give the fix %q:\n%s", want, r.stdout)
	}
	// A rotation now refuses to start, and says why.
	r = run(1, "rotate", name2, "--wait", "--poll-interval", "50ms")
	if !strings.Contains(r.stderr, "AWSPENDING") {
		t.Errorf("rotate error: %s", r.stderr)
	}

	// The same through the real main wiring: endpoints from the SDK's
	// AWS_ENDPOINT_URL_<SERVICE> variables.
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": env.SMURL, "AWS_ENDPOINT_URL_DYNAMODB": env.DynamoDB.Endpoint, "AWS_ENDPOINT_URL_SFN": api.URL,
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "",
		cli.EnvLedgerTable: local.Table, cli.EnvStateMachineArn: api.StateMachineArn,
	} {
		t.Setenv(k, v)
	}
	deps = newDeps(ctx)
	if deps.ClientErr != nil {
		t.Fatal(deps.ClientErr)
	}
	r = run(0, "status", name)
	if !strings.Contains(r.stdout, "Health:  OK") {
		t.Errorf("status through AWS_ENDPOINT_URL_*:\n%s", r.stdout)
	}
	r = run(0, "rotate", name, "--wait", "--poll-interval", "50ms", "--output", "json")
	var rot struct{ Status, Version string }
	if err := json.Unmarshal([]byte(r.stdout), &rot); err != nil || rot.Status != "SUCCEEDED" {
		t.Errorf("rotate json %+v (%v)", rot, err)
	}
	password(arn, "", rot.Version)
	r = run(0, "history", name, "--output", "json")
	if !strings.Contains(r.stdout, `"rotation": 2`) {
		t.Errorf("history after the second rotation:\n%s", r.stdout)
	}

	// No password in any output but get's stdout.
	for _, r := range results {
		for _, pw := range passwords {
			if strings.Contains(r.stderr, pw) || (!r.get && strings.Contains(r.stdout, pw)) {
				t.Errorf("a password appears in secretctl's output:\n%s\n%s", r.stdout, r.stderr)
			}
		}
	}
}

//go:build integration

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/config"
)

// TestLeaseEndToEnd: secretctl lease, leases, renew and revoke against the
// local stack (the short-lived login state machine behind the local Step
// Functions API, PostgreSQL, DynamoDB Local, the Secrets Manager
// emulator): the printed login works until it is revoked, then is refused.
func TestLeaseEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, api := local.StartWithSFNAPI(t, ctx)
	tpl, err := env.EphemeralTemplate(ctx, "postgres", "ctl/lease-template", "ctl_lease_role", "", "1h")
	if err != nil {
		t.Fatal(err)
	}
	deps := cli.Deps{
		SM:  secretsmanager.NewFromConfig(env.AWS, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(env.SMURL) }),
		DB:  dynamodb.NewFromConfig(env.AWS, standin.LocalDynamoDBOptions(env.DynamoDB.Endpoint)),
		SFN: sfn.NewFromConfig(env.AWS, func(o *sfn.Options) { o.BaseEndpoint = aws.String(api.URL) }),
		Ephemeral: func(table string) (cli.Ephemeral, error) {
			return config.NewEphemeral(config.Options{AWS: env.AWS, LedgerTable: table, Actor: "secretctl",
				SecretsManagerEndpoint: env.SMURL, DynamoDBEndpoint: env.DynamoDB.Endpoint, EventBridgeEndpoint: env.EventsURL})
		},
		Getenv: func(k string) string {
			return map[string]string{cli.EnvEphemeralStateMachineArn: api.EphemeralStateMachineArn, cli.EnvLedgerTable: local.Table, "USER": "oncall"}[k]
		},
	}
	run := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := cli.Run(ctx, args, &stdout, &stderr, deps); code != want {
			t.Fatalf("secretctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	out := run(0, "lease", tpl, "--ttl", "2m", "--max-ttl", "10m", "--output", "env", "--poll-interval", "50ms")
	vars := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(l, "export "), "=")
		vars[k] = strings.Trim(v, "'")
	}
	lease, user, pw := vars["SECRETSAGA_LEASE"], vars["PGUSER"], vars["PGPASSWORD"]
	if lease == "" || user != lease || pw == "" {
		t.Fatalf("lease output:\n%s", out)
	}
	if err := env.CanLoginTo(ctx, "postgres", user, pw); err != nil {
		t.Fatalf("the leased login does not work: %v", err)
	}
	if l := run(0, "leases"); !strings.Contains(l, lease) || !strings.Contains(l, "oncall") || strings.Contains(l, pw) {
		t.Fatalf("leases:\n%s", l)
	}
	if r := run(0, "renew", lease, "--ttl", "5m"); !strings.Contains(r, "renewed") {
		t.Fatalf("renew:\n%s", r)
	}
	run(1, "renew", lease, "--ttl", "20m") // past the max
	if r := run(0, "revoke", lease); !strings.Contains(r, "revoked") {
		t.Fatalf("revoke:\n%s", r)
	}
	if err := env.CanLoginTo(ctx, "postgres", user, pw); err == nil {
		t.Fatal("the revoked login still works")
	}
	if l := run(0, "leases"); strings.Contains(l, lease) {
		t.Fatalf("leases after revoke:\n%s", l)
	}
	if strings.Contains(env.Logs.String(), pw) {
		t.Fatal("the leased password is in the logs")
	}
}

package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/shared/config"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// EphemeralService is the short-lived logins' service a function named
// actor runs (fault injection included when faults is set), wired like
// the rotation's.
func (e *Env) EphemeralService(actor string, faults bool) (*ephemeral.Service, error) {
	o := e.configOptions(actor, faults)
	o.Log = slog.New(slog.NewJSONHandler(e.Logs, nil)).With("function", actor)
	return config.NewEphemeral(o)
}

// EphemeralGroup is the local templates' TagTemplate value.
const EphemeralGroup = "local"

// EphemeralTemplate creates a role on the local server of engine
// ("postgres", "mariadb" or "redis") that may read one table (Redis: GET
// and SET keys <role>:*), and a template secret that names it, the
// engine's master secret and the TTLs (empty: the defaults). It returns the
// template's ARN.
func (e *Env) EphemeralTemplate(ctx context.Context, engine, name, role, defaultTTL, maxTTL string) (string, error) {
	var value map[string]any
	var master string
	var err error
	switch engine {
	case "postgres":
		if master, err = e.PostgresMaster(ctx); err != nil {
			return "", err
		}
		conn, err := pgx.Connect(ctx, e.Postgres.AdminDSN())
		if err != nil {
			return "", err
		}
		defer conn.Close(ctx)
		ident := pgx.Identifier{role}.Sanitize()
		table := pgx.Identifier{"secretsaga_grants_" + role}.Sanitize()
		for _, q := range []string{
			"DROP ROLE IF EXISTS " + ident,
			"CREATE ROLE " + ident + " NOLOGIN",
			"CREATE TABLE IF NOT EXISTS " + table + " (n int)",
			"GRANT SELECT ON " + table + " TO " + ident,
			// Revocation ends the login's sessions.
			"GRANT pg_signal_backend TO saga_master",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return "", fmt.Errorf("%s: %w", q, err)
			}
		}
		value = map[string]any{"engine": "postgres", "host": e.Postgres.Host, "port": e.Postgres.Port, "dbname": "postgres"}
	case "mariadb":
		if master, err = e.MariaDBMaster(ctx); err != nil {
			return "", err
		}
		err = e.mariaDBAdmin(ctx,
			sqlExec("CREATE DATABASE IF NOT EXISTS "+quoteIdent(mariaDBName)),
			sqlExec("CREATE TABLE IF NOT EXISTS "+mariaDBGrantsTable(role)+" (n int)"),
			sqlExec("CREATE ROLE IF NOT EXISTS "+quoteIdent(role)),
			sqlExec("GRANT SELECT ON "+mariaDBGrantsTable(role)+" TO "+quoteIdent(role)),
			sqlExec("GRANT "+quoteIdent(role)+" TO 'saga_master'@'%' WITH ADMIN OPTION"),
		)
		if err != nil {
			return "", err
		}
		value = map[string]any{"engine": "mariadb", "host": e.MariaDB.Host, "port": e.MariaDB.Port, "dbname": mariaDBName}
	case "redis":
		if master, err = e.RedisMaster(ctx); err != nil {
			return "", err
		}
		// A template user: off (it cannot log in itself), the rules the
		// logins copy.
		if err := e.redisAdmin(ctx, "ACL", "SETUSER", role, "reset", "off", "~"+role+":*", "+ping", "+get", "+set"); err != nil {
			return "", err
		}
		value = map[string]any{"engine": "redis", "host": e.Redis.Host, "port": e.Redis.Port}
	default:
		return "", fmt.Errorf("EphemeralTemplate: engine %q", engine)
	}
	value["masterarn"] = master
	value["role"] = role
	if defaultTTL != "" {
		value["default_ttl"] = defaultTTL
	}
	if maxTTL != "" {
		value["max_ttl"] = maxTTL
	}
	raw, _ := json.Marshal(value)
	arn, err := e.CreateSecret(ctx, name, string(raw), "secretsaga local: template for short-lived "+engine+" logins in role "+role)
	if err != nil {
		return "", err
	}
	_, err = e.SMClient.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: &arn,
		Tags: []smtypes.Tag{{Key: aws.String(ephemeral.TagTemplate), Value: aws.String(EphemeralGroup)}}})
	return arn, err
}

// CanLoginEphemeral logs in with the issued login's secret (its current
// value) and uses its role's grant; the error says why not.
func (e *Env) CanLoginEphemeral(ctx context.Context, secretARN, role string) error {
	return e.CanUseGrants(ctx, secretARN, "", "AWSCURRENT", role)
}

// EphemeralLease reads a lease from the ledger.
func (e *Env) EphemeralLease(ctx context.Context, id string) (ledger.EphemeralLease, bool, error) {
	return e.Ledger.GetEphemeral(ctx, id)
}

// LeaksOf names where any of passwords appears in what the product wrote
// (log lines, stdout and stderr, events, CloudTrail records, ledger items,
// executions), as LeakScan does for the secrets it is given: for the
// short-lived logins, whose secrets are deleted at revocation.
func (e *Env) LeaksOf(ctx context.Context, passwords []string) []string {
	return find(passwords, e.outputs(ctx))
}

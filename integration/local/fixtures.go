package local

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// PostgresSecret creates a LOGIN role with a random password on the local
// PostgreSQL and a Secrets Manager secret (AWS database-secret structure)
// that holds it as AWSCURRENT. It returns the secret's ARN.
func (e *Env) PostgresSecret(ctx context.Context, name, role string) (string, error) {
	value, err := e.PostgresRole(ctx, role)
	if err != nil {
		return "", err
	}
	raw, _ := json.Marshal(value)
	return e.CreateSecret(ctx, name, string(raw), "secretsaga local: login of role "+role)
}

// PostgresRole (re)creates a LOGIN role with a random password and returns
// the secret value that logs in as it, as a map a test may spoil.
func (e *Env) PostgresRole(ctx context.Context, role string) (map[string]any, error) {
	pw := rand.Text() // 26 base32 characters; letters and digits only
	conn, err := pgx.Connect(ctx, e.Postgres.AdminDSN())
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{role}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s", ident)); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident, pw)); err != nil {
		return nil, err
	}
	return map[string]any{
		"engine": "postgres", "host": e.Postgres.Host, "port": e.Postgres.Port,
		"username": role, "password": pw, "dbname": "postgres",
	}, nil
}

// SetRolePassword changes a role's password as an administrator would
// (tests use it to play a foreign actor).
func (e *Env) SetRolePassword(ctx context.Context, role, password string) error {
	conn, err := pgx.Connect(ctx, e.Postgres.AdminDSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), strings.ReplaceAll(password, "'", "''")))
	return err
}

// CreateSecret stores value as a new secret's AWSCURRENT and returns its ARN.
func (e *Env) CreateSecret(ctx context.Context, name, value, description string) (string, error) {
	out, err := e.SMClient.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: &name, SecretString: aws.String(value), Description: aws.String(description),
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ARN), nil
}

// CanLogin reports whether role logs in to the local PostgreSQL with the
// password held by the secret's version in stage (e.g. AWSCURRENT).
func (e *Env) CanLogin(ctx context.Context, secretARN, versionID, stage string) error {
	v, err := e.value(ctx, secretARN, versionID, stage)
	if err != nil {
		return err
	}
	return e.verify(ctx, v)
}

// CanLoginAs reports whether role logs in to the local PostgreSQL with
// password.
func (e *Env) CanLoginAs(ctx context.Context, role, password string) error {
	return e.verify(ctx, &secret.Value{Engine: "postgres", Host: e.Postgres.Host, Port: e.Postgres.Port,
		Username: role, Password: secret.NewPassword(password), DBName: "postgres"})
}

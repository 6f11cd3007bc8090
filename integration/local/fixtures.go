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

// PostgresMaster returns the ARN of the local master secret: a CREATEROLE
// administrator the alternating-users strategy logs in as. It is created
// once per Env.
func (e *Env) PostgresMaster(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.masterARN != "" {
		return e.masterARN, nil
	}
	pw := rand.Text()
	conn, err := pgx.Connect(ctx, e.Postgres.AdminDSN())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE saga_master LOGIN CREATEROLE PASSWORD '%s'", pw)); err != nil {
		return "", err
	}
	value, _ := json.Marshal(map[string]any{
		"engine": "postgres", "host": e.Postgres.Host, "port": e.Postgres.Port,
		"username": "saga_master", "password": pw, "dbname": "postgres",
	})
	arn, err := e.CreateSecret(ctx, "local/postgres-master", string(value), "secretsaga local: the alternating strategy's administrator")
	if err != nil {
		return "", err
	}
	e.masterARN = arn
	return arn, nil
}

// PostgresAlternatingSecret creates a role and a secret for the
// alternating-users strategy: its masterarn names PostgresMaster. The role
// may read a table (secretsaga_grants_<role>) so a test can check that the
// clone has the same grants.
func (e *Env) PostgresAlternatingSecret(ctx context.Context, name, role string) (string, error) {
	master, err := e.PostgresMaster(ctx)
	if err != nil {
		return "", err
	}
	value, err := e.PostgresRole(ctx, role)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, e.Postgres.AdminDSN())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	table := pgx.Identifier{"secretsaga_grants_" + role}.Sanitize()
	for _, q := range []string{
		"DROP ROLE IF EXISTS " + pgx.Identifier{role + "_clone"}.Sanitize(),
		"CREATE TABLE IF NOT EXISTS " + table + " (n int)",
		"GRANT SELECT ON " + table + " TO " + pgx.Identifier{role}.Sanitize(),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", err
		}
	}
	value["masterarn"] = master
	raw, _ := json.Marshal(value)
	return e.CreateSecret(ctx, name, string(raw), "secretsaga local: alternating users "+role+" / "+role+"_clone")
}

// CanRead reports whether the secret's version (by id or stage) can read
// the grants table of role: the clone must have the user's privileges.
func (e *Env) CanRead(ctx context.Context, secretARN, versionID, stage, role string) error {
	v, err := e.value(ctx, secretARN, versionID, stage)
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable", v.Host, v.Port, v.Username))
	if err != nil {
		return err
	}
	cfg.Password = v.Password.Reveal()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT count(*) FROM "+pgx.Identifier{"secretsaga_grants_" + role}.Sanitize())
	return err
}

package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

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
	e.createdMu.Lock()
	e.created = append(e.created, aws.ToString(out.ARN))
	e.createdMu.Unlock()
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

// The MariaDB fixtures' database: each user may read its own table in it,
// secretsaga.grants_<user>, and nothing else (secretsaga.ungranted).
const mariaDBName = "secretsaga"

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func mariaDBGrantsTable(user string) string {
	return quoteIdent(mariaDBName) + "." + quoteIdent("grants_"+user)
}

// mariaDBAdmin runs statements as the local MariaDB's superuser.
func (e *Env) mariaDBAdmin(ctx context.Context, stmts ...func(ctx context.Context, db *sql.DB) error) error {
	db, err := e.MariaDB.OpenRoot()
	if err != nil {
		return err
	}
	defer db.Close()
	for _, f := range stmts {
		if err := f(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

func sqlExec(q string, args ...any) func(ctx context.Context, db *sql.DB) error {
	return func(ctx context.Context, db *sql.DB) error {
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	}
}

// MariaDBUser (re)creates user@'%' on the local MariaDB with a random
// password and SELECT on its grants table, and returns the secret value
// that logs in as it, as a map a test may spoil.
func (e *Env) MariaDBUser(ctx context.Context, user string) (map[string]any, error) {
	pw := rand.Text()
	err := e.mariaDBAdmin(ctx,
		sqlExec("CREATE DATABASE IF NOT EXISTS "+quoteIdent(mariaDBName)),
		sqlExec("CREATE TABLE IF NOT EXISTS "+quoteIdent(mariaDBName)+".ungranted (n int)"),
		sqlExec("CREATE TABLE IF NOT EXISTS "+mariaDBGrantsTable(user)+" (n int)"),
		sqlExec("CREATE OR REPLACE USER ?@'%' IDENTIFIED BY ?", user, pw),
		sqlExec("GRANT SELECT ON "+mariaDBGrantsTable(user)+" TO ?@'%'", user),
	)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"engine": "mariadb", "host": e.MariaDB.Host, "port": e.MariaDB.Port,
		"username": user, "password": pw, "dbname": mariaDBName,
	}, nil
}

// MariaDBSecret creates a user on the local MariaDB (MariaDBUser) and a
// secret holding its login as AWSCURRENT, for the single-user strategy. It
// returns the secret's ARN.
func (e *Env) MariaDBSecret(ctx context.Context, name, user string) (string, error) {
	value, err := e.MariaDBUser(ctx, user)
	if err != nil {
		return "", err
	}
	raw, _ := json.Marshal(value)
	return e.CreateSecret(ctx, name, string(raw), "secretsaga local: MariaDB login of "+user)
}

// MariaDBMaster returns the ARN of the local MariaDB's master secret: an
// administrator with every privilege WITH GRANT OPTION (CREATE USER among
// them), which the alternating-users strategy logs in as. It is created
// once per Env.
func (e *Env) MariaDBMaster(ctx context.Context) (string, error) {
	return e.master(ctx, "mariadb", func() (map[string]any, error) {
		pw := rand.Text()
		err := e.mariaDBAdmin(ctx,
			sqlExec("CREATE OR REPLACE USER 'saga_master'@'%' IDENTIFIED BY ?", pw),
			sqlExec("GRANT ALL PRIVILEGES ON *.* TO 'saga_master'@'%' WITH GRANT OPTION"),
			sqlExec("GRANT CREATE USER ON *.* TO 'saga_master'@'%'"),
		)
		return map[string]any{
			"engine": "mariadb", "host": e.MariaDB.Host, "port": e.MariaDB.Port,
			"username": "saga_master", "password": pw, "dbname": mariaDBName,
		}, err
	})
}

// MariaDBAlternatingSecret creates a user (MariaDBUser), drops its clone
// <user>_clone if one is left, and creates a secret for the
// alternating-users strategy whose masterarn names MariaDBMaster.
func (e *Env) MariaDBAlternatingSecret(ctx context.Context, name, user string) (string, error) {
	master, err := e.MariaDBMaster(ctx)
	if err != nil {
		return "", err
	}
	value, err := e.MariaDBUser(ctx, user)
	if err != nil {
		return "", err
	}
	if err := e.mariaDBAdmin(ctx, sqlExec("DROP USER IF EXISTS ?@'%'", user+"_clone")); err != nil {
		return "", err
	}
	value["masterarn"] = master
	raw, _ := json.Marshal(value)
	return e.CreateSecret(ctx, name, string(raw), "secretsaga local: MariaDB alternating users "+user+" / "+user+"_clone")
}

// master returns the master secret of engine, creating it with create on
// first use.
func (e *Env) master(ctx context.Context, engine string, create func() (map[string]any, error)) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if arn := e.masters[engine]; arn != "" {
		return arn, nil
	}
	value, err := create()
	if err != nil {
		return "", err
	}
	raw, _ := json.Marshal(value)
	arn, err := e.CreateSecret(ctx, "local/"+engine+"-master", string(raw), "secretsaga local: the alternating strategy's "+engine+" administrator")
	if err != nil {
		return "", err
	}
	if e.masters == nil {
		e.masters = map[string]string{}
	}
	e.masters[engine] = arn
	return arn, nil
}

// redisAdmin runs a command as the local Redis's default user.
func (e *Env) redisAdmin(ctx context.Context, args ...any) error {
	c := e.Redis.AdminClient()
	defer c.Close()
	return c.Do(ctx, args...).Err()
}

// RedisUser (re)creates an ACL user on the local Redis with a random
// password that may PING, GET and SET keys <user>:* and publish to
// channels <user>:*, and nothing else; selfService adds +acl|setuser,
// which the single-user strategy needs (the user sets its own password).
// It returns the secret value that logs in as it.
func (e *Env) RedisUser(ctx context.Context, user string, selfService bool) (map[string]any, error) {
	pw := rand.Text()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pw, "~" + user + ":*", "&" + user + ":*", "+ping", "+get", "+set", "+publish"}
	if selfService {
		args = append(args, "+acl|setuser")
	}
	if err := e.redisAdmin(ctx, args...); err != nil {
		return nil, err
	}
	return map[string]any{
		"engine": "redis", "host": e.Redis.Host, "port": e.Redis.Port,
		"username": user, "password": pw,
	}, nil
}

// RedisSecret creates a Redis user that may change its own password
// (RedisUser) and a secret holding its login, for the single-user strategy.
func (e *Env) RedisSecret(ctx context.Context, name, user string) (string, error) {
	value, err := e.RedisUser(ctx, user, true)
	if err != nil {
		return "", err
	}
	raw, _ := json.Marshal(value)
	return e.CreateSecret(ctx, name, string(raw), "secretsaga local: Redis login of "+user)
}

// RedisMaster returns the ARN of the local Redis's master secret: a user
// with every permission (+@all, +acl among them), created once per Env.
func (e *Env) RedisMaster(ctx context.Context) (string, error) {
	return e.master(ctx, "redis", func() (map[string]any, error) {
		pw := rand.Text()
		err := e.redisAdmin(ctx, "ACL", "SETUSER", "saga_master", "reset", "on", ">"+pw, "~*", "&*", "+@all")
		return map[string]any{
			"engine": "redis", "host": e.Redis.Host, "port": e.Redis.Port,
			"username": "saga_master", "password": pw,
		}, err
	})
}

// RedisAlternatingSecret creates a Redis user without any ACL permission
// (RedisUser), deletes its clone if one is left, and creates a secret for
// the alternating-users strategy whose masterarn names RedisMaster.
func (e *Env) RedisAlternatingSecret(ctx context.Context, name, user string) (string, error) {
	master, err := e.RedisMaster(ctx)
	if err != nil {
		return "", err
	}
	value, err := e.RedisUser(ctx, user, false)
	if err != nil {
		return "", err
	}
	if err := e.redisAdmin(ctx, "ACL", "DELUSER", user+"_clone"); err != nil {
		return "", err
	}
	value["masterarn"] = master
	raw, _ := json.Marshal(value)
	return e.CreateSecret(ctx, name, string(raw), "secretsaga local: Redis alternating users "+user+" / "+user+"_clone")
}

// CanUseGrants reports whether the secret's version (by id or stage) has
// the permissions the fixtures gave user, and no more: on PostgreSQL it
// reads user's grants table (CanRead); on MariaDB it reads
// secretsaga.grants_<user> and is refused secretsaga.ungranted; on Redis
// it SETs and GETs <user>:probe and is refused a SET outside <user>:*. The
// clone of the alternating strategy must pass it for the original user.
func (e *Env) CanUseGrants(ctx context.Context, secretARN, versionID, stage, user string) error {
	v, err := e.value(ctx, secretARN, versionID, stage)
	if err != nil {
		return err
	}
	switch v.Engine {
	case "postgres":
		return e.CanRead(ctx, secretARN, versionID, stage, user)
	case "mariadb", "mysql":
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = v.Username, v.Password.Reveal()
		cfg.Net, cfg.Addr, cfg.DBName = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(v.Port)), v.DBName
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+mariaDBGrantsTable(user)).Scan(&n); err != nil {
			return fmt.Errorf("%s: read its grants table: %w", v.Username, err)
		}
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quoteIdent(mariaDBName)+".ungranted").Scan(&n); err == nil {
			return fmt.Errorf("%s: reads a table it was never granted", v.Username)
		}
		return nil
	case "redis":
		c := goredis.NewClient(&goredis.Options{
			Addr: net.JoinHostPort(v.Host, strconv.Itoa(v.Port)), Username: v.Username, Password: v.Password.Reveal(),
			Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		})
		defer c.Close()
		key := user + ":probe"
		if err := c.Set(ctx, key, v.Username, 0).Err(); err != nil {
			return fmt.Errorf("%s: SET %s: %w", v.Username, key, err)
		}
		if got, err := c.Get(ctx, key).Result(); err != nil || got != v.Username {
			return fmt.Errorf("%s: GET %s: %q, %v", v.Username, key, got, err)
		}
		if err := c.Set(ctx, "elsewhere:probe", "x", 0).Err(); err == nil {
			return fmt.Errorf("%s: SET on a key outside %s:* worked", v.Username, user)
		}
		return nil
	}
	return errors.New("CanUseGrants: no fixture for engine " + v.Engine)
}

// ForeignUser creates user on the local server of engine ("postgres" or
// "mariadb") with password, as someone other than secretsaga would: no
// clone mark, no ledger record. With comment, PostgreSQL's role gets that
// comment (a mark a person wrote by hand, say).
func (e *Env) ForeignUser(ctx context.Context, engine, user, password, comment string) error {
	switch engine {
	case "postgres":
		conn, err := pgx.Connect(ctx, e.Postgres.AdminDSN())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		role := pgx.Identifier{user}.Sanitize()
		stmts := []string{"DROP ROLE IF EXISTS " + role, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password)}
		if comment != "" {
			stmts = append(stmts, "COMMENT ON ROLE "+role+" IS '"+strings.ReplaceAll(comment, "'", "''")+"'")
		}
		for _, q := range stmts {
			if _, err := conn.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	case "mariadb":
		return e.mariaDBAdmin(ctx, sqlExec("CREATE OR REPLACE USER ?@'%' IDENTIFIED BY ?", user, password))
	}
	return fmt.Errorf("ForeignUser: engine %q", engine)
}

// CanLoginTo reports whether user logs in to the local server of engine
// with password.
func (e *Env) CanLoginTo(ctx context.Context, engine, user, password string) error {
	v := &secret.Value{Engine: engine, Username: user, Password: secret.NewPassword(password)}
	switch engine {
	case "postgres":
		v.Host, v.Port, v.DBName = e.Postgres.Host, e.Postgres.Port, "postgres"
	case "mariadb":
		v.Host, v.Port = e.MariaDB.Host, e.MariaDB.Port // no database: a foreign user has no grant on ours
	}
	return e.verify(ctx, v)
}

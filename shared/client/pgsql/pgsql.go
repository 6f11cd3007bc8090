// Package pgsql is a database/sql connector for PostgreSQL through pgx v5's
// stdlib driver whose credentials come from a secret secretsaga rotates.
// A login the server refuses (SQLSTATE 28P01 or 28000) is retried with the
// secret's other versions, as the client package describes, so an
// application keeps connecting through a rotation:
//
//	db := sql.OpenDB(connector) // connector from NewConnector
package pgsql

import (
	"context"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// DefaultPort is PostgreSQL's, for a secret that names none.
const DefaultPort = 5432

// Engine is how the login loop treats PostgreSQL: the secret's engine must
// be one of its names, and SQLSTATE 28P01 (invalid_password) or 28000
// (invalid_authorization_specification: no such role, or pg_hba refused
// it) means try the next credential.
var Engine = client.Engine{
	Names:         []string{"postgres", "postgresql", "aurora-postgresql"},
	DefaultPort:   DefaultPort,
	IsAuthFailure: IsAuthFailure,
}

// IsAuthFailure reports whether err is PostgreSQL refusing a login.
func IsAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

// Option configures a connector.
type Option func(*connector) error

// WithDSN starts every connection's configuration from a libpq-style
// connection string (sslmode, sslrootcert, application_name,
// connect_timeout, ...). Host, port, user, password and, when the secret
// has one, dbname always come from the secret, and so does TLS when the
// secret has a "tls" field or its host is an AWS endpoint (see Connect). Without it the
// configuration is pgx's default (pgx.ParseConfig("")), which also reads
// the PG* environment variables.
func WithDSN(dsn string) Option {
	return func(c *connector) error {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx's parse errors redact a password given in the string.
			return fmt.Errorf("pgsql: parsing the connection string: %w", err)
		}
		c.base = cfg
		return nil
	}
}

// WithConfig adjusts each connection's configuration after the secret's
// fields are in it (TLS settings, runtime parameters, tracers).
func WithConfig(f func(*pgx.ConnConfig)) Option {
	return func(c *connector) error { c.configure = f; return nil }
}

// WithStdlibOptions passes options to pgx's stdlib connector
// (stdlib.OptionAfterConnect, stdlib.OptionResetSession, ...).
func WithStdlibOptions(opts ...stdlib.OptionOpenDB) Option {
	return func(c *connector) error { c.stdlib = append(c.stdlib, opts...); return nil }
}

type connector struct {
	cache     *client.Cache
	secretID  string
	base      *pgx.ConnConfig
	configure func(*pgx.ConnConfig)
	stdlib    []stdlib.OptionOpenDB
}

// NewConnector returns a connector for sql.OpenDB whose every new
// connection logs in with the secret's credential, and with its other
// versions when the server refuses that one. It reads nothing yet: a
// missing or malformed secret is reported by the first connection.
func NewConnector(c *client.Cache, secretID string, opts ...Option) (driver.Connector, error) {
	if c == nil {
		return nil, &client.Error{SecretID: secretID, Kind: client.ErrUnavailable, Reason: "nil *client.Cache"}
	}
	if secretID == "" {
		return nil, &client.Error{Kind: client.ErrNotFound, Reason: "empty secret id"}
	}
	conn := &connector{cache: c, secretID: secretID}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(conn); err != nil {
			return nil, err
		}
	}
	if conn.base == nil {
		if err := WithDSN("")(conn); err != nil {
			return nil, err
		}
	}
	return conn, nil
}

// Connect opens one connection (database/sql calls it for each). TLS is
// what the rotation uses for the same secret: the secret's "tls" field,
// else verify-full for an AWS endpoint, else the base configuration's
// sslmode. verify-full trusts the CAs of the base configuration
// (sslrootcert) when it names some, else the built-in RDS CA bundle and
// the file named by DB_TLS_CA_FILE (see shared/dbtls).
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	return client.Login(ctx, c.cache, c.secretID, Engine, func(ctx context.Context, cr client.Credential) (driver.Conn, error) {
		cfg, err := c.config(cr)
		if err != nil {
			return nil, err
		}
		return stdlib.GetConnector(*cfg, c.stdlib...).Connect(ctx)
	})
}

// config is the base configuration with the credential's fields in it.
func (c *connector) config(cr client.Credential) (*pgx.ConnConfig, error) {
	cfg := c.base.Copy()
	cfg.Host, cfg.Port = cr.Host, uint16(cr.Port)
	cfg.User, cfg.Password = cr.Username, cr.Password.Reveal()
	if cr.DBName != "" {
		cfg.Database = cr.DBName
	}
	// sslmode=prefer and friends are fallbacks to the same server with
	// other TLS settings: they follow the secret's host too.
	for _, fb := range cfg.Fallbacks {
		fb.Host, fb.Port = cr.Host, uint16(cr.Port)
	}
	switch mode := dbtls.Effective(cr.TLS, cr.Host); mode {
	case secret.TLSDefault:
	case secret.TLSDisable:
		cfg.TLSConfig, cfg.Fallbacks = nil, nil
	default:
		var roots *x509.CertPool
		if cfg.TLSConfig != nil {
			roots = cfg.TLSConfig.RootCAs
		}
		tc, err := dbtls.Config(mode, cr.Host, roots)
		if err != nil {
			return nil, fmt.Errorf("pgsql: %w", err)
		}
		cfg.TLSConfig, cfg.Fallbacks = tc, nil
	}
	if c.configure != nil {
		c.configure(cfg)
	}
	return cfg, nil
}

// Driver returns pgx's database/sql driver.
func (c *connector) Driver() driver.Driver { return stdlib.GetDefaultDriver() }

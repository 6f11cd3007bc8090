// Package mysql is a database/sql connector for MySQL and MariaDB through
// go-sql-driver/mysql whose credentials come from a secret secretsaga
// rotates. A login the server refuses (error 1045, access denied) is
// retried with the secret's other versions, as the client package
// describes, so an application keeps connecting through a rotation:
//
//	db := sql.OpenDB(connector) // connector from NewConnector
package mysql

import (
	"context"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// DefaultPort is MySQL's, for a secret that names none.
const DefaultPort = 3306

// Server error numbers that mean the credential was refused (MySQL's and
// MariaDB's share them).
const (
	erAccessDenied     = 1045 // wrong password or unknown user
	erAccessDeniedNoPW = 1698 // an authentication plugin refused the login
)

// Engine is how the login loop treats MySQL and MariaDB.
var Engine = client.Engine{
	Names:         []string{"mysql", "mariadb", "aurora-mysql", "aurora"},
	DefaultPort:   DefaultPort,
	IsAuthFailure: IsAuthFailure,
}

// IsAuthFailure reports whether err is the server refusing a login.
func IsAuthFailure(err error) bool {
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && (me.Number == erAccessDenied || me.Number == erAccessDeniedNoPW)
}

// Option configures a connector.
type Option func(*connector)

// WithConfig adjusts the driver configuration every connection starts
// from (TLS, timeouts, parameters, collation). User, password, address and,
// when the secret has one, database name always come from the secret, and
// so does TLS when the secret has a "tls" field or its host is an AWS
// endpoint (see Connect).
func WithConfig(f func(*mysqldrv.Config)) Option {
	return func(c *connector) { c.configure = f }
}

type connector struct {
	cache     *client.Cache
	secretID  string
	configure func(*mysqldrv.Config)
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
		if o != nil {
			o(conn)
		}
	}
	return conn, nil
}

// Connect opens one connection (database/sql calls it for each). TLS is
// what the rotation uses for the same secret: the secret's "tls" field,
// else verify-full for an AWS endpoint, else the configuration's own.
// verify-full trusts the RootCAs of a tls.Config that WithConfig set, when
// it has some, else the built-in RDS CA bundle and the file named by
// DB_TLS_CA_FILE (see shared/dbtls).
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	return client.Login(ctx, c.cache, c.secretID, Engine, func(ctx context.Context, cr client.Credential) (driver.Conn, error) {
		cfg, err := c.config(cr)
		if err != nil {
			return nil, err
		}
		dc, err := mysqldrv.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		return dc.Connect(ctx)
	})
}

// config is the driver configuration for one credential.
func (c *connector) config(cr client.Credential) (*mysqldrv.Config, error) {
	cfg := mysqldrv.NewConfig()
	if c.configure != nil {
		c.configure(cfg)
	}
	cfg.User, cfg.Passwd = cr.Username, cr.Password.Reveal()
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(cr.Host, strconv.Itoa(cr.Port))
	if cr.DBName != "" {
		cfg.DBName = cr.DBName
	}
	switch mode := dbtls.Effective(cr.TLS, cr.Host); mode {
	case secret.TLSDefault:
	case secret.TLSDisable:
		cfg.TLS, cfg.TLSConfig = nil, "false"
	default:
		var roots *x509.CertPool
		if cfg.TLS != nil {
			roots = cfg.TLS.RootCAs
		}
		tc, err := dbtls.Config(mode, cr.Host, roots)
		if err != nil {
			return nil, fmt.Errorf("mysql: %w", err)
		}
		cfg.TLS, cfg.TLSConfig = tc, ""
	}
	return cfg, nil
}

// Driver returns go-sql-driver/mysql's driver.
func (c *connector) Driver() driver.Driver { return &mysqldrv.MySQLDriver{} }

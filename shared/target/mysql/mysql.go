// Package mysql is the MySQL and MariaDB target engine over
// github.com/go-sql-driver/mysql: single user (an account changes its own
// password) and alternating users (a master account clones the user with
// its grants, see EnsureUser, and sets the other user's password).
// The configuration registers it under "mysql", "mariadb" and
// "aurora-mysql", the values AWS's own templates write.
//
// Rules that keep the password out of places it must not be:
//   - it never goes into a DSN string; the driver's Config is built field by
//     field and the password set on it directly;
//   - values reach SQL only as ? placeholders that the driver interpolates
//     with its own escaping (which follows the session's
//     NO_BACKSLASH_ESCAPES), never by concatenation;
//   - MariaDB writes statements to its general and slow logs as sent, so it
//     is sent the mysql_native_password hash, not the clear text. MySQL (5.7
//     and later) rewrites the password out of SET PASSWORD in its logs, and
//     its default plugin's hash is salted per account, so it gets the clear
//     text.
package mysql

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	mysql "github.com/go-sql-driver/mysql"

	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Options tune the engine.
type Options struct {
	// ConnectTimeout bounds each login attempt (dial and handshake), so an
	// unreachable host fails the step in bounded time. Default 5s.
	ConnectTimeout time.Duration
	// QueryTimeout bounds each statement's reads and writes once logged in.
	// Default 15s.
	QueryTimeout time.Duration
	// TLS is the driver's tls parameter for a secret without a "tls"
	// field whose host is not an AWS endpoint: "preferred" when empty (TLS
	// when the server offers it, unverified, plain otherwise), "true",
	// "skip-verify" or "false". The secret's "tls" field and the AWS
	// endpoint default (see shared/dbtls) take precedence.
	TLS string
	// RootCAs are the CAs verify-full trusts; nil means dbtls.Roots().
	RootCAs *x509.CertPool
}

// Engine implements target.Engine for MySQL and MariaDB.
type Engine struct{ o Options }

// New returns the engine.
func New(o Options) *Engine {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 15 * time.Second
	}
	if o.TLS == "" {
		o.TLS = "preferred"
	}
	return &Engine{o: o}
}

// Name is the secret's "engine" value.
func (*Engine) Name() string { return "mysql" }

// DefaultPort is MySQL's.
func (*Engine) DefaultPort() int { return 3306 }

// Capabilities: single user and alternating users.
// User names are at most 32 characters in MySQL 5.7.8 and later (and
// Aurora MySQL), 80 in MariaDB (mysql.global_priv.User is CHAR(80)): a
// secret whose engine is "mariadb" gets MariaDB's.
func (*Engine) Capabilities() target.Capabilities {
	return target.Capabilities{SingleUser: true, Alternating: true, Dynamic: true, UsernameLimits: map[string]target.NameLimit{
		"":        {Max: 32, Cause: "MySQL's limit on user names (set the secret's engine to \"mariadb\" for a MariaDB server, which allows 80)"},
		"mariadb": {Max: 80, Cause: "MariaDB's limit on user names"},
	}}
}

// SetPassword changes req.Username's password to req.New. If New already
// logs in, nothing is changed; otherwise the first login of req.Logins that
// works runs SET PASSWORD.
func (e *Engine) SetPassword(ctx context.Context, req target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	return target.ChangePassword(ctx, "mysql", req, e.connect, func(s *session) { s.close() },
		func(ctx context.Context, s *session, login target.Credential) error {
			return e.change(ctx, s, login.Username, req)
		})
}

// change runs on a logged-in session: it works out the statement first
// (reads only), then calls BeforeChange, then changes the password.
func (e *Engine) change(ctx context.Context, s *session, loginUser string, req target.SetPasswordRequest) error {
	var version string
	if err := s.conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return fmt.Errorf("mysql: server version: %w", classify(err))
	}
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")
	// For its own account a session needs no privilege and no host part:
	// SET PASSWORD without FOR is the account the server matched. Another
	// account needs its host, which must be the only one for that name.
	forClause, args := "", []any{}
	if loginUser != req.Username {
		host, err := accountHost(ctx, s.conn, req.Username)
		if err != nil {
			return err
		}
		forClause, args = " FOR ?@?", []any{req.Username, host}
	}
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return err
		}
	}
	pw := req.New.Reveal()
	if !mariadb {
		_, err := s.conn.ExecContext(ctx, "SET PASSWORD"+forClause+" = ?", append(args, pw)...)
		if err != nil {
			return fmt.Errorf("mysql: set password of %q: %w", req.Username, classify(err))
		}
		return nil
	}
	_, err := s.conn.ExecContext(ctx, "SET PASSWORD"+forClause+" = ?", append(args, NativePasswordHash(pw))...)
	if err == nil {
		return nil
	}
	// An account on another plugin (ed25519, parsec) rejects a native
	// hash, and so does a server with a password validation plugin
	// (strict_password_validation: a hash cannot be checked, error 1290); PASSWORD()
	// hands the clear text to the account's plugin and the validator. The
	// clear text then reaches the statement, so only as a fallback.
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == erPasswdLength || me.Number == erSetPasswordAuthPlugin || me.Number == erOptionPrevents) {
		_, err = s.conn.ExecContext(ctx, "SET PASSWORD"+forClause+" = PASSWORD(?)", append(args, pw)...)
	}
	if err != nil {
		return fmt.Errorf("mysql: set password of %q: %w", req.Username, classify(err))
	}
	return nil
}

// accountHosts lists the host parts of user's accounts.
func accountHosts(ctx context.Context, conn *sql.Conn, user string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = ?", user)
	if err != nil {
		return nil, fmt.Errorf("mysql: look up the accounts of %q: %w", user, classify(err))
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("mysql: look up the accounts of %q: %w", user, classify(err))
		}
		hosts = append(hosts, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: look up the accounts of %q: %w", user, classify(err))
	}
	return hosts, nil
}

// accountHost finds the host part of user's only account.
func accountHost(ctx context.Context, conn *sql.Conn, user string) (string, error) {
	hosts, err := accountHosts(ctx, conn, user)
	if err != nil {
		return "", err
	}
	switch len(hosts) {
	case 0:
		return "", fmt.Errorf("mysql: no account named %q: %w", user, target.ErrInvalid)
	case 1:
		return hosts[0], nil
	default:
		return "", fmt.Errorf("mysql: %q has %d accounts (hosts %q); log in as the user itself to change the one it uses: %w", user, len(hosts), hosts, target.ErrInvalid)
	}
}

// NativePasswordHash is the mysql_native_password hash of pw, in the form
// SET PASSWORD and mysql.user take: '*' and 40 upper-case hex digits of
// SHA1(SHA1(pw)).
func NativePasswordHash(pw string) string {
	h1 := sha1.Sum([]byte(pw))
	h2 := sha1.Sum(h1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}

// Verify logs in with the credential and runs a trivial query.
func (e *Engine) Verify(ctx context.Context, req target.VerifyRequest) error {
	s, err := e.connect(ctx, req.Credential)
	if err != nil {
		return fmt.Errorf("mysql: verify login as %q: %w", req.Credential.Username, err)
	}
	defer s.close()
	var one int
	if err := s.conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("mysql: verify query as %q: %w", req.Credential.Username, classify(err))
	}
	return nil
}

// session is one logged-in connection; statements that must see the same
// account (SET PASSWORD without FOR) go through conn.
type session struct {
	db   *sql.DB
	conn *sql.Conn
}

func (s *session) close() {
	_ = s.conn.Close()
	_ = s.db.Close()
}

func (e *Engine) config(c target.Credential) (*mysql.Config, error) {
	if c.Host == "" || c.Username == "" {
		return nil, fmt.Errorf("host and username are required: %w", target.ErrInvalid)
	}
	port := c.Port
	if port == 0 {
		port = e.DefaultPort()
	}
	cfg := mysql.NewConfig()
	cfg.User = c.Username
	cfg.Passwd = c.Password.Reveal()
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(c.Host, strconv.Itoa(port))
	cfg.DBName = c.DBName
	cfg.Timeout = e.o.ConnectTimeout
	cfg.ReadTimeout = e.o.QueryTimeout
	cfg.WriteTimeout = e.o.QueryTimeout
	cfg.InterpolateParams = true
	cfg.ConnectionAttributes = "program_name:secretsaga"
	// The driver logs dropped connections to stderr on its own; the
	// engine's errors already say what went wrong.
	cfg.Logger = &mysql.NopLogger{}
	switch mode := dbtls.Effective(c.TLS, c.Host); mode {
	case secret.TLSDefault:
		cfg.TLSConfig = e.o.TLS
	case secret.TLSDisable:
		cfg.TLSConfig = "false"
	default:
		// A tls.Config of our own makes the driver require TLS (no
		// fallback to plain text), with our roots and host name.
		tc, err := dbtls.Config(mode, c.Host, e.o.RootCAs)
		if err != nil {
			return nil, fmt.Errorf("mysql: %w: %w", err, target.ErrInvalid)
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

func (e *Engine) connect(ctx context.Context, c target.Credential) (*session, error) {
	cfg, err := e.config(c)
	if err != nil {
		return nil, err
	}
	mode := dbtls.Effective(c.TLS, c.Host)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s (tls %q): %w", cfg.Addr, cfg.TLSConfig, target.ErrInvalid)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	cctx, cancel := context.WithTimeout(ctx, e.o.ConnectTimeout+time.Second)
	defer cancel()
	conn, err := db.Conn(cctx)
	if err == nil {
		err = conn.PingContext(cctx)
		if err != nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		_ = db.Close()
		if te, ok := target.AsTLSError("mysql", cfg.Addr, c, mode, err); ok {
			return nil, te
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// Our own bound, not the caller's: a server that accepts but
			// never greets (a black-holed proxy, a hung mysqld, or a
			// PostgreSQL or Redis server, which wait for the client).
			err = fmt.Errorf("no answer from %s within %v: %w", cfg.Addr, e.o.ConnectTimeout+time.Second, target.ErrUnreachable)
		} else {
			err = classify(err)
		}
		if errors.Is(err, target.ErrUnreachable) {
			if wp := target.CheckProtocol(ctx, cfg.Addr, target.ProtocolMySQL); wp != nil {
				return nil, wp
			}
		}
		return nil, err
	}
	return &session{db: db, conn: conn}, nil
}

// Server error numbers (MySQL's and MariaDB's share these).
const (
	erConCount              = 1040 // too many connections
	erOutOfResources        = 1041
	erDBAccessDenied        = 1044
	erAccessDenied          = 1045
	erBadDB                 = 1049
	erServerShutdown        = 1053
	erHostIsBlocked         = 1129
	erHostNotPrivileged     = 1130
	erPasswordNoMatch       = 1133 // SET PASSWORD FOR an account that does not exist
	erTableAccessDenied     = 1142
	erSpecificAccessDenied  = 1227
	erPasswdLength          = 1372 // hash of the wrong length for the account's plugin
	erAccessDeniedNoPW      = 1698 // unix_socket and friends refused the login
	erSetPasswordAuthPlugin = 1699
	erOptionPrevents        = 1290 // --strict-password-validation refusing a hash, or --read-only
	erLockWaitTimeout       = 1205
	erMustChangePWLogin     = 1862 // expired password, client cannot handle it
	erAccountLockedMySQL    = 3118
	erAccountLockedMariaDB  = 4151
	erSecureTransport       = 3159
	erServerIsOffline       = 3032 // MySQL offline_mode
	erClientConnError       = 2003 // client-side codes, should a proxy send them
	erClientLostConn        = 2013
)

// classify maps a driver error to the target's sentinel errors. Server
// messages name the user and host, never the password; the driver's own
// errors are kept as text only.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		msg := fmt.Sprintf("%s (error %d)", me.Message, me.Number)
		switch me.Number {
		case erAccessDenied, erAccessDeniedNoPW, erMustChangePWLogin:
			return fmt.Errorf("%s: %w", msg, target.ErrAuthFailed)
		case erConCount, erOutOfResources, erServerShutdown, erHostIsBlocked, erLockWaitTimeout,
			erServerIsOffline, erClientConnError, erClientLostConn:
			return fmt.Errorf("%s: %w", msg, target.ErrUnreachable)
		case erDBAccessDenied, erBadDB, erHostNotPrivileged, erPasswordNoMatch, erTableAccessDenied,
			erSpecificAccessDenied, erAccountLockedMySQL, erAccountLockedMariaDB, erSecureTransport:
			return fmt.Errorf("%s: %w", msg, target.ErrInvalid)
		default:
			return fmt.Errorf("%s: %w", msg, target.ErrInvalid)
		}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	switch {
	case errors.Is(err, mysql.ErrNativePassword), errors.Is(err, mysql.ErrCleartextPassword),
		errors.Is(err, mysql.ErrOldPassword), errors.Is(err, mysql.ErrUnknownPlugin),
		errors.Is(err, mysql.ErrNoTLS), errors.Is(err, mysql.ErrOldProtocol):
		// The account or server wants what the engine will not do; a
		// retry gets the same answer.
		return fmt.Errorf("%s: %w", err.Error(), target.ErrInvalid)
	}
	// The network or the server going away (refused, reset, DNS, timeout,
	// a dropped connection: net.Error, io.EOF, driver.ErrBadConn,
	// mysql.ErrInvalidConn): worth a retry. Only the text is kept.
	var netErr net.Error
	switch {
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", err.Error(), target.ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", err.Error(), target.ErrUnreachable)
}

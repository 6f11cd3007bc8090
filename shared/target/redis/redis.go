// Package redis is the Redis target engine for ACL users (Redis 6 and
// later) over github.com/gomodule/redigo: single user (a user changes its
// own password) and alternating users (a master user clones the user's ACL
// rules, see EnsureUser, and sets the other user's password).
//
// redigo and not go-redis: the engine sends a few commands on one
// connection, and go-redis's client (pool, hooks, maintenance
// notifications, autopipelining, its command set) made up about 2 MB of
// each database-facing Lambda bootstrap, which must stay under 10 MB
// (README "Binary sizes"); redigo's connection is about 0.25 MB.
//
// The password is set with ACL SETUSER as its SHA-256 ("#<hex>"), never as
// ">clear text", so neither MONITOR, the slow log nor an ACL file that the
// server rewrites can show it; every value is a separate command argument,
// so no user name or password is ever parsed as part of a command line.
//
// Redis keeps ACLs per server: on a primary with replicas, each node's users
// are its own (Redis does not replicate ACL SETUSER).
package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Options tune the engine.
type Options struct {
	// ConnectTimeout bounds dialing and each command's reply, so an
	// unreachable host fails the step in bounded time. Default 5s.
	ConnectTimeout time.Duration
	// TLS, when set, is used for a secret without a "tls" field whose
	// host is not an AWS endpoint. Nil means plain TCP. The secret's
	// "tls" field and the AWS endpoint default (verify-full for
	// ElastiCache, see shared/dbtls) take precedence.
	TLS *tls.Config
	// RootCAs are the CAs verify-full trusts; nil means dbtls.Roots().
	RootCAs *x509.CertPool
}

// Engine implements target.Engine for Redis.
type Engine struct{ o Options }

// New returns the engine.
func New(o Options) *Engine {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	return &Engine{o: o}
}

// Name is the secret's "engine" value.
func (*Engine) Name() string { return "redis" }

// DefaultPort is Redis's.
func (*Engine) DefaultPort() int { return 6379 }

// Capabilities: single user and alternating users.
func (*Engine) Capabilities() target.Capabilities {
	return target.Capabilities{SingleUser: true, Alternating: true, Dynamic: true}
}

// SetPassword changes req.Username's password to req.New, leaving it as the
// user's only password. If New already logs in, nothing is changed;
// otherwise the first login of req.Logins that works runs ACL SETUSER, which
// needs the +acl|setuser permission.
func (e *Engine) SetPassword(ctx context.Context, req target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	return target.ChangePassword(ctx, "redis", req, e.connect, func(c redigo.Conn) { _ = c.Close() },
		func(ctx context.Context, c redigo.Conn, _ target.Credential) error {
			return setPassword(ctx, c, req)
		})
}

func setPassword(ctx context.Context, c redigo.Conn, req target.SetPasswordRequest) error {
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return err
		}
	}
	hash := PasswordHash(req.New.Reveal())
	// resetpass drops every other password, so the old one stops working
	// as the same command adds the new one: there is no moment with
	// neither, and none with both.
	_, err := redigo.DoContext(c, ctx, "ACL", "SETUSER", req.Username, "resetpass", "#"+hash)
	if err != nil {
		// A rejected rule is echoed in the reply; the hash is no password,
		// but it is as good as one for an offline guess.
		return fmt.Errorf("redis: ACL SETUSER %q: %w", req.Username, scrub(classify(err), hash))
	}
	return nil
}

// PasswordHash is the form ACL SETUSER takes after '#': the lower-case hex
// SHA-256 of the password.
func PasswordHash(pw string) string {
	h := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(h[:])
}

// Verify logs in with the credential and sends PING.
func (e *Engine) Verify(ctx context.Context, req target.VerifyRequest) error {
	c, err := e.connect(ctx, req.Credential)
	if err != nil {
		return fmt.Errorf("redis: verify login as %q: %w", req.Credential.Username, err)
	}
	_ = c.Close()
	return nil
}

// dialOptions are one login's settings.
type dialOptions struct {
	Addr, Username, Password string
	DB                       int
	Timeout                  time.Duration
	TLSConfig                *tls.Config // nil: plain TCP
}

func (e *Engine) options(c target.Credential) (dialOptions, error) {
	if c.Host == "" || c.Username == "" {
		return dialOptions{}, fmt.Errorf("host and username are required (the user of a password-only server is \"default\"): %w", target.ErrInvalid)
	}
	port := c.Port
	if port == 0 {
		port = e.DefaultPort()
	}
	db := 0
	if n, err := strconv.Atoi(c.DBName); err == nil && n >= 0 {
		db = n
	}
	tc := e.o.TLS
	if mode := dbtls.Effective(c.TLS, c.Host); mode != secret.TLSDefault {
		var err error
		if tc, err = dbtls.Config(mode, c.Host, e.o.RootCAs); err != nil {
			return dialOptions{}, fmt.Errorf("redis: %w: %w", err, target.ErrInvalid)
		}
	}
	return dialOptions{Addr: net.JoinHostPort(c.Host, strconv.Itoa(port)), Username: c.Username, Password: c.Password.Reveal(),
		DB: db, Timeout: e.o.ConnectTimeout, TLSConfig: tc}, nil
}

// dial opens one connection and logs in. RESP2 and no extras: the
// connection runs AUTH <user> <password> and, for a DB, SELECT, and nothing
// a restricted user might lack the permission for (HELLO, CLIENT SETNAME,
// CLIENT SETINFO). One dial, no retry: a retry would resend a command that
// may have been applied; the rotation retries whole steps instead.
func (o dialOptions) dial(ctx context.Context) (redigo.Conn, error) {
	opts := []redigo.DialOption{
		redigo.DialUsername(o.Username),
		redigo.DialPassword(o.Password),
		redigo.DialDatabase(o.DB),
		redigo.DialConnectTimeout(o.Timeout),
		redigo.DialReadTimeout(o.Timeout),
		redigo.DialWriteTimeout(o.Timeout),
	}
	if o.TLSConfig != nil {
		opts = append(opts, redigo.DialUseTLS(true), redigo.DialTLSConfig(o.TLSConfig), redigo.DialTLSHandshakeTimeout(o.Timeout))
	}
	return redigo.DialContext(ctx, "tcp", o.Addr, opts...)
}

// connect returns a connection that has logged in and answered PING.
func (e *Engine) connect(ctx context.Context, c target.Credential) (redigo.Conn, error) {
	opt, err := e.options(c)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 2*e.o.ConnectTimeout)
	defer cancel()
	conn, err := opt.dial(pctx)
	if err == nil {
		if _, err = redigo.DoContext(conn, pctx, "PING"); err != nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		if te, ok := target.AsTLSError("redis", opt.Addr, c, dbtls.Effective(c.TLS, c.Host), err); ok {
			return nil, te
		}
		err = classify(err)
		if errors.Is(err, target.ErrUnreachable) {
			// A database at this port that speaks another protocol
			// (redigo: "unexpected response line", or EOF).
			if wp := target.CheckProtocol(ctx, opt.Addr, target.ProtocolRedis); wp != nil {
				return nil, wp
			}
		}
		return nil, err
	}
	return conn, nil
}

// classify maps a redigo error to the target's sentinel errors. Server
// replies name the user at most; network errors are kept as text only.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re redigo.Error
	if errors.As(err, &re) {
		msg := re.Error()
		code, _, _ := strings.Cut(msg, " ")
		switch {
		case code == "WRONGPASS", strings.Contains(msg, "invalid username-password pair"),
			code == "NOAUTH", strings.Contains(msg, "invalid password"):
			return fmt.Errorf("%s: %w", msg, target.ErrAuthFailed)
		case code == "LOADING", code == "BUSY", code == "MASTERDOWN", code == "TRYAGAIN",
			code == "CLUSTERDOWN", strings.Contains(msg, "max number of clients"):
			return fmt.Errorf("%s: %w", msg, target.ErrUnreachable)
		default: // NOPERM, ERR unknown command/syntax, READONLY, MOVED
			return fmt.Errorf("%s: %w", msg, target.ErrInvalid)
		}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	// Refused, reset, DNS, timeouts, a closed connection: the server may
	// come back.
	var netErr net.Error
	switch {
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", err.Error(), target.ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", err.Error(), target.ErrUnreachable)
}

// scrub removes s from err's text, keeping its sentinel.
func scrub(err error, s string) error {
	if err == nil || !strings.Contains(err.Error(), s) {
		return err
	}
	for _, sentinel := range []error{target.ErrAuthFailed, target.ErrUnreachable, target.ErrInvalid} {
		if errors.Is(err, sentinel) {
			text := strings.ReplaceAll(err.Error(), s, "<hash>")
			text = strings.TrimSuffix(text, ": "+sentinel.Error())
			return fmt.Errorf("%s: %w", text, sentinel)
		}
	}
	return errors.New(strings.ReplaceAll(err.Error(), s, "<hash>"))
}

// Package redis gives go-redis v9 clients whose credentials come from a
// secret secretsaga rotates. A login the server refuses (WRONGPASS) is
// retried with the secret's other versions, as the client package
// describes, so an application keeps connecting through a rotation.
//
// go-redis offers CredentialsProvider(Context) and
// StreamingCredentialsProvider, but both hand over one credential per
// connection and fail the connection when it is refused: neither can try
// a second. So the login happens in the Dialer instead: each new
// connection is dialled, then AUTH is sent with the secret's credential
// and, after WRONGPASS, with the next candidate on the same connection,
// and only a connection that is logged in is handed to go-redis, which
// then runs its own handshake (HELLO, CLIENT SETINFO, SELECT) without
// credentials of its own.
package redis

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// DefaultPort is Redis's, for a secret that names none.
const DefaultPort = 6379

// Engine is how the login loop treats Redis.
var Engine = client.Engine{
	Names:         []string{"redis", "valkey", "elasticache-redis"},
	DefaultPort:   DefaultPort,
	IsAuthFailure: IsAuthFailure,
}

// ServerError is an error reply from the server to AUTH.
type ServerError struct{ Message string }

// Error is the server's reply text (it names the user at most).
func (e *ServerError) Error() string { return "redis: " + e.Message }

// IsAuthFailure reports whether err is the server refusing a login: the
// WRONGPASS reply (Redis 6 and later), or the "invalid password" and
// "invalid username-password pair" texts of older servers and proxies.
func IsAuthFailure(err error) bool {
	var se *ServerError
	var re goredis.Error
	var msg string
	switch {
	case errors.As(err, &se):
		msg = se.Message
	case errors.As(err, &re):
		msg = re.Error()
	default:
		return false
	}
	return strings.HasPrefix(msg, "WRONGPASS") || strings.Contains(msg, "invalid username-password pair") ||
		strings.Contains(msg, "invalid password")
}

// NewClient returns a go-redis client for the secret's server whose
// connections log in as Options describes. base may be nil.
func NewClient(c *client.Cache, secretID string, base *goredis.Options) (*goredis.Client, error) {
	opt, err := Options(c, secretID, base)
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(opt), nil
}

// Options returns a copy of base (which may be nil) whose Dialer logs in
// with the secret's credentials, trying the next candidate after a
// refusal. It reads the secret once, to check it and, when base.Addr is
// empty, to take the server's address from it. Username, Password and the
// credentials providers of base are cleared: the Dialer has logged in
// before go-redis's handshake, which must not log in again. A Dialer in
// base is used to open the connection (else go-redis's own, with base's
// TLSConfig and DialTimeout).
func Options(c *client.Cache, secretID string, base *goredis.Options) (*goredis.Options, error) {
	if c == nil {
		return nil, &client.Error{SecretID: secretID, Kind: client.ErrUnavailable, Reason: "nil *client.Cache"}
	}
	if secretID == "" {
		return nil, &client.Error{Kind: client.ErrNotFound, Reason: "empty secret id"}
	}
	// Reading now reports a missing, deleted or malformed secret, or one
	// for another engine, to the caller that built the client.
	first, err := c.Get(context.Background(), secretID)
	if err != nil {
		return nil, err
	}
	if err := Engine.Check(&first); err != nil {
		return nil, err
	}
	opt := &goredis.Options{}
	if base != nil {
		*opt = *base
	}
	if opt.Addr == "" {
		opt.Addr = net.JoinHostPort(first.Host, strconv.Itoa(first.Port))
	}
	// TLS as the rotation uses it for the same secret: its "tls" field,
	// else verify-full for an ElastiCache endpoint, else base's own.
	// verify-full trusts base.TLSConfig's RootCAs when it has some, else
	// the built-in bundle and DB_TLS_CA_FILE (see shared/dbtls).
	switch mode := dbtls.Effective(first.TLS, first.Host); mode {
	case secret.TLSDefault:
	case secret.TLSDisable:
		opt.TLSConfig = nil
	default:
		var roots *x509.CertPool
		if opt.TLSConfig != nil {
			roots = opt.TLSConfig.RootCAs
		}
		host, _, err := net.SplitHostPort(opt.Addr)
		if err != nil {
			host = first.Host
		}
		tc, err := dbtls.Config(mode, host, roots)
		if err != nil {
			return nil, &client.Error{SecretID: secretID, Kind: client.ErrUnavailable, Reason: "TLS: " + err.Error()}
		}
		opt.TLSConfig = tc
	}
	opt.Username, opt.Password = "", ""
	opt.CredentialsProvider, opt.CredentialsProviderContext, opt.StreamingCredentialsProvider = nil, nil, nil
	dial := opt.Dialer
	if dial == nil {
		// NewDialer reads opt when it dials, after NewClient has filled
		// in its defaults (DialTimeout).
		dial = goredis.NewDialer(opt)
	}
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return loginDial(ctx, c, secretID, opt, dial, network, addr)
	}
	return opt, nil
}

// loginDial opens one connection and logs it in, trying candidates on the
// same connection while the server answers WRONGPASS.
func loginDial(ctx context.Context, c *client.Cache, secretID string, opt *goredis.Options,
	dial func(context.Context, string, string) (net.Conn, error), network, addr string) (net.Conn, error) {
	var conn net.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	return client.Login(ctx, c, secretID, Engine, func(ctx context.Context, cr client.Credential) (net.Conn, error) {
		if conn == nil {
			var err error
			if conn, err = dial(ctx, network, addr); err != nil {
				// A failed TLS dial returns a nil *tls.Conn, which as a
				// net.Conn is not nil: the deferred Close would panic.
				conn = nil
				return nil, err
			}
		}
		timeout := opt.DialTimeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		err := auth(ctx, conn, cr.Username, cr.Password.Reveal(), timeout)
		switch {
		case err == nil:
			out := conn
			conn = nil
			return out, nil
		case IsAuthFailure(err):
			// The connection stays usable: the next candidate tries on it.
			return nil, err
		default:
			_ = conn.Close()
			conn = nil
			return nil, err
		}
	})
}

// auth sends AUTH and reads its one-line reply. Nothing else is in flight
// on a connection being dialled, so reading byte by byte to the end of
// the line consumes exactly the reply.
func auth(ctx context.Context, conn net.Conn, user, password string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	args := []string{"AUTH", password}
	if user != "" {
		args = []string{"AUTH", user, password}
	}
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return fmt.Errorf("redis: sending AUTH: %w", err)
	}
	line := make([]byte, 0, 64)
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(conn, one); err != nil {
			return fmt.Errorf("redis: reading the AUTH reply: %w", err)
		}
		if one[0] == '\n' {
			break
		}
		if len(line) >= 4096 {
			return errors.New("redis: AUTH reply too long")
		}
		line = append(line, one[0])
	}
	reply := strings.TrimSuffix(string(line), "\r")
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(reply, "+"):
		return nil
	case strings.HasPrefix(reply, "-"):
		return &ServerError{Message: reply[1:]}
	default:
		return fmt.Errorf("redis: unexpected AUTH reply of %d bytes; is this a Redis server?", len(reply))
	}
}

// Package postgres is the PostgreSQL target engine (single user: a role
// changes its own password) over pgconn, pgx's wire-protocol layer.
//
// pgconn and not pgx: the engine sends a handful of fixed statements and
// reads text, and pgx's type system (pgtype registers every PostgreSQL type
// at init) made up about 3 MB of each database-facing Lambda bootstrap,
// which must stay under 10 MB (README "Binary sizes"). The login, TLS and
// SCRAM code is pgconn's either way.
//
// Two rules keep the password out of places it must not be:
//   - it never goes into a DSN string (pgx error messages quote the DSN's
//     host and user, and a parse error may echo the string); the
//     ConnConfig's Password field is set directly;
//   - ALTER ROLE is sent with a SCRAM-SHA-256 verifier computed here, never
//     the clear text, so the server's statement log (log_statement=ddl is
//     common on audited databases) cannot record it.
package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/postgres/internal/saslprep"
)

// Options tune the engine.
type Options struct {
	// ConnectTimeout bounds each login attempt, so an unreachable host fails
	// the step in bounded time instead of at the Lambda timeout. Default 5s.
	ConnectTimeout time.Duration
	// SSLMode is libpq's sslmode for a secret without a "tls" field whose
	// host is not an AWS endpoint ("prefer" when empty: TLS if the server
	// offers it, unverified, plain otherwise). The secret's "tls" field
	// and the AWS endpoint default (see shared/dbtls) take precedence.
	SSLMode string
	// RootCAs are the CAs verify-full trusts; nil means dbtls.Roots().
	RootCAs *x509.CertPool
}

// Engine implements target.Engine for PostgreSQL.
type Engine struct{ o Options }

// New returns the engine.
func New(o Options) *Engine {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.SSLMode == "" {
		o.SSLMode = "prefer"
	}
	return &Engine{o: o}
}

// Name is the secret's "engine" value (AWS's templates write "postgres").
func (*Engine) Name() string { return "postgres" }

// DefaultPort is PostgreSQL's.
func (*Engine) DefaultPort() int { return 5432 }

// Capabilities: single user, and alternating users (a master clones the
// user as <user>_clone, a member of the user's role, and the two take turns).
// A role name is at most NAMEDATALEN-1 = 63 bytes: PostgreSQL truncates a
// longer identifier (with only a NOTICE), so <user>_clone would silently
// name a different role.
func (*Engine) Capabilities() target.Capabilities {
	return target.Capabilities{SingleUser: true, Alternating: true, CloneMarks: true, Dynamic: true, UsernameLimits: map[string]target.NameLimit{
		"": {Max: 63, Bytes: true, Cause: "PostgreSQL's limit on role names (NAMEDATALEN-1)"},
	}}
}

// SetPassword changes req.Username's password to req.New. If New already
// logs in, nothing is changed (the step ran before, or a retry after a lost
// reply); otherwise the first login of req.Logins that works runs ALTER ROLE.
func (e *Engine) SetPassword(ctx context.Context, req target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	return target.ChangePassword(ctx, "postgres", req, e.connect,
		func(c *pgconn.PgConn) { _ = c.Close(context.WithoutCancel(ctx)) },
		func(ctx context.Context, conn *pgconn.PgConn, _ target.Credential) error {
			if req.BeforeChange != nil {
				if err := req.BeforeChange(ctx); err != nil {
					return err
				}
			}
			if err := alterPassword(ctx, conn, req.Username, req.New.Reveal()); err != nil {
				return fmt.Errorf("postgres: alter role %q: %w", req.Username, err)
			}
			return nil
		})
}

// Verify logs in with the credential and runs a trivial query.
func (e *Engine) Verify(ctx context.Context, req target.VerifyRequest) error {
	conn, err := e.connect(ctx, req.Credential)
	if err != nil {
		return fmt.Errorf("postgres: verify login as %q: %w", req.Credential.Username, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		return fmt.Errorf("postgres: verify query as %q: %w", req.Credential.Username, classify(err))
	}
	return nil
}

func (e *Engine) connect(ctx context.Context, c target.Credential) (*pgconn.PgConn, error) {
	if c.Host == "" || c.Username == "" {
		return nil, fmt.Errorf("host and username are required: %w", target.ErrInvalid)
	}
	port := c.Port
	if port == 0 {
		port = e.DefaultPort()
	}
	db := c.DBName
	if db == "" {
		db = "postgres"
	}
	mode := dbtls.Effective(c.TLS, c.Host)
	sslmode := e.o.SSLMode
	if mode != secret.TLSDefault {
		// libpq's names are the secret's.
		sslmode = string(mode)
	}
	// Only non-secret fields go through the DSN parser; the password is set
	// on the parsed config.
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=%s connect_timeout=%d",
		quoteDSN(c.Host), port, quoteDSN(db), quoteDSN(c.Username), sslmode, int(e.o.ConnectTimeout.Seconds()+0.5))
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s:%d: %w", c.Host, port, target.ErrInvalid)
	}
	if mode == secret.TLSVerifyFull {
		// pgx's verify-full trusts the system's roots or sslrootcert;
		// ours are the RDS CAs (and DB_TLS_CA_FILE).
		tc, err := dbtls.Config(mode, c.Host, e.o.RootCAs)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w: %w", err, target.ErrInvalid)
		}
		cfg.TLSConfig, cfg.Fallbacks = tc, nil
	}
	cfg.Password = c.Password.Reveal()
	cfg.ConnectTimeout = e.o.ConnectTimeout
	cfg.RuntimeParams["application_name"] = "secretsaga"
	cctx, cancel := context.WithTimeout(ctx, e.o.ConnectTimeout+time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if prepped, ok := saslprepped(cfg.Password); ok && isInvalidPassword(err) {
		// PostgreSQL's SCRAM (and libpq's) SASLprep the password (RFC
		// 4013: NFKC, so fullwidth "Ａ" is "A"), falling back to the raw
		// bytes when SASLprep fails; pgx applies only PRECIS OpaqueString
		// (NFC, no compatibility mapping). A password that psql logs in
		// with would fail here: try again with it as libpq sends it. The
		// raw password went first, for md5 and password authentication,
		// which PostgreSQL does not normalise.
		cfg.Password = prepped
		conn, err = pgconn.ConnectConfig(cctx, cfg)
	}
	if err != nil {
		if te, ok := target.AsTLSError("postgres", net.JoinHostPort(c.Host, strconv.Itoa(port)), c, mode, err); ok {
			return nil, te
		}
		err = classify(err)
		if errors.Is(err, target.ErrUnreachable) {
			// Another database at this port answers in its own protocol
			// (pgx: "received unexpected message", or a timeout, Redis
			// being silent to a StartupMessage); say so, once. The
			// caller's context: the login's own bound may be used up.
			if wp := target.CheckProtocol(ctx, net.JoinHostPort(c.Host, strconv.Itoa(port)), target.ProtocolPostgres); wp != nil {
				return nil, wp
			}
		}
		return nil, err
	}
	return conn, nil
}

// saslprepped returns the SASLprep form of password and whether it
// differs from password.
func saslprepped(password string) (string, bool) {
	prepped, err := saslprep.Prepare(password)
	return prepped, err == nil && prepped != password
}

// isInvalidPassword reports whether err is the server refusing the
// password (SQLSTATE 28P01, invalid_password).
func isInvalidPassword(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

// quoteDSN quotes a keyword/value DSN value (libpq rules: single quotes,
// backslash escapes) so a user name with spaces or quotes stays one value.
func quoteDSN(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// classify maps a pgx error to the target's sentinel errors. The returned
// error keeps the server's code and message (they never hold the password:
// the server says "password authentication failed for user X").
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return fmt.Errorf("%s (SQLSTATE %s): %w", pgErr.Message, pgErr.Code, target.ErrAuthFailed)
		case "57P03", "53300", "57P01", "57P02", "08006", "08001", "08004":
			// cannot_connect_now, too_many_connections, admin/crash
			// shutdown, connection failures: the server may come back.
			return fmt.Errorf("%s (SQLSTATE %s): %w", pgErr.Message, pgErr.Code, target.ErrUnreachable)
		case "3D000", "42501", "42704":
			// invalid_catalog_name, insufficient_privilege, undefined_object
			return fmt.Errorf("%s (SQLSTATE %s): %w", pgErr.Message, pgErr.Code, target.ErrInvalid)
		default:
			return fmt.Errorf("%s (SQLSTATE %s): %w", pgErr.Message, pgErr.Code, target.ErrInvalid)
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	// Everything else is the network or the server going away (refused,
	// reset, DNS, timeout): worth a retry. Only the text is kept, not the
	// chain: pgx's ConnectError holds the *pgconn.Config, password included,
	// and nothing downstream should be able to dig it out.
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", err.Error(), target.ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", err.Error(), target.ErrUnreachable)
}

// alterPassword sets the role's password to a SCRAM-SHA-256 verifier. The
// role name is quoted as an identifier; the verifier is made of base64 and
// '$', ':' and '@' characters only, so it is safe inside a string literal
// (ALTER ROLE takes no bind parameters).
func alterPassword(ctx context.Context, conn *pgconn.PgConn, role, password string) error {
	verifier, err := scramVerifier(password, 4096)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ALTER ROLE "+quoteIdent(role)+" WITH PASSWORD '"+verifier+"'").ReadAll()
	return classify(err)
}

// quoteIdent quotes s as an SQL identifier, as pgx.Identifier.Sanitize
// does: doubled double quotes, NUL bytes dropped.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `"`, `""`) + `"`
}

// scramVerifier computes the string PostgreSQL stores for a SCRAM-SHA-256
// password (RFC 5803 format, as libpq's PQencryptPasswordConn makes it):
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
// Like PostgreSQL (and libpq), the password is normalised with SASLprep
// first, falling back to the raw bytes when that fails, so that clients
// which normalise and the server agree on non-ASCII passwords. The
// SASLprep is PostgreSQL's own reading of RFC 4013 (package saslprep), as
// libpq computes the password it logs in with that code.
func scramVerifier(password string, iterations int) (string, error) {
	if prepped, err := saslprep.Prepare(password); err == nil {
		password = prepped
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(iterations) + ":" + b64(salt) + "$" + b64(storedKey[:]) + ":" + b64(serverKey), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// EnsureUser creates req.Username, if it does not exist, as a LOGIN role
// that is a member of req.Like (so it has Like's privileges through
// inheritance, as AWS's alternating-users template does), logged in as the
// master, and marks it as secretsaga's clone of Like with the role's
// comment (COMMENT ON ROLE ... IS 'secretsaga:clone-of=<Like>'), in the
// same transaction: a clone never exists unmarked. The new role gets no
// password here: SetPassword sets it next. It reports whether Username
// existed and the marks of both roles; with CheckOnly it only reports.
func (e *Engine) EnsureUser(ctx context.Context, req target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	if req.Username == "" || req.Like == "" || req.Username == req.Like {
		return target.EnsureUserResponse{}, fmt.Errorf("postgres: ensure user: two different user names are required: %w", target.ErrInvalid)
	}
	conn, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("postgres: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	// Text parameters and text results: both columns are text-like.
	rr := conn.ExecParams(ctx, "SELECT rolname, coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname IN ($1, $2)",
		[][]byte{[]byte(req.Username), []byte(req.Like)}, nil, nil, nil).Read()
	if rr.Err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("postgres: look up roles: %w", classify(rr.Err))
	}
	var res target.EnsureUserResponse
	likeExists := false
	for _, row := range rr.Rows {
		if len(row) != 2 {
			return target.EnsureUserResponse{}, fmt.Errorf("postgres: look up roles: %d columns, want 2: %w", len(row), target.ErrInvalid)
		}
		name, comment := string(row[0]), string(row[1])
		if name == req.Username {
			res.Exists, res.Mark = true, target.ParseCloneMark(comment)
		} else {
			likeExists, res.LikeMark = true, target.ParseCloneMark(comment)
		}
	}
	if res.Exists || req.CheckOnly {
		return res, nil
	}
	if !likeExists {
		return target.EnsureUserResponse{}, fmt.Errorf("postgres: role %q to clone does not exist: %w", req.Like, target.ErrInvalid)
	}
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return target.EnsureUserResponse{}, err
		}
	}
	role := quoteIdent(req.Username)
	// One simple-protocol query of two statements runs as one implicit
	// transaction: the role is created and marked, or neither. COMMENT
	// takes no parameters: the mark is a quoted literal.
	_, err = conn.Exec(ctx, "CREATE ROLE "+role+" WITH LOGIN IN ROLE "+quoteIdent(req.Like)+"; "+
		"COMMENT ON ROLE "+role+" IS "+quoteLiteral(target.CloneMark(req.Like))).ReadAll()
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("postgres: create role %q like %q: %w", req.Username, req.Like, classify(err))
	}
	res.Created, res.Mark = true, req.Like
	return res, nil
}

// quoteLiteral quotes s as a SQL string literal; one holding a backslash
// is written as an escape string (E'...'), which reads the same whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
	}
	return q
}

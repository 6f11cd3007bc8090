package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretsaga/secretsaga/shared/target"
)

// Short-lived logins (target.Dynamic). The master needs CREATEROLE, the
// role to grant WITH ADMIN OPTION on PostgreSQL 16 and later (CREATEROLE
// suffices on 15), and pg_signal_backend to end the login's sessions.

// validUntil is the VALID UNTIL literal for t: UTC, to the second, rounded
// up (the server must not refuse the login before the lease ends).
func validUntil(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() != 0 {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	return quoteLiteral(t.Format("2006-01-02 15:04:05+00"))
}

// NewUser creates req.Username as a LOGIN role IN ROLE req.Role with the
// password's SCRAM verifier and VALID UNTIL req.Expiration, marked
// "secretsaga:ephemeral" in its comment, in one implicit transaction. If
// the role exists already (a retried issue) its password, membership and
// expiration are set again. A role to grant that does not exist is
// target.ErrRoleNotFound, and nothing is created.
func (e *Engine) NewUser(ctx context.Context, req target.NewUserRequest) (target.NewUserResponse, error) {
	if err := target.CheckEphemeralName("postgres", req.Username); err != nil {
		return target.NewUserResponse{}, err
	}
	if req.Role == "" || req.Password.IsZero() || req.Expiration.IsZero() {
		return target.NewUserResponse{}, fmt.Errorf("postgres: new user %q: a role, a password and an expiration are required: %w", req.Username, target.ErrInvalid)
	}
	conn, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("postgres: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	found, err := roleNames(ctx, conn, "SELECT rolname FROM pg_roles WHERE rolname IN ($1, $2)", req.Username, req.Role)
	if err != nil {
		return target.NewUserResponse{}, err
	}
	if !found[req.Role] {
		return target.NewUserResponse{}, fmt.Errorf("postgres: role %q: %w: %w", req.Role, target.ErrRoleNotFound, target.ErrInvalid)
	}
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return target.NewUserResponse{}, err
		}
	}
	verifier, err := scramVerifier(req.Password.Reveal(), 4096)
	if err != nil {
		return target.NewUserResponse{}, err
	}
	role := quoteIdent(req.Username)
	opts := " WITH LOGIN PASSWORD '" + verifier + "' VALID UNTIL " + validUntil(req.Expiration)
	var q string
	if found[req.Username] {
		// A retried issue: only a superuser may name the SUPERUSER,
		// CREATEDB... attributes in ALTER ROLE (even to turn them off),
		// and CREATE gave the role none of them.
		q = "ALTER ROLE " + role + opts + "; GRANT " + quoteIdent(req.Role) + " TO " + role
	} else {
		q = "CREATE ROLE " + role + opts + " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION IN ROLE " + quoteIdent(req.Role) + "; " +
			"COMMENT ON ROLE " + role + " IS " + quoteLiteral(ephemeralMark)
	}
	if _, err := conn.Exec(ctx, q).ReadAll(); err != nil {
		return target.NewUserResponse{}, fmt.Errorf("postgres: create login %q in role %q: %w", req.Username, req.Role, scrubVerifier(classify(err), verifier))
	}
	return target.NewUserResponse{Existed: found[req.Username]}, nil
}

// ephemeralMark is the comment on every login NewUser creates.
const ephemeralMark = "secretsaga:ephemeral"

// scrubVerifier keeps the verifier out of an error (a server that echoes
// the statement); it is no password, but as good as one for an offline
// guess.
func scrubVerifier(err error, verifier string) error {
	if err == nil || !strings.Contains(err.Error(), verifier) {
		return err
	}
	return fmt.Errorf("%s: %w", strings.ReplaceAll(err.Error(), verifier, "<verifier>"), target.ErrInvalid)
}

// roleNames runs q (a query of rolname with text parameters) and returns
// the names it found.
func roleNames(ctx context.Context, conn *pgconn.PgConn, q string, args ...string) (map[string]bool, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	rr := conn.ExecParams(ctx, q, params, nil, nil, nil).Read()
	if rr.Err != nil {
		return nil, fmt.Errorf("postgres: look up roles: %w", classify(rr.Err))
	}
	out := map[string]bool{}
	for _, row := range rr.Rows {
		if len(row) > 0 {
			out[string(row[0])] = true
		}
	}
	return out, nil
}

// DeleteUser revokes a login: NOLOGIN first (no new session from here
// on), then every session of it is terminated, then the role is dropped.
// A role that owns objects (a migration's tables) cannot be dropped: what
// it owns is reassigned to req.Role and its privileges dropped, which the
// master may do only if it has the privileges of both roles (a superuser,
// or a member of both); otherwise the role is left NOLOGIN without a
// password, which no one can log in as, and the error says so.
func (e *Engine) DeleteUser(ctx context.Context, req target.DeleteUserRequest) (target.DeleteUserResponse, error) {
	if err := target.CheckEphemeralName("postgres", req.Username); err != nil {
		return target.DeleteUserResponse{}, err
	}
	conn, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.DeleteUserResponse{}, fmt.Errorf("postgres: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	found, err := roleNames(ctx, conn, "SELECT rolname FROM pg_roles WHERE rolname = $1", req.Username)
	if err != nil {
		return target.DeleteUserResponse{}, err
	}
	var res target.DeleteUserResponse
	role := quoteIdent(req.Username)
	if found[req.Username] {
		res.Existed = true
		if _, err := conn.Exec(ctx, "ALTER ROLE "+role+" WITH NOLOGIN PASSWORD NULL").ReadAll(); err != nil && !isUndefinedObject(err) {
			return res, fmt.Errorf("postgres: lock login %q: %w", req.Username, classify(err))
		}
	}
	// Sessions may outlive the role (a dropped role's backends keep
	// running), so they are ended whether or not it is still there.
	rr := conn.ExecParams(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
		[][]byte{[]byte(req.Username)}, nil, nil, nil).Read()
	if rr.Err != nil {
		return res, fmt.Errorf("postgres: end the sessions of %q (the master needs pg_signal_backend): %w", req.Username, classify(rr.Err))
	}
	for _, row := range rr.Rows {
		// false: the session ended between the query and the signal.
		if len(row) == 1 && string(row[0]) == "t" {
			res.Terminated++
		}
	}
	if !found[req.Username] {
		return res, nil
	}
	_, err = conn.Exec(ctx, "DROP ROLE IF EXISTS "+role).ReadAll()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "2BP01" && req.Role != "" {
		// dependent_objects_still_exist: hand what it owns to the role
		// it was given, then drop.
		_, err = conn.Exec(ctx, "REASSIGN OWNED BY "+role+" TO "+quoteIdent(req.Role)+"; DROP OWNED BY "+role+"; DROP ROLE IF EXISTS "+role).ReadAll()
	}
	if err != nil {
		return res, fmt.Errorf("postgres: drop login %q (it is NOLOGIN without a password: no one can log in as it; drop it by hand if it owns objects the master may not reassign): %w", req.Username, classify(err))
	}
	return res, nil
}

func isUndefinedObject(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42704"
}

// RenewUser moves the login's VALID UNTIL.
func (e *Engine) RenewUser(ctx context.Context, req target.RenewUserRequest) error {
	if err := target.CheckEphemeralName("postgres", req.Username); err != nil {
		return err
	}
	conn, err := e.connect(ctx, req.Master)
	if err != nil {
		return fmt.Errorf("postgres: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "ALTER ROLE "+quoteIdent(req.Username)+" VALID UNTIL "+validUntil(req.Expiration)).ReadAll(); err != nil {
		return fmt.Errorf("postgres: renew login %q: %w", req.Username, classify(err))
	}
	return nil
}

// ListUsers lists the roles whose names start with req.Prefix.
func (e *Engine) ListUsers(ctx context.Context, req target.ListUsersRequest) ([]string, error) {
	if req.Prefix == "" {
		return nil, fmt.Errorf("postgres: list users: a prefix is required: %w", target.ErrInvalid)
	}
	conn, err := e.connect(ctx, req.Master)
	if err != nil {
		return nil, fmt.Errorf("postgres: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	found, err := roleNames(ctx, conn, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", req.Prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(found))
	for n := range found {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

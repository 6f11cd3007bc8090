package mysql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	mysql "github.com/go-sql-driver/mysql"

	"github.com/secretsaga/secretsaga/shared/target"
)

// Short-lived logins (target.Dynamic). The login is an account on host '%'
// given a role (MariaDB's CREATE ROLE, MySQL 8's roles) as its default
// role. The master needs CREATE USER, the role WITH ADMIN OPTION, PROCESS
// (to see the login's sessions) and CONNECTION ADMIN or SUPER (to end
// them): the alternating strategy's master (ALL ... WITH GRANT OPTION) has
// them all. Neither server has an expiry of the minute: the ledger's
// revocation is the only lock (MariaDB's PASSWORD EXPIRE counts days).

const ephemeralHost = "%"

const erNoSuchThread = 1094

// roleExists reports whether role is a role the master can see.
func roleExists(ctx context.Context, s *session, role string, mariadb bool) (bool, error) {
	q := "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND is_role = 'Y'"
	if !mariadb {
		// MySQL 8 keeps roles as (locked) accounts.
		q = "SELECT COUNT(*) FROM mysql.user WHERE User = ?"
	}
	var n int
	if err := s.conn.QueryRowContext(ctx, q, role).Scan(&n); err != nil {
		return false, fmt.Errorf("mysql: look up role %q: %w", role, stmtErr(err))
	}
	return n > 0, nil
}

func isMariaDB(ctx context.Context, s *session) (bool, error) {
	var version string
	if err := s.conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return false, fmt.Errorf("mysql: server version: %w", classify(err))
	}
	return strings.Contains(strings.ToLower(version), "mariadb"), nil
}

// NewUser creates req.Username@'%' with the password (MariaDB: its
// mysql_native_password hash, so the statement logs never hold it), grants
// it req.Role and makes that its default role. If the account exists (a
// retried issue) its password and role are set again. A role that does not
// exist is target.ErrRoleNotFound, and nothing is created; a grant that
// fails after the account was created drops the account again.
func (e *Engine) NewUser(ctx context.Context, req target.NewUserRequest) (target.NewUserResponse, error) {
	if err := target.CheckEphemeralName("mysql", req.Username); err != nil {
		return target.NewUserResponse{}, err
	}
	if req.Role == "" || req.Password.IsZero() {
		return target.NewUserResponse{}, fmt.Errorf("mysql: new user %q: a role and a password are required: %w", req.Username, target.ErrInvalid)
	}
	s, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("mysql: login as master %q: %w", req.Master.Username, err)
	}
	defer s.close()
	mariadb, err := isMariaDB(ctx, s)
	if err != nil {
		return target.NewUserResponse{}, err
	}
	ok, err := roleExists(ctx, s, req.Role, mariadb)
	if err != nil {
		return target.NewUserResponse{}, err
	}
	if !ok {
		return target.NewUserResponse{}, fmt.Errorf("mysql: role %q (create it with CREATE ROLE and grant it to the master WITH ADMIN OPTION): %w: %w", req.Role, target.ErrRoleNotFound, target.ErrInvalid)
	}
	hosts, err := accountHosts(ctx, s.conn, req.Username)
	if err != nil {
		return target.NewUserResponse{}, err
	}
	existed := slices.Contains(hosts, ephemeralHost)
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return target.NewUserResponse{}, err
		}
	}
	verb := "CREATE USER"
	if existed {
		verb = "ALTER USER"
	}
	pw := req.Password.Reveal()
	if mariadb {
		_, err = s.conn.ExecContext(ctx, verb+" ?@? IDENTIFIED BY PASSWORD ?", req.Username, ephemeralHost, NativePasswordHash(pw))
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == erOptionPrevents {
			// strict_password_validation refuses a hash it cannot check.
			_, err = s.conn.ExecContext(ctx, verb+" ?@? IDENTIFIED BY ?", req.Username, ephemeralHost, pw)
		}
	} else {
		// MySQL rewrites the password out of CREATE/ALTER USER in its logs.
		_, err = s.conn.ExecContext(ctx, verb+" ?@? IDENTIFIED BY ?", req.Username, ephemeralHost, pw)
	}
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("mysql: %s %q: %w", strings.ToLower(verb), req.Username, stmtErr(err))
	}
	defaultRole := "SET DEFAULT ROLE " + quoteIdentifier(req.Role) + " FOR ?@?"
	if !mariadb {
		defaultRole = "SET DEFAULT ROLE " + quoteIdentifier(req.Role) + " TO ?@?"
	}
	for _, stmt := range []string{"GRANT " + quoteIdentifier(req.Role) + " TO ?@?", defaultRole} {
		if _, err := s.conn.ExecContext(ctx, stmt, req.Username, ephemeralHost); err != nil {
			err = fmt.Errorf("mysql: give %q the role %q (%s): %w", req.Username, req.Role, firstWords(stmt), stmtErr(err))
			if existed {
				return target.NewUserResponse{}, err
			}
			return target.NewUserResponse{}, dropHalfMade(ctx, s, req.Username, ephemeralHost, err)
		}
	}
	return target.NewUserResponse{Existed: existed}, nil
}

// quoteIdentifier quotes a role name in backticks.
func quoteIdentifier(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// DeleteUser drops every account named req.Username (no new login from
// then on), then ends the sessions logged in as it (a dropped account's
// sessions keep running otherwise). Both are done on every call, so a
// revocation cut off between them completes when retried.
func (e *Engine) DeleteUser(ctx context.Context, req target.DeleteUserRequest) (target.DeleteUserResponse, error) {
	if err := target.CheckEphemeralName("mysql", req.Username); err != nil {
		return target.DeleteUserResponse{}, err
	}
	s, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.DeleteUserResponse{}, fmt.Errorf("mysql: login as master %q: %w", req.Master.Username, err)
	}
	defer s.close()
	hosts, err := accountHosts(ctx, s.conn, req.Username)
	if err != nil {
		return target.DeleteUserResponse{}, err
	}
	res := target.DeleteUserResponse{Existed: len(hosts) > 0}
	for _, h := range hosts {
		if _, err := s.conn.ExecContext(ctx, "DROP USER IF EXISTS ?@?", req.Username, h); err != nil {
			return res, fmt.Errorf("mysql: drop %q@%q: %w", req.Username, h, stmtErr(err))
		}
	}
	rows, err := s.conn.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", req.Username)
	if err != nil {
		return res, fmt.Errorf("mysql: list the sessions of %q (the master needs PROCESS): %w", req.Username, stmtErr(err))
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return res, fmt.Errorf("mysql: list the sessions of %q: %w", req.Username, classify(err))
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("mysql: list the sessions of %q: %w", req.Username, classify(err))
	}
	_ = rows.Close()
	for _, id := range ids {
		_, err := s.conn.ExecContext(ctx, "KILL CONNECTION ?", id)
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == erNoSuchThread {
			continue // it ended on its own meanwhile
		}
		if err != nil {
			return res, fmt.Errorf("mysql: end a session of %q (the master needs CONNECTION ADMIN or SUPER): %w", req.Username, stmtErr(err))
		}
		res.Terminated++
	}
	return res, nil
}

// RenewUser does nothing: MySQL and MariaDB logins carry no expiry of the
// minute, so the ledger's expiry is the only one.
func (e *Engine) RenewUser(_ context.Context, req target.RenewUserRequest) error {
	return target.CheckEphemeralName("mysql", req.Username)
}

// ListUsers lists the account names that start with req.Prefix.
func (e *Engine) ListUsers(ctx context.Context, req target.ListUsersRequest) ([]string, error) {
	if req.Prefix == "" {
		return nil, fmt.Errorf("mysql: list users: a prefix is required: %w", target.ErrInvalid)
	}
	s, err := e.connect(ctx, req.Master)
	if err != nil {
		return nil, fmt.Errorf("mysql: login as master %q: %w", req.Master.Username, err)
	}
	defer s.close()
	rows, err := s.conn.QueryContext(ctx, "SELECT DISTINCT User FROM mysql.user WHERE LEFT(User, ?) = ?", len(req.Prefix), req.Prefix)
	if err != nil {
		return nil, fmt.Errorf("mysql: list users: %w", stmtErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("mysql: list users: %w", classify(err))
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: list users: %w", classify(err))
	}
	slices.Sort(out)
	return out, nil
}

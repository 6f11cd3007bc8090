package mysql

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	mysql "github.com/go-sql-driver/mysql"

	"github.com/secretsaga/secretsaga/shared/target"
)

// EnsureUser is the alternating-users strategy's clone step. Logged in as
// req.Master, it does nothing if an account named req.Username exists (on
// any host). Otherwise it creates req.Username on the host of req.Like's
// only account and gives it req.Like's grants, as SHOW GRANTS lists them
// with the account name replaced:
//
//   - the account is created with a random throwaway password that nobody
//     ever learns (MariaDB is sent only its hash), so it cannot log in until
//     SetPassword, run next with the master's login, sets the real one; an
//     account without a password would take an empty one meanwhile;
//   - GRANT lines are copied, including role memberships, the USAGE line's
//     REQUIRE (TLS) and WITH (resource limits, GRANT OPTION) clauses and
//     MariaDB's SET DEFAULT ROLE; the USAGE line's IDENTIFIED BY PASSWORD
//     '<hash>' (or IDENTIFIED VIA <plugin> USING ...) is dropped, the
//     password being SetPassword's business, and a USAGE line left with
//     nothing else is skipped (CREATE USER grants USAGE);
//   - GRANT PROXY lines are not copied: proxying lets an account act as
//     another one, and only an account that holds PROXY WITH GRANT OPTION
//     for the proxied account (by default root@localhost alone, never an RDS
//     master) could grant it, so the clone would fail for every such user;
//     a user that needs it must have it granted to its clone by hand;
//   - MySQL 8's partial revokes (REVOKE ... FROM) are copied as well.
//
// All reads happen first; req.BeforeChange is called right before CREATE
// USER. If a grant fails after the account was created, the account is
// dropped again, so that a retry does not find a clone without its grants.
//
// The master needs the CREATE USER privilege, SELECT on mysql.user, and
// every privilege it copies WITH GRANT OPTION (for example GRANT ALL ON *.*
// TO master WITH GRANT OPTION); copying a role membership needs the role
// WITH ADMIN OPTION.
//
// Not copied: the authentication plugin (the clone gets the server's
// default, which SetPassword then serves) and, on MySQL, the account
// properties that SHOW GRANTS does not show (REQUIRE, resource limits,
// DEFAULT ROLE, password expiry: SHOW CREATE USER holds them).
func (e *Engine) EnsureUser(ctx context.Context, req target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	if req.Username == "" || req.Like == "" || req.Username == req.Like {
		return target.EnsureUserResponse{}, fmt.Errorf("mysql: ensure user: two different user names are required: %w", target.ErrInvalid)
	}
	s, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("mysql: login as master %q: %w", req.Master.Username, err)
	}
	defer s.close()

	existing, err := accountHosts(ctx, s.conn, req.Username)
	if err != nil {
		return target.EnsureUserResponse{}, err
	}
	if req.CheckOnly {
		// No marks here: MariaDB keeps no comment on an account (MySQL
		// 8's ATTRIBUTE is not in MariaDB), so the ledger's record alone
		// tells a clone secretsaga created.
		return target.EnsureUserResponse{Exists: len(existing) > 0}, nil
	}
	likeHosts, err := accountHosts(ctx, s.conn, req.Like)
	if err != nil {
		return target.EnsureUserResponse{}, err
	}
	switch len(likeHosts) {
	case 0:
		return target.EnsureUserResponse{}, fmt.Errorf("mysql: no account named %q to clone as %q: %w", req.Like, req.Username, target.ErrInvalid)
	case 1:
	default:
		return target.EnsureUserResponse{}, fmt.Errorf("mysql: %q has %d accounts (hosts %q); which one %q should copy is not guessed: %w", req.Like, len(likeHosts), likeHosts, req.Username, target.ErrInvalid)
	}
	host := likeHosts[0]
	if len(existing) > 0 && !slices.Contains(existing, host) {
		// An account of that name exists elsewhere; it is not ours to change.
		return target.EnsureUserResponse{Exists: true}, nil
	}
	grants, err := showGrants(ctx, s, req.Like, host)
	if err != nil {
		return target.EnsureUserResponse{}, err
	}
	stmts, err := CloneGrants(grants, req.Like, req.Username, host)
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("mysql: copy the grants of %q: %w", req.Like, err)
	}
	var version string
	if err := s.conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("mysql: server version: %w", classify(err))
	}
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")

	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return target.EnsureUserResponse{}, err
		}
	}
	if len(existing) > 0 {
		// The account exists: replay the grants anyway. GRANT only adds, so
		// this is a no-op when they are there, heals a clone whose creation
		// was cut off between CREATE USER and its last GRANT (a crashed
		// set step), and carries grants given to the user since.
		for _, stmt := range stmts {
			if _, err := s.conn.ExecContext(ctx, stmt); err != nil {
				return target.EnsureUserResponse{}, fmt.Errorf("mysql: give %q the grants of %q again (%s): %w", req.Username, req.Like, firstWords(stmt), stmtErr(err))
			}
		}
		return target.EnsureUserResponse{Exists: true}, nil
	}
	if err := createAccount(ctx, s, req.Username, host, mariadb); err != nil {
		return target.EnsureUserResponse{}, err
	}
	for _, stmt := range stmts {
		if _, err := s.conn.ExecContext(ctx, stmt); err != nil {
			err = fmt.Errorf("mysql: give %q the grants of %q (%s): %w", req.Username, req.Like, firstWords(stmt), stmtErr(err))
			return target.EnsureUserResponse{}, dropHalfMade(ctx, s, req.Username, host, err)
		}
	}
	return target.EnsureUserResponse{Created: true}, nil
}

// createAccount runs CREATE USER with a random password nobody learns.
func createAccount(ctx context.Context, s *session, user, host string, mariadb bool) error {
	// Upper, lower, digit and punctuation: whatever a password validator
	// asks for. The password is thrown away; SetPassword sets the real one.
	throwaway := "Tmp9-" + rand.Text() + "-z"
	var err error
	if mariadb {
		_, err = s.conn.ExecContext(ctx, "CREATE USER ?@? IDENTIFIED BY PASSWORD ?", user, host, NativePasswordHash(throwaway))
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == erOptionPrevents {
			// strict_password_validation refuses a hash it cannot check.
			_, err = s.conn.ExecContext(ctx, "CREATE USER ?@? IDENTIFIED BY ?", user, host, throwaway)
		}
	} else {
		// MySQL rewrites the password out of CREATE USER in its logs.
		_, err = s.conn.ExecContext(ctx, "CREATE USER ?@? IDENTIFIED BY ?", user, host, throwaway)
	}
	if err != nil {
		return fmt.Errorf("mysql: create user %q@%q: %w", user, host, stmtErr(err))
	}
	return nil
}

// stmtErr classifies the failure of a statement on a logged-in session:
// an "access denied" there is a missing privilege (MariaDB answers a role
// the master may not grant with error 1698), not a refused login.
func stmtErr(err error) error {
	c := classify(err)
	if errors.Is(c, target.ErrAuthFailed) {
		return fmt.Errorf("%s (the master lacks a privilege): %w", strings.TrimSuffix(c.Error(), ": "+target.ErrAuthFailed.Error()), target.ErrInvalid)
	}
	return c
}

// dropHalfMade drops the account EnsureUser created when copying a grant
// failed, and returns cause (with what went wrong dropping it, if anything).
func dropHalfMade(ctx context.Context, s *session, user, host string, cause error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.conn.ExecContext(dctx, "DROP USER ?@?", user, host); err != nil {
		return fmt.Errorf("%w; and dropping the half-made account failed (%v): drop %q@%q by hand before the next rotation, or it stays without the grants", cause, classify(err), user, host)
	}
	return cause
}

// showGrants lists SHOW GRANTS FOR user@host.
func showGrants(ctx context.Context, s *session, user, host string) ([]string, error) {
	rows, err := s.conn.QueryContext(ctx, "SHOW GRANTS FOR ?@?", user, host)
	if err != nil {
		return nil, fmt.Errorf("mysql: show the grants of %q@%q: %w", user, host, classify(err))
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, fmt.Errorf("mysql: show the grants of %q@%q: %w", user, host, classify(err))
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: show the grants of %q@%q: %w", user, host, classify(err))
	}
	return lines, nil
}

// quoteAccount quotes user@host as identifiers, the form SHOW GRANTS prints
// (MySQL 8, MariaDB 10.x); backticks inside are doubled, and nothing else is
// special inside backticks whatever the SQL mode.
func quoteAccount(user, host string) string {
	q := func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
	return q(user) + "@" + q(host)
}

// CloneGrants turns SHOW GRANTS lines for like@host into the statements
// that give clone@host the same grants (see EnsureUser for what is copied
// and what is not). A line it does not understand is an error wrapping
// target.ErrInvalid, so nothing is created from a listing half understood.
func CloneGrants(lines []string, like, clone, host string) ([]string, error) {
	accounts := []string{quoteAccount(like, host)}
	if !strings.ContainsAny(like+host, `'\`) {
		// MySQL 5.7 quotes accounts as strings.
		accounts = append(accounts, "'"+like+"'@'"+host+"'")
	}
	to := quoteAccount(clone, host)
	// cut splits line around the last " <kw> <account>"; the account is
	// the grantee, which comes after every object name in the line.
	cut := func(line, kw string) (head, tail string, ok bool) {
		for _, a := range accounts {
			if i := strings.LastIndex(line, " "+kw+" "+a); i >= 0 {
				return line[:i], line[i+len(kw)+2+len(a):], true
			}
		}
		return "", "", false
	}
	var stmts []string
	for _, line := range lines {
		line = strings.TrimSpace(line)
		upper := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(upper, "GRANT PROXY ON "):
			continue // see EnsureUser
		case strings.HasPrefix(upper, "GRANT "):
			head, tail, ok := cut(line, "TO")
			if !ok {
				return nil, fmt.Errorf("a SHOW GRANTS line names another grantee (%s): %w", firstWords(line), target.ErrInvalid)
			}
			tail, err := dropIdentified(tail)
			if err != nil {
				return nil, err
			}
			if strings.EqualFold(head, "GRANT USAGE ON *.*") && strings.TrimSpace(tail) == "" {
				continue // CREATE USER grants USAGE
			}
			stmts = append(stmts, head+" TO "+to+tail)
		case strings.HasPrefix(upper, "REVOKE "):
			head, tail, ok := cut(line, "FROM")
			if !ok || strings.TrimSpace(tail) != "" {
				return nil, fmt.Errorf("a SHOW GRANTS line is not understood (%s): %w", firstWords(line), target.ErrInvalid)
			}
			stmts = append(stmts, head+" FROM "+to)
		case strings.HasPrefix(upper, "SET DEFAULT ROLE "):
			head, tail, ok := cut(line, "FOR")
			if !ok || strings.TrimSpace(tail) != "" {
				return nil, fmt.Errorf("a SHOW GRANTS line is not understood (%s): %w", firstWords(line), target.ErrInvalid)
			}
			stmts = append(stmts, head+" FOR "+to)
		default:
			return nil, fmt.Errorf("a SHOW GRANTS line is not understood (%s): %w", firstWords(line), target.ErrInvalid)
		}
	}
	return stmts, nil
}

// dropIdentified removes a leading " IDENTIFIED ..." clause (MariaDB's
// USAGE line: BY PASSWORD '<hash>', or VIA <plugin> USING '<hash>' [OR ...])
// from what follows the grantee, keeping the REQUIRE and WITH clauses.
func dropIdentified(tail string) (string, error) {
	if !strings.HasPrefix(strings.ToUpper(tail), " IDENTIFIED ") {
		return tail, nil
	}
	// Scan outside quoted strings for the next clause, from the word after
	// IDENTIFIED (which may be WITH, MariaDB's synonym of VIA).
	var quote byte
	for i := len(" IDENTIFIED "); i < len(tail); i++ {
		c := tail[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '\'' {
				i++
			} else if c == quote {
				if i+1 < len(tail) && tail[i+1] == quote {
					i++
				} else {
					quote = 0
				}
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == ' ':
			rest := strings.ToUpper(tail[i:])
			if strings.HasPrefix(rest, " REQUIRE ") || strings.HasPrefix(rest, " WITH ") {
				return tail[i:], nil
			}
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("the IDENTIFIED clause of a SHOW GRANTS line does not end: %w", target.ErrInvalid)
	}
	return "", nil
}

// firstWords names a statement in an error: up to its grantee, without the
// IDENTIFIED clause or anything after it (which may hold a hash).
func firstWords(stmt string) string {
	if i := strings.Index(strings.ToUpper(stmt), " IDENTIFIED "); i >= 0 {
		stmt = stmt[:i] + " …"
	}
	if len(stmt) > 120 {
		stmt = stmt[:120] + "…"
	}
	return stmt
}

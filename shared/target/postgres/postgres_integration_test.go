//go:build integration

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
)

// TestAgainstPostgres runs the engine against a real server with statement
// logging on, and checks that no password reaches the server's log.
func TestAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	pg, admin := startPostgres(ctx, t)
	for _, q := range []string{
		`ALTER SYSTEM SET log_statement = 'all'`,
		`ALTER SYSTEM SET logging_collector = off`,
		`SELECT pg_reload_conf()`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// A role name that needs quoting: identifiers must never be concatenated.
	const role = `app "quoted" role`
	oldPw, newPw := "Old-pw-1c9d7e", "New-pw-58aa2b"
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), oldPw)); err != nil {
		t.Fatal(err)
	}
	cred := func(pw string) target.Credential {
		return target.Credential{Host: pg.Host, Port: pg.Port, Username: role, Password: secret.NewPassword(pw), DBName: "postgres"}
	}
	e := postgres.New(postgres.Options{})

	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); err != nil {
		t.Fatalf("old password: %v", err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(newPw)}); !errors.Is(err, target.ErrAuthFailed) {
		t.Fatalf("new password before set: err = %v, want ErrAuthFailed", err)
	}

	// Logins in rotation order: pending (fails), current (works).
	req := target.SetPasswordRequest{Username: role, New: secret.NewPassword(newPw), Logins: []target.Credential{cred(newPw + "x"), cred(oldPw)}}
	res, err := e.SetPassword(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.AlreadySet || res.LoggedInWith != 1 {
		t.Errorf("first set: %+v, want LoggedInWith 1", res)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(newPw)}); err != nil {
		t.Fatalf("new password after set: %v", err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); !errors.Is(err, target.ErrAuthFailed) {
		t.Fatalf("old password after set: err = %v, want ErrAuthFailed", err)
	}
	// Idempotent: running the step again changes nothing.
	res, err = e.SetPassword(ctx, req)
	if err != nil || !res.AlreadySet {
		t.Fatalf("second set: %+v, %v; want AlreadySet", res, err)
	}
	// Revert (compensation): logins new → old; new works.
	res, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: role, New: secret.NewPassword(oldPw), Logins: []target.Credential{cred(newPw), cred(oldPw)}})
	if err != nil || res.AlreadySet || res.LoggedInWith != 0 {
		t.Fatalf("revert: %+v, %v", res, err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); err != nil {
		t.Fatalf("old password after revert: %v", err)
	}
	// No login works: a clear auth error that names the user, not a value.
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: role, New: secret.NewPassword("Third-pw-7f"), Logins: []target.Credential{cred("wrong-1"), cred("wrong-2")}})
	if !errors.Is(err, target.ErrAuthFailed) || strings.Contains(err.Error(), "wrong-1") || strings.Contains(err.Error(), "Third-pw-7f") {
		t.Fatalf("no login works: %v", err)
	}

	// The server's log (log_statement=all) never saw a new password: the
	// admin's CREATE ROLE above is the only statement that held one.
	var all strings.Builder
	_ = filepath.WalkDir(pg.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return nil
	})
	_, afterCreate, ok := strings.Cut(all.String(), "ALTER ROLE")
	if !ok {
		t.Fatalf("no ALTER ROLE in the server log under %s: statement logging is off?", pg.Dir)
	}
	for _, pw := range []string{oldPw, newPw} {
		if strings.Contains(afterCreate, pw) {
			t.Errorf("server log holds a password set by the engine")
		}
	}
}

// A password set through SQL is stored SASLprepped (PostgreSQL normalises
// it with RFC 4013 before computing the SCRAM verifier), so psql logs in
// with fullwidth letters; pgx alone (PRECIS OpaqueString, no width mapping)
// did not: "AWSCURRENT does not log in". The engine logs in as libpq does,
// both with a password set through SQL and with one it set itself.
func TestSASLprepPasswordAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	pg, admin := startPostgres(ctx, t)
	const role = "fullwidth_app"
	const fullwidth = "Ｆｕｌｌｗｉｄｔｈ-Ｐｗ-１２３" // normalises to "Fullwidth-Pw-123"
	if _, err := admin.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, fullwidth)); err != nil {
		t.Fatal(err)
	}
	cred := func(pw string) target.Credential {
		return target.Credential{Host: pg.Host, Port: pg.Port, Username: role, Password: secret.NewPassword(pw), DBName: "postgres"}
	}
	e := postgres.New(postgres.Options{})
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(fullwidth)}); err != nil {
		t.Fatalf("the fullwidth password set through SQL: %v", err)
	}
	// What libpq would send, too (the server compares normalised forms).
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred("Fullwidth-Pw-123")}); err != nil {
		t.Fatalf("the normalised password: %v", err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred("Ｆｕｌｌｗｉｄｔｈ-Ｐｗ-１２４")}); !errors.Is(err, target.ErrAuthFailed) {
		t.Fatalf("a wrong password: %v, want ErrAuthFailed", err)
	}
	// A fullwidth password the engine sets itself logs in as well.
	const next = "Ｎｅｘｔ-Ｐｗ-４５６"
	if _, err := e.SetPassword(ctx, target.SetPasswordRequest{Username: role, New: secret.NewPassword(next), Logins: []target.Credential{cred(fullwidth)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(next)}); err != nil {
		t.Fatalf("the password the engine set: %v", err)
	}
}

// startPostgres starts a throwaway server for t and connects to it as the
// administrator; both are closed when t ends.
func startPostgres(ctx context.Context, t *testing.T) (*standin.Postgres, *pgx.Conn) {
	t.Helper()
	pg, err := standin.StartPostgres(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	admin, err := pgx.Connect(ctx, pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(ctx) })
	return pg, admin
}

//go:build integration

package postgres_test

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
	"github.com/secretsaga/secretsaga/shared/target/postgres/internal/saslprep"
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

// The server's own SASLprep (pg_saslprep, applied when a password is set
// in clear text) decides which verifier libpq clients log in with; the
// engine's verifier uses saslprep.Prepare. For passwords on every side of
// each difference between PostgreSQL and xdg-go/stringprep, the server's
// stored StoredKey must be the one Prepare's output (or the raw password
// when Prepare fails) gives with the server's salt.
func TestSASLprepAgreesWithPostgres(t *testing.T) {
	ctx := context.Background()
	_, admin := startPostgres(ctx, t)
	const role = "saslprep_app"
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{
		"Plain-Passw0rd!", "Ｐａｓｓ-１２３", "\ufb01x", "\u2163", "e\u0301", "pässwörd",
		"a\u00a0b", "a\u3000b", "pass\u00adword", "a\ufe0fb", "\ufeffab",
		"a\u0085b", "a\ue000b", "a\ufdd0b", "a\ufffdb", "a\u2ff0b", "a\u200eb", "a\U000E0001b", "a\u0221b", "a\U00100000b",
		"\u05d0\u05d1", "\u05d01\u05d1", "\u0627\u0644\u0633", "\u05d0a\u05d1", "1\u05d0", "\u05d01", "\u05d0 ", "\u05d0\u200f", "1\u00b2",
		// Where PostgreSQL and xdg-go/stringprep differ.
		"a\u0007b", "\u00ad", "\u200c\ufe0f", "a\u200bb", "\u200b", "a\u1806b", "\u1806",
		"a\u0340", "a\u0341b", "\U0001F100", "a\u3250b", "a\ufe70b", "\ufe70", "\ufdfa", "\u05d0\ufb4f", "a\u2135b", "\ufb1d", "\ufe71",
	} {
		lit := "'" + strings.ReplaceAll(pw, "'", "''") + "'"
		if _, err := admin.Exec(ctx, "ALTER ROLE "+role+" PASSWORD "+lit); err != nil {
			t.Fatalf("%+q: %v", pw, err)
		}
		var stored string
		if err := admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
		var iter, salt, storedKey string
		if head, keys, ok := strings.Cut(strings.TrimPrefix(stored, "SCRAM-SHA-256$"), "$"); ok {
			iter, salt, _ = strings.Cut(head, ":")
			storedKey, _, _ = strings.Cut(keys, ":")
		}
		n, _ := strconv.Atoi(iter)
		rawSalt, err := base64.StdEncoding.DecodeString(salt)
		if err != nil || n == 0 {
			t.Fatalf("not a SCRAM verifier: %q", stored)
		}
		prepped, perr := saslprep.Prepare(pw)
		if perr != nil {
			prepped = pw
		}
		salted, err := pbkdf2.Key(sha256.New, prepped, rawSalt, n, sha256.Size)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, salted)
		m.Write([]byte("Client Key"))
		sk := sha256.Sum256(m.Sum(nil))
		if got := base64.StdEncoding.EncodeToString(sk[:]); got != storedKey {
			t.Errorf("%+q: the server's verifier is not the one from Prepare = %+q, %v", pw, prepped, perr)
		}
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

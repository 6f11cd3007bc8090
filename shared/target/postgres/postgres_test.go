package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

func TestScramVerifierShape(t *testing.T) {
	a, err := scramVerifier("correct horse", 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := scramVerifier("correct horse", 4096)
	re := regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$`)
	if !re.MatchString(a) {
		t.Fatalf("verifier %q has not PostgreSQL's shape", a)
	}
	if a == b {
		t.Error("two verifiers of one password share a salt")
	}
	if strings.Contains(a, "correct horse") || strings.ContainsRune(a, '\'') {
		t.Error("verifier holds the password or a quote")
	}
}

func TestQuoteDSN(t *testing.T) {
	for in, want := range map[string]string{
		"app":        `'app'`,
		"o'brien":    `'o\'brien'`,
		`back\slash`: `'back\\slash'`,
		"two words":  `'two words'`,
	} {
		if got := quoteDSN(in); got != want {
			t.Errorf("quoteDSN(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"bad password", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, target.ErrAuthFailed},
		{"no such role", &pgconn.PgError{Code: "28000", Message: "role does not exist"}, target.ErrAuthFailed},
		{"starting up", &pgconn.PgError{Code: "57P03"}, target.ErrUnreachable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, target.ErrUnreachable},
		{"no database", &pgconn.PgError{Code: "3D000"}, target.ErrInvalid},
		{"no privilege", &pgconn.PgError{Code: "42501"}, target.ErrInvalid},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, target.ErrUnreachable},
		{"eof", io.ErrUnexpectedEOF, target.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(fmt.Errorf("wrapped: %w", tt.err)); !errors.Is(got, tt.want) {
				t.Errorf("classify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	e := New(Options{})
	ctx := context.Background()
	login := target.Credential{Host: "127.0.0.1", Port: 1, Username: "u", Password: secret.NewPassword("old")}
	for name, req := range map[string]target.SetPasswordRequest{
		"no username":     {New: secret.NewPassword("x"), Logins: []target.Credential{login}},
		"no new password": {Username: "u", Logins: []target.Credential{login}},
		"no logins":       {Username: "u", New: secret.NewPassword("x")},
	} {
		if _, err := e.SetPassword(ctx, req); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: target.Credential{Username: "u"}}); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("no host: err = %v, want ErrInvalid", err)
	}
}

// An unreachable host fails in bounded time, as ErrUnreachable.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	e := New(Options{ConnectTimeout: time.Second})
	err = e.Verify(context.Background(), target.VerifyRequest{Credential: target.Credential{
		Host: "127.0.0.1", Port: port, Username: "u", Password: secret.NewPassword("pw-never-printed"),
	}})
	if !errors.Is(err, target.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "pw-never-printed") {
		t.Fatal("error holds the password")
	}
}

func TestSASLprepped(t *testing.T) {
	tests := []struct {
		name, in, want string
		differs        bool
	}{
		{"ascii", "Plain-Passw0rd!", "Plain-Passw0rd!", false},
		{"fullwidth letters and digits", "Ｐａｓｓ-１２３", "Pass-123", true},
		{"non-ASCII space maps to a space", "a\u00a0b", "a b", true},
		{"already normal", "pässwörd", "pässwörd", false},
		// Prohibited in SASLprep (a control character): PostgreSQL uses
		// the raw password, so no second try.
		{"prohibited", "a\u0085b", "", false},
		// pg_saslprep returns an ASCII password as it is, controls too.
		{"ascii control", "a\u0007b", "", false},
		// Nothing left after mapping: PostgreSQL uses the raw password.
		{"only a soft hyphen", "\u00ad", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, differs := saslprepped(tt.in)
			if differs != tt.differs || (differs && got != tt.want) {
				t.Fatalf("saslprepped(%q) = %q, %v; want %q, %v", tt.in, got, differs, tt.want, tt.differs)
			}
		})
	}
}

// quoteIdent is pgx.Identifier.Sanitize: the engine quotes role names
// itself since it runs on pgconn.
func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"app":         `"app"`,
		`say "hi"`:    `"say ""hi"""`,
		"nul\x00byte": `"nulbyte"`,
		"Mixed Case":  `"Mixed Case"`,
	} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

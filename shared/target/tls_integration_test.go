//go:build integration

package target_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/dbtls/dbtlstest"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/mysql"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
	"github.com/secretsaga/secretsaga/shared/target/redis"
)

// tlsTarget is a stand-in server with TLS on and a user that can log in
// only over TLS, so a mode that succeeds is known to have used it.
type tlsTarget struct {
	name      string
	port      int
	user, pw  string
	newEngine func(roots *x509.CertPool) target.Engine
}

// tlsServers starts PostgreSQL, MariaDB and Redis with a certificate for
// 127.0.0.1 signed by ca.
func tlsServers(ctx context.Context, t *testing.T, ca *dbtlstest.CA) []tlsTarget {
	t.Helper()
	srv, err := ca.Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	st := &standin.TLS{CertPEM: srv.CertPEM, KeyPEM: srv.KeyPEM}
	const user, pw = "tls_app", "Tls-pw-0-4f1d2a"

	pg, err := standin.StartPostgresTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	admin, err := pgx.Connect(ctx, pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", user, pw)); err != nil {
		t.Fatal(err)
	}
	// The role may log in only over TLS: the first matching line wins.
	hba := filepath.Join(pg.Dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("hostnossl all "+user+" 127.0.0.1/32 reject\n"), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}

	m, err := standin.StartMariaDBTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	root, err := m.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "CREATE USER ?@'%' IDENTIFIED BY ? REQUIRE SSL", user, pw); err != nil {
		t.Fatal(err)
	}

	r, err := standin.StartRedisTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	rc := r.AdminClient()
	defer rc.Close()
	if err := rc.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}

	return []tlsTarget{
		{"postgres", pg.Port, user, pw, func(roots *x509.CertPool) target.Engine {
			return postgres.New(postgres.Options{RootCAs: roots, ConnectTimeout: 3 * time.Second})
		}},
		{"mariadb", m.Port, user, pw, func(roots *x509.CertPool) target.Engine {
			return mysql.New(mysql.Options{RootCAs: roots, ConnectTimeout: 3 * time.Second})
		}},
		// The TLS port: it speaks nothing but TLS.
		{"redis", r.TLSPort, user, pw, func(roots *x509.CertPool) target.Engine {
			return redis.New(redis.Options{RootCAs: roots, ConnectTimeout: 3 * time.Second})
		}},
	}
}

// TestTLSModes logs in to each engine's server with each mode: verify-full
// succeeds with the server's CA (given, or from DB_TLS_CA_FILE) and the
// name in its certificate, and fails with a TLSError that says what is
// wrong, changing nothing, when the CA is another one, only the built-in
// RDS bundle, or the host is not in the certificate; require succeeds
// without the CA; disable does not get in, as the user must use TLS.
func TestTLSModes(t *testing.T) {
	ctx := context.Background()
	ca, err := dbtlstest.NewCA("secretsaga test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := dbtlstest.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mode   secret.TLSMode
		host   string
		roots  *x509.CertPool
		caFile string
		want   string // "": logs in; "*": any failure; else a TLSError with this text
	}{
		{"verify-full with the CA", secret.TLSVerifyFull, "127.0.0.1", ca.Pool, "", ""},
		{"verify-full with the CA in DB_TLS_CA_FILE", secret.TLSVerifyFull, "127.0.0.1", nil, caFile, ""},
		{"verify-full with another CA", secret.TLSVerifyFull, "127.0.0.1", other.Pool, "", "not signed by a trusted CA"},
		{"verify-full with only the built-in RDS bundle", secret.TLSVerifyFull, "127.0.0.1", nil, "", "not signed by a trusted CA"},
		{"verify-full to a name the certificate lacks", secret.TLSVerifyFull, "localhost", ca.Pool, "", "does not name the host"},
		{"require without the CA", secret.TLSRequire, "localhost", other.Pool, "", ""},
		{"disable to a user that must use TLS", secret.TLSDisable, "127.0.0.1", ca.Pool, "", "*"},
	}
	for _, srv := range tlsServers(ctx, t, ca) {
		t.Run(srv.name, func(t *testing.T) {
			pw := srv.pw
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Setenv(dbtls.EnvCAFile, tt.caFile)
					e := srv.newEngine(tt.roots)
					cred := func(pw string) target.Credential {
						return target.Credential{Host: tt.host, Port: srv.port, Username: srv.user, Password: secret.NewPassword(pw), TLS: tt.mode}
					}
					next := fmt.Sprintf("Tls-pw-%d-4f1d2a", i+1)
					changes := 0
					res, setErr := e.SetPassword(ctx, target.SetPasswordRequest{Username: srv.user, New: secret.NewPassword(next),
						Logins: []target.Credential{cred(pw)}, BeforeChange: func(context.Context) error { changes++; return nil }})
					switch tt.want {
					case "":
						if setErr != nil || res.AlreadySet {
							t.Fatalf("set password over %s: %v (already set %v)", tt.mode, setErr, res.AlreadySet)
						}
						pw = next
						if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(pw)}); err != nil {
							t.Fatalf("verify over %s: %v", tt.mode, err)
						}
						return
					case "*":
						if setErr == nil {
							t.Fatalf("set password over %s to a user that must use TLS succeeded", tt.mode)
						}
					default:
						t.Logf("%s: %v", tt.name, setErr)
						var te *target.TLSError
						if !errors.As(setErr, &te) || !errors.Is(setErr, target.ErrInvalid) {
							t.Fatalf("set password: %v, want a *target.TLSError wrapping ErrInvalid", setErr)
						}
						if msg := setErr.Error(); !strings.Contains(msg, tt.want) || !strings.Contains(msg, "to fix:") || !strings.Contains(msg, `"verify-full"`) {
							t.Errorf("error %q does not say %q, the mode and the fix", msg, tt.want)
						}
						verr := e.Verify(ctx, target.VerifyRequest{Credential: cred(pw)})
						if !errors.As(verr, &te) {
							t.Errorf("verify: %v, want a *target.TLSError", verr)
						}
					}
					if changes != 0 {
						t.Error("the engine went on to change the password")
					}
					for _, s := range []string{pw, next} {
						if strings.Contains(setErr.Error(), s) {
							t.Error("the error holds a password")
						}
					}
					// Nothing changed: the password still logs in.
					good := srv.newEngine(ca.Pool)
					c := target.Credential{Host: "127.0.0.1", Port: srv.port, Username: srv.user, Password: secret.NewPassword(pw), TLS: secret.TLSVerifyFull}
					if err := good.Verify(ctx, target.VerifyRequest{Credential: c}); err != nil {
						t.Fatalf("the password before the failed login no longer logs in: %v", err)
					}
				})
			}
		})
	}
}

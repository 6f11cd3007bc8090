//go:build integration

package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/dbtls/dbtlstest"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/mysql"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
	"github.com/secretsaga/secretsaga/shared/target/redis"
)

// TestRotationOverVerifyFull rotates a secret whose "tls" is verify-full on
// PostgreSQL, MariaDB and Redis servers with TLS on and a self-signed CA,
// trusted the way a deployment adds a CA (DB_TLS_CA_FILE), through every
// step with the engines the functions use; the user may log in only over
// TLS. With another CA trusted instead, the rotation stops at its first
// login with an InputError that says so, and the target keeps its password.
func TestRotationOverVerifyFull(t *testing.T) {
	ctx := context.Background()
	ca, err := dbtlstest.NewCA("secretsaga test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := dbtlstest.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	for f, pem := range map[string][]byte{caFile: ca.PEM, otherFile: other.PEM} {
		if err := os.WriteFile(f, pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := ca.Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	st := &standin.TLS{CertPEM: srv.CertPEM, KeyPEM: srv.KeyPEM}
	const user = "tls_rot"

	type server struct {
		engine string
		port   int
		create func(pw string) // the user, allowed in over TLS only
	}
	var servers []server

	pg, err := standin.StartPostgresTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	admin, err := pgx.Connect(ctx, pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(ctx) })
	hba := filepath.Join(pg.Dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("hostnossl all all 127.0.0.1/32 reject\n"), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	servers = append(servers, server{"postgres", pg.Port, func(pw string) {
		if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", user, pw)); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}})

	m, err := standin.StartMariaDBTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	root, err := m.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	servers = append(servers, server{"mariadb", m.Port, func(pw string) {
		if _, err := root.ExecContext(ctx, "CREATE USER ?@'%' IDENTIFIED BY ? REQUIRE SSL", user, pw); err != nil {
			t.Fatal(err)
		}
	}})

	r, err := standin.StartRedisTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	rc := r.AdminClient()
	t.Cleanup(func() { _ = rc.Close() })
	servers = append(servers, server{"redis", r.TLSPort, func(pw string) {
		if err := rc.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
	}})

	// The engines as the functions build them: no roots of their own.
	reg := &target.Registry{}
	reg.Register(postgres.New(postgres.Options{}))
	reg.Register(mysql.New(mysql.Options{}), "mariadb")
	reg.Register(redis.New(redis.Options{}))

	for _, s := range servers {
		t.Run(s.engine, func(t *testing.T) {
			const first = "Tls-rot-pw-0-9c1e"
			s.create(first)
			eng, err := reg.Lookup(s.engine)
			if err != nil {
				t.Fatal(err)
			}
			logsIn := func(pw string) error {
				return eng.Verify(ctx, target.VerifyRequest{Credential: target.Credential{Host: "127.0.0.1", Port: s.port, Username: user,
					Password: secret.NewPassword(pw), TLS: secret.TLSVerifyFull}})
			}
			value := fmt.Sprintf(`{"engine":%q,"host":"127.0.0.1","port":%d,"username":%q,"password":%q,"tls":"verify-full"}`, s.engine, s.port, user, first)
			sm := newFakeSecrets(arn, value)
			led := &fakeLedger{lease: map[string]ledger.Lease{}}
			logs := &strings.Builder{}
			svc := &Service{Secrets: sm, Ledger: led, Engines: reg, Events: &fakeBus{}, Alarms: newFakeAlarms(), Actor: "test",
				Log: slog.New(slog.NewJSONHandler(logs, nil))}

			t.Run("another CA: stops at the first login", func(t *testing.T) {
				t.Setenv(dbtls.EnvCAFile, otherFile)
				rc, err := svc.Acquire(ctx, AcquireInput{SecretId: "app/db", ClientRequestToken: "22222222-2222-3333-4444-555555555555", ExecutionArn: execution + "-wrong-ca"})
				if err != nil {
					t.Fatal(err)
				}
				_, err = svc.Create(ctx, rc)
				if faults.Name(err) != faults.NameInput || !strings.Contains(err.Error(), "not signed by a trusted CA") || !strings.Contains(err.Error(), dbtls.EnvCAFile) {
					t.Fatalf("create = %v, want an InputError about the untrusted CA that names %s", err, dbtls.EnvCAFile)
				}
				// The state machine's Catch: compensate, which finds nothing
				// to undo on the target.
				if out, err := svc.Compensate(ctx, CloseInput{Rotation: rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameInput}}); err != nil || out.State != string(ledger.RolledBack) {
					t.Fatalf("compensate = %+v, %v; want ROLLED_BACK", out, err)
				}
				t.Setenv(dbtls.EnvCAFile, caFile)
				if err := logsIn(first); err != nil {
					t.Fatalf("the password before the rotation no longer logs in: %v", err)
				}
			})

			t.Run("the CA: a full rotation", func(t *testing.T) {
				t.Setenv(dbtls.EnvCAFile, caFile)
				rc, err := svc.Acquire(ctx, AcquireInput{SecretId: "app/db", ClientRequestToken: token, ExecutionArn: execution,
					Verify: true}) // the bake (verify) runs over verify-full too
				if err != nil {
					t.Fatal(err)
				}
				for _, step := range []func(context.Context, Context) (StepOutput, error){svc.Create, svc.Set, svc.Test, svc.Finish, svc.Verify} {
					if _, err := step(ctx, rc); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := svc.Release(ctx, CloseInput{Rotation: rc, Outcome: OutcomeFinished}); err != nil {
					t.Fatal(err)
				}
				if got := sm.holder(secretstore.Current); got != token {
					t.Fatalf("AWSCURRENT is %s, want the rotation's version", got)
				}
				v, err := secret.Parse(sm.values[token])
				if err != nil {
					t.Fatal(err)
				}
				if v.TLS != secret.TLSVerifyFull {
					t.Errorf("the new version's tls is %q", v.TLS)
				}
				if err := logsIn(v.Password.Reveal()); err != nil {
					t.Errorf("the new password does not log in over verify-full: %v", err)
				}
				if err := logsIn(first); err == nil {
					t.Error("the old password still logs in")
				}
				if strings.Contains(logs.String(), v.Password.Reveal()) {
					t.Error("the new password is in the logs")
				}
			})
		})
	}
}

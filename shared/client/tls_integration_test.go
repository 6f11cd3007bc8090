//go:build integration

package client_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/internal/clienttest"
	"github.com/secretsaga/secretsaga/shared/client/mysql"
	"github.com/secretsaga/secretsaga/shared/client/pgsql"
	"github.com/secretsaga/secretsaga/shared/client/redis"
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/dbtls/dbtlstest"
)

// TestConnectorsOverVerifyFull: an application's connector reads a secret
// whose "tls" is verify-full and logs in over TLS (the user may log in no
// other way) when the server's CA is trusted (DB_TLS_CA_FILE), and is
// refused by its own certificate check when another CA is.
func TestConnectorsOverVerifyFull(t *testing.T) {
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
	const user, pw = "tls_client", "Tls-client-pw-7b3e"

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
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", user, pw)); err != nil {
		t.Fatal(err)
	}
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
	t.Cleanup(func() { _ = root.Close() })
	if _, err := root.ExecContext(ctx, "CREATE USER ?@'%' IDENTIFIED BY ? REQUIRE SSL", user, pw); err != nil {
		t.Fatal(err)
	}

	r, err := standin.StartRedisTLS(ctx, "", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	rc := r.AdminClient()
	t.Cleanup(func() { _ = rc.Close() })
	if err := rc.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}

	queryUser := func(ctx context.Context, db *sql.DB, q string) (string, error) {
		defer db.Close()
		var u string
		err := db.QueryRowContext(ctx, q).Scan(&u)
		return u, err
	}
	sm := clienttest.StartSM(t)
	for _, tt := range []struct {
		engine  string
		port    int
		dbname  string
		connect func(c *client.Cache, id string) (string, error)
	}{
		{"postgres", pg.Port, "postgres", func(c *client.Cache, id string) (string, error) {
			conn, err := pgsql.NewConnector(c, id)
			if err != nil {
				return "", err
			}
			return queryUser(ctx, sql.OpenDB(conn), "SELECT current_user")
		}},
		{"mariadb", m.Port, "", func(c *client.Cache, id string) (string, error) {
			conn, err := mysql.NewConnector(c, id)
			if err != nil {
				return "", err
			}
			u, err := queryUser(ctx, sql.OpenDB(conn), "SELECT CURRENT_USER()")
			u, _, _ = strings.Cut(u, "@")
			return u, err
		}},
		{"redis", r.TLSPort, "", func(c *client.Cache, id string) (string, error) {
			cl, err := redis.NewClient(c, id, &goredis.Options{MaxRetries: -1})
			if err != nil {
				return "", err
			}
			defer cl.Close()
			return cl.Do(ctx, "ACL", "WHOAMI").Text()
		}},
	} {
		t.Run(tt.engine, func(t *testing.T) {
			id := "tls/" + tt.engine
			sm.Create(id, fmt.Sprintf(`{"engine":%q,"host":"127.0.0.1","port":%d,"username":%q,"password":%q,"dbname":%q,"tls":"verify-full"}`, tt.engine, tt.port, user, pw, tt.dbname))
			c := client.New(sm.Client)
			t.Setenv(dbtls.EnvCAFile, caFile)
			if got, err := tt.connect(c, id); err != nil || got != user {
				t.Fatalf("with the CA trusted: logged in as %q, %v", got, err)
			}
			t.Setenv(dbtls.EnvCAFile, otherFile)
			_, err := tt.connect(c, id)
			if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("with another CA trusted: %v, want the certificate refused", err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatal("the error holds the password")
			}
		})
	}
}

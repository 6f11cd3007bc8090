//go:build integration

package pgsql_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/internal/clienttest"
	"github.com/secretsaga/secretsaga/shared/client/pgsql"
)

// TestAgainstPostgres plays rotations on a real PostgreSQL server and the
// Secrets Manager emulator; every new connection through the connector
// must log in.
func TestAgainstPostgres(t *testing.T) {
	ctx := context.Background()
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
	clienttest.Run(t, clienttest.Target{
		Engine: "postgres", Host: pg.Host, Port: pg.Port, DBName: "postgres",
		SetPassword: func(t *testing.T, user, pw string) {
			t.Helper()
			var exists bool
			if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", user).Scan(&exists); err != nil {
				t.Fatal(err)
			}
			verb := "CREATE ROLE %s LOGIN PASSWORD '%s'"
			if exists {
				verb = "ALTER ROLE %s PASSWORD '%s'"
			}
			// ALTER ROLE takes no parameters; the test passwords have no quotes.
			q := strings.Replace(strings.Replace(verb, "%s", pgx.Identifier{user}.Sanitize(), 1), "%s", pw, 1)
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Fatalf("setting %s's password: %v", user, err)
			}
		},
		Connect: func(ctx context.Context, c *client.Cache, secretID string) (string, error) {
			conn, err := pgsql.NewConnector(c, secretID)
			if err != nil {
				return "", err
			}
			db := sql.OpenDB(conn)
			defer db.Close()
			var user string
			err = db.QueryRowContext(ctx, "SELECT current_user").Scan(&user)
			return user, err
		},
	})
}

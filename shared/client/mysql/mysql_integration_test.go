//go:build integration

package mysql_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/internal/clienttest"
	"github.com/secretsaga/secretsaga/shared/client/mysql"
)

// TestAgainstMariaDB plays rotations on a real MariaDB server and the
// Secrets Manager emulator; every new connection through the connector
// must log in.
func TestAgainstMariaDB(t *testing.T) {
	ctx := context.Background()
	m, err := standin.StartMariaDB(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	admin, err := m.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	clienttest.Run(t, clienttest.Target{
		Engine: "mariadb", Host: m.Host, Port: m.Port,
		SetPassword: func(t *testing.T, user, pw string) {
			t.Helper()
			for _, q := range []string{"CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?", "ALTER USER ?@'%' IDENTIFIED BY ?"} {
				if _, err := admin.ExecContext(ctx, q, user, pw); err != nil {
					t.Fatalf("setting %s's password: %v", user, err)
				}
			}
		},
		Connect: func(ctx context.Context, c *client.Cache, secretID string) (string, error) {
			conn, err := mysql.NewConnector(c, secretID)
			if err != nil {
				return "", err
			}
			db := sql.OpenDB(conn)
			defer db.Close()
			var user string
			err = db.QueryRowContext(ctx, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)").Scan(&user)
			return user, err
		},
	})
}

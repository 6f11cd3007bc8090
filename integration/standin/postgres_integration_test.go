//go:build integration

package standin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretsaga/secretsaga/integration/standin"
)

func TestPostgres(t *testing.T) {
	ctx := context.Background()
	pg, err := standin.StartPostgres(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if _, err := os.Stat(pg.Dir); !os.IsNotExist(err) {
			t.Errorf("%s still there after Close: %v", pg.Dir, err)
		}
	})
	t.Logf("PostgreSQL (%s) on %s:%d ready in %v (initdb %v)", pg.BinDir, pg.Host, pg.Port, pg.Started, pg.InitDB)

	admin, err := pgx.Connect(ctx, pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var version string
	if err := admin.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("server_version %s", version)

	// The password goes in as a literal: CREATE ROLE takes no parameters.
	if _, err := admin.Exec(ctx, `CREATE ROLE app LOGIN PASSWORD 'right-Passw0rd'`); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := admin.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = 'app'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "SCRAM-SHA-256$") {
		t.Errorf("password stored as %.14q..., want SCRAM-SHA-256", stored)
	}

	dsn := func(password string) string {
		return fmt.Sprintf("postgres://app:%s@%s:%d/postgres?sslmode=disable", password, pg.Host, pg.Port)
	}

	conn, err := pgx.Connect(ctx, dsn("right-Passw0rd"))
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	var who string
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT current_user, inet_client_addr() IS NOT NULL").Scan(&who, &ssl); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if who != "app" || !ssl {
		t.Errorf("current_user %q, over TCP %v; want app over TCP", who, ssl)
	}

	for _, pw := range []string{"wrong-Passw0rd", ""} {
		_, err = pgx.Connect(ctx, dsn(pw))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Errorf("password %q: got %v, want SQLSTATE 28P01 (invalid_password)", pw, err)
		} else {
			t.Logf("password %q: %s", pw, pgErr.Message)
		}
	}
}

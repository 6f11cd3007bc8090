package mysql

import (
	"errors"
	"fmt"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/secret"
)

func TestIsAuthFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"access denied", &mysqldrv.MySQLError{Number: 1045, Message: "Access denied for user 'app'@'10.0.0.1' (using password: YES)"}, true},
		{"plugin refused", &mysqldrv.MySQLError{Number: 1698}, true},
		{"wrapped", fmt.Errorf("connect: %w", &mysqldrv.MySQLError{Number: 1045}), true},
		{"no database access", &mysqldrv.MySQLError{Number: 1044}, false},
		{"too many connections", &mysqldrv.MySQLError{Number: 1040}, false},
		{"bad connection", mysqldrv.ErrInvalidConn, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsAuthFailure(tc.err); got != tc.want {
				t.Fatalf("IsAuthFailure(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	cr := client.Credential{Host: "db.internal", Port: 3307, Username: "app", Password: secret.NewPassword("Pw-1d4e")}
	for _, tc := range []struct {
		name   string
		opts   []Option
		dbname string
		want   string
	}{
		{"no dbname in the secret", nil, "", ""},
		{"the secret's dbname", nil, "orders", "orders"},
		{"the secret's dbname over the configured one", []Option{WithConfig(func(c *mysqldrv.Config) { c.DBName = "base" })}, "orders", "orders"},
		{"the configured one when the secret has none", []Option{WithConfig(func(c *mysqldrv.Config) { c.DBName = "base"; c.Timeout = time.Second })}, "", "base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc, err := NewConnector(client.New(nil), "s", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			c := dc.(*connector)
			cr := cr
			cr.DBName = tc.dbname
			cfg := c.config(cr)
			if cfg.Net != "tcp" || cfg.Addr != "db.internal:3307" || cfg.User != "app" || cfg.Passwd != "Pw-1d4e" || cfg.DBName != tc.want {
				t.Fatalf("config = %s %s user %s db %q", cfg.Net, cfg.Addr, cfg.User, cfg.DBName)
			}
			if c.Driver() == nil {
				t.Fatal("no driver")
			}
		})
	}
}

func TestNewConnectorBadInput(t *testing.T) {
	if _, err := NewConnector(nil, "s"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("nil cache: %v", err)
	}
	if _, err := NewConnector(client.New(nil), ""); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("empty id: %v", err)
	}
}

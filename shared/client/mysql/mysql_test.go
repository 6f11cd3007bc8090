package mysql

import (
	"crypto/tls"
	"crypto/x509"
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
			cfg, err := c.config(cr)
			if err != nil {
				t.Fatal(err)
			}
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

// TLS follows the secret as the rotation's engine does: its "tls" field,
// else verify-full for an AWS endpoint, else the configuration's own.
func TestConfigTLS(t *testing.T) {
	const rds = "db.abc.eu-west-1.rds.amazonaws.com"
	pool := x509.NewCertPool()
	own := WithConfig(func(c *mysqldrv.Config) { c.TLS = &tls.Config{RootCAs: pool} })
	tests := []struct {
		name       string
		host       string
		mode       secret.TLSMode
		opts       []Option
		keep       bool // cfg.TLS nil and cfg.TLSConfig wantString
		wantString string
		verify     bool
		ownRoots   bool
	}{
		{"no field, own host: the driver's default (none)", "db.internal", secret.TLSDefault, nil, true, "", false, false},
		{"no field, own host: the configured TLS", "db.internal", secret.TLSDefault, []Option{WithConfig(func(c *mysqldrv.Config) { c.TLSConfig = "skip-verify" })}, true, "skip-verify", false, false},
		{"no field, RDS host: verify-full", rds, secret.TLSDefault, nil, false, "", true, false},
		{"verify-full trusts the configured roots", "db.internal", secret.TLSVerifyFull, []Option{own}, false, "", true, true},
		{"require", rds, secret.TLSRequire, nil, false, "", false, false},
		{"disable", rds, secret.TLSDisable, []Option{own}, true, "false", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc, err := NewConnector(client.New(nil), "s", tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := dc.(*connector).config(client.Credential{Host: tt.host, Port: 3306, Username: "app", TLS: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.keep:
				if cfg.TLS != nil || cfg.TLSConfig != tt.wantString {
					t.Fatalf("TLS %+v tls=%q, want tls=%q", cfg.TLS, cfg.TLSConfig, tt.wantString)
				}
			case tt.verify:
				if cfg.TLS == nil || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != tt.host || cfg.TLS.RootCAs == nil || (cfg.TLS.RootCAs == pool) != tt.ownRoots {
					t.Fatalf("TLS %+v, want verification of %s", cfg.TLS, tt.host)
				}
			default:
				if cfg.TLS == nil || !cfg.TLS.InsecureSkipVerify {
					t.Fatalf("TLS %+v, want unverified TLS", cfg.TLS)
				}
			}
		})
	}
}

package pgsql

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/secret"
)

func TestIsAuthFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"invalid_password", &pgconn.PgError{Code: "28P01"}, true},
		{"invalid_authorization_specification", &pgconn.PgError{Code: "28000"}, true},
		{"wrapped", fmt.Errorf("failed to connect: %w", &pgconn.PgError{Code: "28P01"}), true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, false},
		{"no such database", &pgconn.PgError{Code: "3D000"}, false},
		{"network", errors.New("dial tcp: connection refused"), false},
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
	cr := client.Credential{Host: "db.internal", Port: 6543, Username: "app", Password: secret.NewPassword("Pw-9f2c"), DBName: "orders"}
	for _, tc := range []struct {
		name     string
		opts     []Option
		wantDB   string
		wantMore func(*testing.T, *connector)
	}{
		{"default: sslmode=prefer falls back to the secret's host", nil, "orders", func(t *testing.T, c *connector) {
			cfg, _ := c.config(cr)
			for _, fb := range cfg.Fallbacks {
				if fb.Host != "db.internal" || fb.Port != 6543 {
					t.Fatalf("fallback to %s:%d, want the secret's host", fb.Host, fb.Port)
				}
			}
		}},
		{"a DSN's settings are kept, its host is not", []Option{WithDSN("host=elsewhere port=1 user=x password=y dbname=base application_name=shop sslmode=disable")}, "orders", func(t *testing.T, c *connector) {
			cfg, _ := c.config(cr)
			if cfg.RuntimeParams["application_name"] != "shop" || cfg.TLSConfig != nil {
				t.Fatalf("DSN settings lost: %v", cfg.RuntimeParams)
			}
		}},
		{"WithConfig runs last", []Option{WithConfig(func(cfg *pgx.ConnConfig) { cfg.RuntimeParams["search_path"] = "app" })}, "orders", func(t *testing.T, c *connector) {
			if cfg, _ := c.config(cr); cfg.RuntimeParams["search_path"] != "app" {
				t.Fatalf("search_path = %q", cfg.RuntimeParams["search_path"])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc, err := NewConnector(client.New(nil), "s", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			c := dc.(*connector)
			cfg, err := c.config(cr)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != "db.internal" || cfg.Port != 6543 || cfg.User != "app" || cfg.Password != "Pw-9f2c" || cfg.Database != tc.wantDB {
				t.Fatalf("config = %s:%d user %s db %s", cfg.Host, cfg.Port, cfg.User, cfg.Database)
			}
			tc.wantMore(t, c)
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
	_, err := NewConnector(client.New(nil), "s", WithDSN("host=h password=Leak-pw-77 port=notaport"))
	if err == nil || strings.Contains(err.Error(), "Leak-pw-77") {
		t.Fatalf("bad DSN: %v", err)
	}
}

// TLS follows the secret as the rotation's engine does: its "tls" field,
// else verify-full for an AWS endpoint, else the DSN's sslmode.
func TestConfigTLS(t *testing.T) {
	const rds = "db.abc.eu-west-1.rds.amazonaws.com"
	tests := []struct {
		name      string
		host      string
		mode      secret.TLSMode
		dsn       string
		plain     bool // no TLS at all
		verify    bool
		fallbacks bool // the DSN's own sslmode stays, fallbacks included
	}{
		{"no field, own host: the DSN's prefer", "db.internal", secret.TLSDefault, "host=db.internal sslmode=prefer", false, false, true},
		{"no field, own host: the DSN's disable", "db.internal", secret.TLSDefault, "sslmode=disable", true, false, false},
		{"no field, RDS host: verify-full", rds, secret.TLSDefault, "sslmode=disable", false, true, false},
		{"verify-full", "db.internal", secret.TLSVerifyFull, "", false, true, false},
		{"require", rds, secret.TLSRequire, "", false, false, false},
		{"disable", rds, secret.TLSDisable, "sslmode=require", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc, err := NewConnector(client.New(nil), "s", WithDSN(tt.dsn))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := dc.(*connector).config(client.Credential{Host: tt.host, Port: 5432, Username: "app", TLS: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.plain:
				if cfg.TLSConfig != nil || len(cfg.Fallbacks) != 0 {
					t.Fatalf("TLS %+v with %d fallbacks, want plain TCP", cfg.TLSConfig, len(cfg.Fallbacks))
				}
			case tt.fallbacks:
				if len(cfg.Fallbacks) == 0 {
					t.Fatal("the DSN's sslmode=prefer lost its plain fallback")
				}
			case tt.verify:
				if tc := cfg.TLSConfig; tc == nil || tc.InsecureSkipVerify || tc.ServerName != tt.host || tc.RootCAs == nil || len(cfg.Fallbacks) != 0 {
					t.Fatalf("TLS %+v, want verification of %s and no fallback", tc, tt.host)
				}
			default:
				if tc := cfg.TLSConfig; tc == nil || !tc.InsecureSkipVerify || len(cfg.Fallbacks) != 0 {
					t.Fatalf("TLS %+v, want unverified TLS and no fallback", tc)
				}
			}
		})
	}
}

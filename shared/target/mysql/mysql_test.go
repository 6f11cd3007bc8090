package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	mysql "github.com/go-sql-driver/mysql"

	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

func TestNativePasswordHash(t *testing.T) {
	// MySQL's own PASSWORD('password') and PASSWORD('') of old.
	for pw, want := range map[string]string{
		"password": "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19",
		"":         "*BE1BDEC0AA74B4DCB079943E70528096CCA985F8",
	} {
		if got := NativePasswordHash(pw); got != want {
			t.Errorf("NativePasswordHash(%q) = %s, want %s", pw, got, want)
		}
	}
	// Safe inside any string literal, whatever the password holds.
	if h := NativePasswordHash(`it's\ "quoted"`); strings.ContainsAny(h, `'"\`) || len(h) != 41 {
		t.Errorf("hash %q", h)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{&mysql.MySQLError{Number: 1045, Message: "Access denied for user 'a'@'h' (using password: YES)"}, target.ErrAuthFailed},
		{&mysql.MySQLError{Number: 1698, Message: "Access denied for user 'root'@'localhost'"}, target.ErrAuthFailed},
		{&mysql.MySQLError{Number: 1862, Message: "Your password has expired"}, target.ErrAuthFailed},
		{&mysql.MySQLError{Number: 1040, Message: "Too many connections"}, target.ErrUnreachable},
		{&mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}, target.ErrUnreachable},
		{&mysql.MySQLError{Number: 2003, Message: "Can't connect"}, target.ErrUnreachable},
		{&mysql.MySQLError{Number: 2013, Message: "Lost connection"}, target.ErrUnreachable},
		{&mysql.MySQLError{Number: 1044, Message: "Access denied for user 'a'@'%' to database 'd'"}, target.ErrInvalid},
		{&mysql.MySQLError{Number: 1049, Message: "Unknown database 'd'"}, target.ErrInvalid},
		{&mysql.MySQLError{Number: 1227, Message: "Access denied; you need the CREATE USER privilege"}, target.ErrInvalid},
		{&mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}, target.ErrInvalid},
		{fmt.Errorf("wrapped: %w", &mysql.MySQLError{Number: 1045}), target.ErrAuthFailed},
		{mysql.ErrInvalidConn, target.ErrUnreachable},
		{driver.ErrBadConn, target.ErrUnreachable},
		{io.EOF, target.ErrUnreachable},
		{io.ErrUnexpectedEOF, target.ErrUnreachable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, target.ErrUnreachable},
		{&net.DNSError{Err: "no such host", Name: "db.example", IsNotFound: true}, target.ErrUnreachable},
		{context.DeadlineExceeded, target.ErrUnreachable},
		{mysql.ErrCleartextPassword, target.ErrInvalid},
		{mysql.ErrUnknownPlugin, target.ErrInvalid},
		{mysql.ErrNoTLS, target.ErrInvalid},
	}
	for _, c := range cases {
		got := classify(c.err)
		if !errors.Is(got, c.want) {
			t.Errorf("classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if got := classify(context.Canceled); !errors.Is(got, context.Canceled) || errors.Is(got, target.ErrUnreachable) {
		t.Errorf("canceled: %v", got)
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
	// The server's number stays in the text, for whoever reads the log.
	if got := classify(&mysql.MySQLError{Number: 1045, Message: "Access denied"}).Error(); !strings.Contains(got, "1045") {
		t.Errorf("text %q lacks the error number", got)
	}
}

func TestConfig(t *testing.T) {
	e := New(Options{})
	cfg, err := e.config(target.Credential{Host: "::1", Username: `a'b`, Password: secret.NewPassword("Pw-1"), DBName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "[::1]:3306" || cfg.Net != "tcp" || cfg.User != `a'b` || cfg.Passwd != "Pw-1" || cfg.DBName != "app" {
		t.Errorf("config %+v", cfg)
	}
	if !cfg.InterpolateParams || cfg.TLSConfig != "preferred" || cfg.Timeout != e.o.ConnectTimeout || cfg.ReadTimeout == 0 || cfg.WriteTimeout == 0 {
		t.Errorf("config %+v", cfg)
	}
	if cfg.AllowCleartextPasswords || cfg.AllowOldPasswords || cfg.MultiStatements || cfg.AllowAllFiles {
		t.Errorf("config allows more than it needs: %+v", cfg)
	}
	if _, err := New(Options{TLS: "no-such-mode"}).connect(context.Background(), target.Credential{Host: "h", Username: "u"}); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("unknown TLS mode: %v, want ErrInvalid", err)
	}
}

func TestRequestValidation(t *testing.T) {
	e := New(Options{})
	ctx := context.Background()
	login := target.Credential{Host: "127.0.0.1", Port: 1, Username: "u", Password: secret.NewPassword("Pw-1")}
	for name, req := range map[string]target.SetPasswordRequest{
		"no user":     {New: secret.NewPassword("x"), Logins: []target.Credential{login}},
		"no password": {Username: "u", Logins: []target.Credential{login}},
		"no login":    {Username: "u", New: secret.NewPassword("x")},
	} {
		if _, err := e.SetPassword(ctx, req); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: target.Credential{Username: "u"}}); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("no host: %v, want ErrInvalid", err)
	}
}

func TestEngineBasics(t *testing.T) {
	var e target.Engine = New(Options{})
	if e.Name() != "mysql" || e.DefaultPort() != 3306 || !e.Capabilities().SingleUser || !e.Capabilities().Alternating {
		t.Errorf("%s %d %+v", e.Name(), e.DefaultPort(), e.Capabilities())
	}
}

func TestCloneGrants(t *testing.T) {
	// SHOW GRANTS of MariaDB 10.11 for a user name that needs quoting.
	const like, clone, host = "app'q\\x`y", "app'q\\x`y_clone", "%"
	in := []string{
		"GRANT `r1` TO `app'q\\x``y`@`%`",
		"GRANT USAGE ON *.* TO `app'q\\x``y`@`%` IDENTIFIED BY PASSWORD '*2B602296A79E0A8784ACC5C88D92E46588CCA3C3' REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 100",
		"GRANT ALL PRIVILEGES ON `d1`.* TO `app'q\\x``y`@`%` WITH GRANT OPTION",
		"GRANT SELECT, INSERT (`n`) ON `d1`.`t` TO `app'q\\x``y`@`%`",
		"GRANT PROXY ON `root`@`localhost` TO `app'q\\x``y`@`%`",
		"SET DEFAULT ROLE `r1` FOR `app'q\\x``y`@`%`",
	}
	want := []string{
		"GRANT `r1` TO `app'q\\x``y_clone`@`%`",
		"GRANT USAGE ON *.* TO `app'q\\x``y_clone`@`%` REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 100",
		"GRANT ALL PRIVILEGES ON `d1`.* TO `app'q\\x``y_clone`@`%` WITH GRANT OPTION",
		"GRANT SELECT, INSERT (`n`) ON `d1`.`t` TO `app'q\\x``y_clone`@`%`",
		"SET DEFAULT ROLE `r1` FOR `app'q\\x``y_clone`@`%`",
	}
	got, err := CloneGrants(in, like, clone, host)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for name, tc := range map[string]struct {
		in   []string
		want []string
	}{
		"plain usage is implied": {[]string{"GRANT USAGE ON *.* TO `u`@`10.0.0.%` IDENTIFIED BY PASSWORD '*AB'"}, nil},
		"plugin with OR": {[]string{"GRANT USAGE ON *.* TO `u`@`10.0.0.%` IDENTIFIED VIA ed25519 USING 'a b WITH c' OR unix_socket WITH GRANT OPTION"},
			[]string{"GRANT USAGE ON *.* TO `v`@`10.0.0.%` WITH GRANT OPTION"}},
		"mysql 8 partial revoke": {[]string{"GRANT SELECT ON *.* TO `u`@`10.0.0.%`", "REVOKE SELECT ON `mysql`.* FROM `u`@`10.0.0.%`"},
			[]string{"GRANT SELECT ON *.* TO `v`@`10.0.0.%`", "REVOKE SELECT ON `mysql`.* FROM `v`@`10.0.0.%`"}},
		"mysql 5.7 quoting": {[]string{"GRANT SELECT ON `db`.* TO 'u'@'10.0.0.%'"}, []string{"GRANT SELECT ON `db`.* TO `v`@`10.0.0.%`"}},
		"grantee in an object name": {[]string{"GRANT SELECT ON `x TO ``u``@``10.0.0.%```.* TO `u`@`10.0.0.%`"},
			[]string{"GRANT SELECT ON `x TO ``u``@``10.0.0.%```.* TO `v`@`10.0.0.%`"}},
	} {
		got, err := CloneGrants(tc.in, "u", "v", "10.0.0.%")
		if err != nil || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, tc.want)
		}
	}
	for name, in := range map[string]string{
		"other grantee": "GRANT SELECT ON *.* TO `w`@`%`",
		"unknown line":  "ALTER USER `u`@`%` ACCOUNT LOCK",
		"unterminated":  "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*AB",
	} {
		if _, err := CloneGrants([]string{in}, "u", "v", "%"); !errors.Is(err, target.ErrInvalid) || strings.Contains(err.Error(), "*AB") {
			t.Errorf("%s: %v, want ErrInvalid without the hash", name, err)
		}
	}
}

// The secret's tls field, or the AWS endpoint default, decides the
// driver's TLS; only a secret with neither keeps Options.TLS.
func TestConfigTLS(t *testing.T) {
	const rds = "db.abc.us-east-1.rds.amazonaws.com"
	tests := []struct {
		host       string
		mode       secret.TLSMode
		wantString string // cfg.TLSConfig when cfg.TLS is nil
		verify     bool   // cfg.TLS verifies the chain and the host
		skip       bool   // cfg.TLS verifies nothing
	}{
		{"127.0.0.1", secret.TLSDefault, "preferred", false, false},
		{rds, secret.TLSDefault, "", true, false},
		{rds, secret.TLSRequire, "", false, true},
		{rds, secret.TLSDisable, "false", false, false},
		{"127.0.0.1", secret.TLSVerifyFull, "", true, false},
		{"127.0.0.1", secret.TLSDisable, "false", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.host+" "+string(tt.mode), func(t *testing.T) {
			cfg, err := New(Options{}).config(target.Credential{Host: tt.host, Username: "u", TLS: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.verify:
				if cfg.TLS == nil || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != tt.host || cfg.TLS.RootCAs == nil {
					t.Errorf("TLS %+v, want verification of %s", cfg.TLS, tt.host)
				}
			case tt.skip:
				if cfg.TLS == nil || !cfg.TLS.InsecureSkipVerify {
					t.Errorf("TLS %+v, want unverified TLS", cfg.TLS)
				}
			default:
				if cfg.TLS != nil || cfg.TLSConfig != tt.wantString {
					t.Errorf("TLS %+v, tls=%q; want tls=%q", cfg.TLS, cfg.TLSConfig, tt.wantString)
				}
			}
		})
	}
}

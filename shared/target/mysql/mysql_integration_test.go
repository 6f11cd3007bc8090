//go:build integration

package mysql_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/mysql"
)

// TestAgainstMariaDB runs the engine against a real server with the general
// query log on, and checks that no password the engine set reaches it.
func TestAgainstMariaDB(t *testing.T) {
	ctx := context.Background()
	m, err := standin.StartMariaDB(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	t.Logf("MariaDB started in %v", m.Started)
	admin, err := m.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	generalLog := filepath.Join(m.Dir, "general.log")
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := admin.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("SET GLOBAL general_log_file = ?", generalLog)
	exec("SET GLOBAL general_log = 1")

	// A user name that needs quoting: names must never be concatenated.
	const user = `app'q\`
	oldPw, newPw := "Old-pw-1c9d7e", "New-pw-58aa2b"
	exec("CREATE USER ?@'%' IDENTIFIED BY ?", user, oldPw)
	cred := func(pw string) target.Credential {
		return target.Credential{Host: m.Host, Port: m.Port, Username: user, Password: secret.NewPassword(pw)}
	}
	e := mysql.New(mysql.Options{})

	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); err != nil {
		t.Fatalf("old password: %v", err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(newPw)}); !errors.Is(err, target.ErrAuthFailed) {
		t.Fatalf("new password before set: err = %v, want ErrAuthFailed", err)
	}

	// BeforeChange failing: nothing changes.
	boom := errors.New("ledger down")
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: user, New: secret.NewPassword(newPw),
		Logins: []target.Credential{cred(oldPw)}, BeforeChange: func(context.Context) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("BeforeChange error: got %v", err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); err != nil {
		t.Fatalf("old password after a refused BeforeChange: %v", err)
	}

	// Logins in rotation order: pending (fails), current (works).
	calls := 0
	req := target.SetPasswordRequest{Username: user, New: secret.NewPassword(newPw),
		Logins:       []target.Credential{cred(newPw + "x"), cred(oldPw)},
		BeforeChange: func(context.Context) error { calls++; return nil }}
	begin := time.Now()
	res, err := e.SetPassword(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SetPassword took %v", time.Since(begin))
	if res.AlreadySet || res.LoggedInWith != 1 || calls != 1 {
		t.Errorf("first set: %+v, BeforeChange calls %d; want LoggedInWith 1, 1 call", res, calls)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(newPw)}); err != nil {
		t.Fatalf("new password after set: %v", err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); !errors.Is(err, target.ErrAuthFailed) {
		t.Fatalf("old password after set: err = %v, want ErrAuthFailed", err)
	}
	// Idempotent: running the step again changes nothing.
	calls = 0
	res, err = e.SetPassword(ctx, req)
	if err != nil || !res.AlreadySet || calls != 0 {
		t.Fatalf("second set: %+v, %v, BeforeChange calls %d; want AlreadySet, no call", res, err, calls)
	}
	// Revert (compensation): logins new → old; new works.
	res, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: user, New: secret.NewPassword(oldPw), Logins: []target.Credential{cred(newPw), cred(oldPw)}})
	if err != nil || res.AlreadySet || res.LoggedInWith != 0 {
		t.Fatalf("revert: %+v, %v", res, err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); err != nil {
		t.Fatalf("old password after revert: %v", err)
	}
	// No login works: a clear auth error that names the user, not a value.
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: user, New: secret.NewPassword("Third-pw-7f"), Logins: []target.Credential{cred("wrong-1"), cred("wrong-2")}})
	if !errors.Is(err, target.ErrAuthFailed) || strings.Contains(err.Error(), "wrong-1") || strings.Contains(err.Error(), "Third-pw-7f") {
		t.Fatalf("no login works: %v", err)
	}

	// An administrator changing another account (SET PASSWORD FOR), with
	// NO_BACKSLASH_ESCAPES on, so the driver must quote by doubling.
	exec("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')")
	exec("CREATE USER 'boss'@'%' IDENTIFIED BY 'Boss-pw-3e'")
	exec("GRANT ALL PRIVILEGES ON *.* TO 'boss'@'%' WITH GRANT OPTION")
	boss := target.Credential{Host: m.Host, Port: m.Port, Username: "boss", Password: secret.NewPassword("Boss-pw-3e")}
	res, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: user, New: secret.NewPassword(newPw), Logins: []target.Credential{boss}})
	if err != nil || res.LoggedInWith != 0 {
		t.Fatalf("set by an administrator: %+v, %v", res, err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(newPw)}); err != nil {
		t.Fatalf("new password after an administrator set it: %v", err)
	}
	// Two accounts of one name: which one is meant is not guessed.
	exec("CREATE USER 'dup'@'%' IDENTIFIED BY 'a'")
	exec("CREATE USER 'dup'@'localhost' IDENTIFIED BY 'b'")
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: "dup", New: secret.NewPassword(newPw), Logins: []target.Credential{boss}})
	if !errors.Is(err, target.ErrInvalid) {
		t.Fatalf("ambiguous account: %v, want ErrInvalid", err)
	}
	// An unknown database is a configuration error, not a retry.
	bad := cred(newPw)
	bad.DBName = "no_such_db"
	if err := e.Verify(ctx, target.VerifyRequest{Credential: bad}); !errors.Is(err, target.ErrInvalid) {
		t.Fatalf("unknown database: %v, want ErrInvalid", err)
	}

	// An account on the ed25519 plugin does not take a native hash; the
	// engine falls back to PASSWORD(), which the plugin understands.
	if _, err := admin.ExecContext(ctx, "INSTALL SONAME 'auth_ed25519'"); err != nil {
		t.Logf("ed25519 plugin not available, skipping that part: %v", err)
	} else {
		exec("CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('Ed-old-1')")
		ed := func(pw string) target.Credential {
			return target.Credential{Host: m.Host, Port: m.Port, Username: "edu", Password: secret.NewPassword(pw)}
		}
		edNew := `Ed-new-'q"\-2`
		res, err := e.SetPassword(ctx, target.SetPasswordRequest{Username: "edu", New: secret.NewPassword(edNew), Logins: []target.Credential{ed("Ed-old-1")}})
		if err != nil || res.LoggedInWith != 0 {
			t.Fatalf("ed25519 account: %+v, %v", res, err)
		}
		if err := e.Verify(ctx, target.VerifyRequest{Credential: ed(edNew)}); err != nil {
			t.Fatalf("ed25519 account, new password: %v", err)
		}
		var plugin string
		if err := admin.QueryRowContext(ctx, "SELECT plugin FROM mysql.user WHERE User = 'edu'").Scan(&plugin); err != nil || plugin != "ed25519" {
			t.Errorf("ed25519 account's plugin after the change: %q, %v", plugin, err)
		}
	}

	// With a password validation plugin, a hash is refused (it cannot be
	// checked); the engine falls back to the clear text, which the plugin
	// judges.
	if _, err := admin.ExecContext(ctx, "INSTALL SONAME 'simple_password_check'"); err != nil {
		t.Logf("simple_password_check plugin not available, skipping that part: %v", err)
	} else {
		exec("CREATE USER 'val'@'%' IDENTIFIED BY 'Val-pw-1a'")
		val := func(pw string) target.Credential {
			return target.Credential{Host: m.Host, Port: m.Port, Username: "val", Password: secret.NewPassword(pw)}
		}
		if _, err := e.SetPassword(ctx, target.SetPasswordRequest{Username: "val", New: secret.NewPassword("Val-pw-2b"), Logins: []target.Credential{val("Val-pw-1a")}}); err != nil {
			t.Fatalf("with a password validator: %v", err)
		}
		if err := e.Verify(ctx, target.VerifyRequest{Credential: val("Val-pw-2b")}); err != nil {
			t.Fatalf("with a password validator, new password: %v", err)
		}
		_, err := e.SetPassword(ctx, target.SetPasswordRequest{Username: "val", New: secret.NewPassword("weak"), Logins: []target.Credential{val("Val-pw-2b")}})
		if !errors.Is(err, target.ErrInvalid) || !strings.Contains(err.Error(), "1819") {
			t.Fatalf("weak password under a validator: %v, want error 1819 as ErrInvalid", err)
		}
		exec("UNINSTALL SONAME 'simple_password_check'")
	}

	// The general log saw statements with hashes only, never a password
	// the engine set natively.
	exec("SET GLOBAL general_log = 0")
	b, err := os.ReadFile(generalLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "SET PASSWORD") {
		t.Fatalf("no SET PASSWORD in the general log %s: logging is off?", generalLog)
	}
	if strings.Contains(string(b), newPw) {
		t.Errorf("general log holds a password set by the engine")
	}
	if strings.Count(string(b), oldPw) != 1 { // the admin's CREATE USER
		t.Errorf("general log holds the old password %d times, want 1 (CREATE USER)", strings.Count(string(b), oldPw))
	}
}

// TestUnreachable: nothing listening, and a listener that never answers,
// both fail with ErrUnreachable in bounded time.
func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	port, err := standin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e := mysql.New(mysql.Options{ConnectTimeout: time.Second})
	begin := time.Now()
	err = e.Verify(ctx, target.VerifyRequest{Credential: target.Credential{Host: "127.0.0.1", Port: port, Username: "u", Password: secret.NewPassword("Pw-unreach-1")}})
	if !errors.Is(err, target.ErrUnreachable) || strings.Contains(err.Error(), "Pw-unreach-1") {
		t.Fatalf("closed port: %v", err)
	}
	t.Logf("closed port: %v after %v", err, time.Since(begin))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	begin = time.Now()
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: "u", New: secret.NewPassword("Pw-new-unreach"),
		Logins:       []target.Credential{{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, Username: "u", Password: secret.NewPassword("Pw-unreach-1")}},
		BeforeChange: func(context.Context) error { t.Error("BeforeChange called without a login"); return nil }})
	took := time.Since(begin)
	if !errors.Is(err, target.ErrUnreachable) {
		t.Fatalf("silent server: %v, want ErrUnreachable", err)
	}
	if took > 5*time.Second {
		t.Errorf("silent server took %v with a 1s connect timeout", took)
	}
	t.Logf("silent server: %v after %v", err, took)
}

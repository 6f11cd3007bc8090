//go:build integration

package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

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
		// The ed25519 handshake once failed with "malformed packet" (an
		// unreachable server to the engine, so RetryableError, which the
		// state machine retries) in one CI run of five: retried here as
		// the saga would, and counted in the log so that it stays visible.
		var res target.SetPasswordResponse
		for attempt := 1; attempt <= 3; attempt++ {
			res, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: "edu", New: secret.NewPassword(edNew), Logins: []target.Credential{ed("Ed-old-1")}})
			if !errors.Is(err, target.ErrUnreachable) {
				break
			}
			t.Logf("ed25519 account, attempt %d: %v (retried, as the saga retries RetryableError)", attempt, err)
		}
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
	// A bound, not a timing claim: the connect timeout plus target.Identify's
	// protocol check (up to about 3 s) must end well before a driver default.
	if took > 15*time.Second {
		t.Errorf("silent server took %v with a 1s connect timeout and the protocol check", took)
	}
	t.Logf("silent server: %v after %v", err, took)
}

// TestEnsureUserMariaDB: the alternating strategy's clone has the user's
// grants (table, role, default role), no usable password until the master
// sets one, and is left alone once it exists.
func TestEnsureUserMariaDB(t *testing.T) {
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
	defer admin.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := admin.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const like, clone = "app`q'", "app`q'_clone"
	for _, q := range []string{
		"CREATE DATABASE d1", "CREATE TABLE d1.t (n int)", "CREATE TABLE d1.other (n int)",
		"CREATE ROLE writer", "GRANT INSERT ON d1.t TO writer",
		"CREATE ROLE stranger", "GRANT DELETE ON d1.t TO stranger",
		"CREATE USER 'master'@'%' IDENTIFIED BY 'Master-pw-1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'master'@'%' WITH GRANT OPTION",
		"GRANT CREATE USER ON *.* TO 'master'@'%'",
		"GRANT writer TO 'master'@'%' WITH ADMIN OPTION",
	} {
		exec(q)
	}
	exec("CREATE USER ?@'%' IDENTIFIED BY 'Like-pw-1' WITH MAX_QUERIES_PER_HOUR 1000", like)
	exec("GRANT SELECT ON d1.t TO ?@'%'", like)
	exec("GRANT writer TO ?@'%'", like)
	exec("SET DEFAULT ROLE writer FOR ?@'%'", like)

	e := mysql.New(mysql.Options{})
	master := target.Credential{Host: m.Host, Port: m.Port, Username: "master", Password: secret.NewPassword("Master-pw-1")}
	cred := func(user, pw string) target.Credential {
		return target.Credential{Host: m.Host, Port: m.Port, Username: user, Password: secret.NewPassword(pw)}
	}
	exists := func(user string) bool {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", user).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}

	boom := errors.New("ledger down")
	_, err = e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: clone, Like: like, BeforeChange: func(context.Context) error { return boom }})
	if !errors.Is(err, boom) || exists(clone) {
		t.Fatalf("BeforeChange refusing: %v, clone exists %v", err, exists(clone))
	}

	calls := 0
	req := target.EnsureUserRequest{Master: master, Username: clone, Like: like, BeforeChange: func(context.Context) error { calls++; return nil }}
	begin := time.Now()
	res, err := e.EnsureUser(ctx, req)
	if err != nil || !res.Created || calls != 1 {
		t.Fatalf("EnsureUser: %+v, %v, BeforeChange calls %d", res, err, calls)
	}
	t.Logf("EnsureUser took %v", time.Since(begin))
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(clone, "")}); !errors.Is(err, target.ErrAuthFailed) {
		t.Fatalf("the clone logs in with an empty password before SetPassword: %v", err)
	}
	sp, err := e.SetPassword(ctx, target.SetPasswordRequest{Username: clone, New: secret.NewPassword("Clone-pw-2"), Logins: []target.Credential{master}})
	if err != nil || sp.LoggedInWith != 0 {
		t.Fatalf("master setting the clone's password: %+v, %v", sp, err)
	}
	// The clone reads and (through the default role) writes what the user
	// may, and nothing else.
	c, err := sql.Open("mysql", dsn(m, clone, "Clone-pw-2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for q, ok := range map[string]bool{
		"SELECT COUNT(*) FROM d1.t":     true,
		"INSERT INTO d1.t VALUES (1)":   true,
		"SELECT COUNT(*) FROM d1.other": false,
		"DELETE FROM d1.t":              false,
	} {
		if _, err := c.ExecContext(ctx, q); (err == nil) != ok {
			t.Errorf("clone: %s: %v, want allowed %v", q, err, ok)
		}
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(like, "Like-pw-1")}); err != nil {
		t.Fatalf("the user lost its login: %v", err)
	}
	grants := func(user string) string {
		rows, err := admin.QueryContext(ctx, "SHOW GRANTS FOR ?@'%'", user)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var all []string
		for rows.Next() {
			var l string
			_ = rows.Scan(&l)
			if i := strings.Index(l, " IDENTIFIED BY PASSWORD '"); i >= 0 {
				l = l[:i] + l[i+len(" IDENTIFIED BY PASSWORD '*")+41:]
			}
			all = append(all, strings.ReplaceAll(l, "`app``q'_clone`", "`app``q'`"))
		}
		sort.Strings(all) // SHOW GRANTS orders by when a grant was made
		return strings.Join(all, "\n")
	}
	if g, w := grants(clone), grants(like); g != w {
		t.Errorf("clone's grants\n%s\nuser's\n%s", g, w)
	}

	// Existing clone: not created again; the grants are replayed (GRANT
	// only adds), so they stay identical, and a grant the user got since
	// reaches the clone.
	calls = 0
	exec("CREATE TABLE d1.later (n int)")
	exec("GRANT SELECT ON d1.later TO ?@'%'", like)
	if res, err := e.EnsureUser(ctx, req); err != nil || res.Created || calls != 1 {
		t.Fatalf("second EnsureUser: %+v, %v, BeforeChange calls %d", res, err, calls)
	}
	if g, w := grants(clone), grants(like); g != w {
		t.Errorf("after a replay, clone's grants\n%s\nuser's\n%s", g, w)
	}

	// A clone cut off between CREATE USER and its grants (a crashed set
	// step) is healed by the next call.
	exec("REVOKE SELECT ON d1.later FROM ?@'%'", clone)
	if _, err := e.EnsureUser(ctx, req); err != nil {
		t.Fatal(err)
	}
	if g, w := grants(clone), grants(like); g != w {
		t.Errorf("a half-made clone was not healed:\n%s\nuser's\n%s", g, w)
	}

	// A role the master may not grant: the clone is dropped again, so a
	// retry does not find it without its grants.
	exec("CREATE USER 'app2'@'%' IDENTIFIED BY 'App2-pw-1'")
	exec("GRANT stranger TO 'app2'@'%'")
	_, err = e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: "app2_clone", Like: "app2"})
	if !errors.Is(err, target.ErrInvalid) || errors.Is(err, target.ErrAuthFailed) || exists("app2_clone") {
		t.Fatalf("uncopyable grant: %v, clone exists %v", err, exists("app2_clone"))
	}
	t.Logf("uncopyable grant: %v", err)

	// No user to copy, or two accounts of that name: ErrInvalid.
	exec("CREATE USER 'dup'@'%' IDENTIFIED BY 'a'")
	exec("CREATE USER 'dup'@'localhost' IDENTIFIED BY 'b'")
	for _, l := range []string{"nobody", "dup"} {
		if _, err := e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: l + "_clone", Like: l}); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("like %s: %v, want ErrInvalid", l, err)
		}
	}
	// A master that cannot log in.
	bad := master
	bad.Password = secret.NewPassword("wrong")
	if _, err := e.EnsureUser(ctx, target.EnsureUserRequest{Master: bad, Username: "x_clone", Like: "x"}); !errors.Is(err, target.ErrAuthFailed) {
		t.Errorf("master with a wrong password: %v, want ErrAuthFailed", err)
	}
}

func dsn(m *standin.MariaDB, user, pw string) string {
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pw, "tcp", net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
	return cfg.FormatDSN()
}

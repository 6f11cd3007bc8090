//go:build integration

package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/redis"
)

// TestAgainstRedis runs the engine against a real server with every
// command in the slow log, and checks that no password the engine set
// reaches it.
func TestAgainstRedis(t *testing.T) {
	ctx := context.Background()
	r, err := standin.StartRedis(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	t.Logf("Redis started in %v", r.Started)
	admin := r.AdminClient()
	defer admin.Close()
	do := func(args ...any) {
		t.Helper()
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args[:2], err)
		}
	}
	do("CONFIG", "SET", "slowlog-log-slower-than", "0")
	do("CONFIG", "SET", "slowlog-max-len", "10000")

	// A user name with a quote: arguments are never parsed as a line.
	const user = `app'q"x`
	oldPw, newPw := "Old-pw-1c9d7e", "New-pw-58aa2b"
	do("ACL", "SETUSER", user, "on", ">"+oldPw, "~*", "&*", "+@all")
	cred := func(pw string) target.Credential {
		return target.Credential{Host: r.Host, Port: r.Port, Username: user, Password: secret.NewPassword(pw)}
	}
	e := redis.New(redis.Options{})

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
	// The user's only password is the new one, stored as its hash.
	rules, err := admin.Do(ctx, "ACL", "GETUSER", user).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rules); !strings.Contains(got, "["+redis.PasswordHash(newPw)+"]") {
		t.Errorf("ACL GETUSER: %s; want the new password's hash alone", got)
	}
	calls = 0
	res, err = e.SetPassword(ctx, req)
	if err != nil || !res.AlreadySet || calls != 0 {
		t.Fatalf("second set: %+v, %v, BeforeChange calls %d; want AlreadySet, no call", res, err, calls)
	}
	res, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: user, New: secret.NewPassword(oldPw), Logins: []target.Credential{cred(newPw), cred(oldPw)}})
	if err != nil || res.AlreadySet || res.LoggedInWith != 0 {
		t.Fatalf("revert: %+v, %v", res, err)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: cred(oldPw)}); err != nil {
		t.Fatalf("old password after revert: %v", err)
	}
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: user, New: secret.NewPassword("Third-pw-7f"), Logins: []target.Credential{cred("wrong-1"), cred("wrong-2")}})
	if !errors.Is(err, target.ErrAuthFailed) || strings.Contains(err.Error(), "wrong-1") || strings.Contains(err.Error(), "Third-pw-7f") {
		t.Fatalf("no login works: %v", err)
	}

	// A user without +acl cannot change its password: a configuration
	// error, and the hash is not in the message.
	do("ACL", "SETUSER", "limited", "on", ">Lim-pw-1", "~*", "+@all", "-@admin")
	lim := func(pw string) target.Credential {
		return target.Credential{Host: r.Host, Port: r.Port, Username: "limited", Password: secret.NewPassword(pw)}
	}
	_, err = e.SetPassword(ctx, target.SetPasswordRequest{Username: "limited", New: secret.NewPassword("Lim-pw-2"), Logins: []target.Credential{lim("Lim-pw-1")}})
	if !errors.Is(err, target.ErrInvalid) || !strings.Contains(err.Error(), "NOPERM") || strings.Contains(err.Error(), redis.PasswordHash("Lim-pw-2")) {
		t.Fatalf("user without +acl: %v, want NOPERM as ErrInvalid", err)
	}
	// DBName picks the logical database.
	c := cred(oldPw)
	c.DBName = "3"
	if err := e.Verify(ctx, target.VerifyRequest{Credential: c}); err != nil {
		t.Fatalf("database 3: %v", err)
	}
	c.DBName = "99999"
	if err := e.Verify(ctx, target.VerifyRequest{Credential: c}); !errors.Is(err, target.ErrInvalid) {
		t.Fatalf("database out of range: %v, want ErrInvalid", err)
	}

	// The slow log (every command) never held a password the engine set.
	entries, err := admin.SlowLogGet(ctx, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	sawSetUser := false
	for _, en := range entries {
		line := strings.Join(en.Args, " ")
		if strings.Contains(line, "SETUSER") || strings.Contains(line, "setuser") {
			sawSetUser = true
		}
		if strings.Contains(line, newPw) {
			t.Errorf("slow log holds a password set by the engine: %q", en.Args[:min(3, len(en.Args))])
		}
	}
	if !sawSetUser {
		t.Logf("no ACL SETUSER in the slow log (%d entries): Redis redacts it", len(entries))
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
	e := redis.New(redis.Options{ConnectTimeout: time.Second})
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

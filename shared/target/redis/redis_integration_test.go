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

	goredis "github.com/redis/go-redis/v9"

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

// TestEnsureUserRedis: the alternating strategy's clone has the user's
// ACL rules (keys, channels, commands, selectors), no password until the
// master sets one, and is left alone once it exists.
func TestEnsureUserRedis(t *testing.T) {
	ctx := context.Background()
	r, err := standin.StartRedis(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	admin := r.AdminClient()
	defer admin.Close()
	do := func(args ...any) {
		t.Helper()
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args[:3], err)
		}
	}
	const like, clone = `app'q"x`, `app'q"x_clone`
	do("ACL", "SETUSER", "master", "on", ">Master-pw-1", "~*", "&*", "+@all")
	do("ACL", "SETUSER", like, "on", ">Like-pw-1", "~app:*", "%R~ro:*", "&news:*", "-@all", "+ping", "+get", "+set", "+config|get", "(~sel:* +hget)")
	master := target.Credential{Host: r.Host, Port: r.Port, Username: "master", Password: secret.NewPassword("Master-pw-1")}
	e := redis.New(redis.Options{})
	exists := func(user string) bool {
		err := admin.Do(ctx, "ACL", "GETUSER", user).Err()
		if err != nil && !errors.Is(err, goredis.Nil) {
			t.Fatal(err)
		}
		return err == nil
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
	// Same rules; no password yet, so no login at all.
	rules := func(user string) string {
		v, err := admin.Do(ctx, "ACL", "GETUSER", user).Slice()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(v); i += 2 {
			if v[i] == "passwords" {
				v[i+1] = nil
			}
		}
		return fmt.Sprint(v)
	}
	if got, want := rules(clone), rules(like); got != want {
		t.Errorf("clone's rules\n%s\nuser's\n%s", got, want)
	}
	for _, pw := range []string{"", "Like-pw-1"} {
		c := target.Credential{Host: r.Host, Port: r.Port, Username: clone, Password: secret.NewPassword(pw)}
		if err := e.Verify(ctx, target.VerifyRequest{Credential: c}); !errors.Is(err, target.ErrAuthFailed) && !errors.Is(err, target.ErrInvalid) {
			t.Errorf("clone logs in with %q before SetPassword: %v", pw, err)
		}
	}
	sp, err := e.SetPassword(ctx, target.SetPasswordRequest{Username: clone, New: secret.NewPassword("Clone-pw-2"), Logins: []target.Credential{master}})
	if err != nil || sp.LoggedInWith != 0 {
		t.Fatalf("master setting the clone's password: %+v, %v", sp, err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr(), Username: clone, Password: "Clone-pw-2", Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "app:k", "v", 0).Err(); err != nil {
		t.Errorf("clone SET on an allowed key: %v", err)
	}
	if err := c.Set(ctx, "other:k", "v", 0).Err(); err == nil {
		t.Errorf("clone SET on a key outside its patterns worked")
	}
	if err := c.Del(ctx, "app:k").Err(); err == nil {
		t.Errorf("clone ran DEL, which its rules do not allow")
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: target.Credential{Host: r.Host, Port: r.Port, Username: like, Password: secret.NewPassword("Like-pw-1")}}); err != nil {
		t.Fatalf("the user lost its login: %v", err)
	}

	calls = 0
	if res, err := e.EnsureUser(ctx, req); err != nil || res.Created || calls != 0 {
		t.Fatalf("second EnsureUser: %+v, %v, BeforeChange calls %d", res, err, calls)
	}
	if _, err := e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: "nobody_clone", Like: "nobody"}); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("no user to copy: %v, want ErrInvalid", err)
	}
	// A master without +acl: a configuration error.
	do("ACL", "SETUSER", "weak", "on", ">Weak-pw-1", "~*", "+@all", "-@admin")
	weak := target.Credential{Host: r.Host, Port: r.Port, Username: "weak", Password: secret.NewPassword("Weak-pw-1")}
	if _, err := e.EnsureUser(ctx, target.EnsureUserRequest{Master: weak, Username: "x_clone", Like: like}); !errors.Is(err, target.ErrInvalid) || exists("x_clone") {
		t.Errorf("master without +acl: %v, want ErrInvalid", err)
	}
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

// serverErr is a reply error as redigo returns it.
func serverErr(msg string) error { return redigo.Error(msg) }

func TestPasswordHash(t *testing.T) {
	// sha256("foobar"), as `echo -n foobar | sha256sum` prints it; Redis
	// wants exactly 64 lower-case hex digits after '#'.
	if got := PasswordHash("foobar"); got != "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2" {
		t.Errorf("PasswordHash = %s", got)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{serverErr("WRONGPASS invalid username-password pair or user is disabled."), target.ErrAuthFailed},
		{fmt.Errorf("failed to authenticate: %w", serverErr("WRONGPASS invalid username-password pair or user is disabled.")), target.ErrAuthFailed},
		{serverErr("ERR invalid password"), target.ErrAuthFailed},
		{serverErr("NOAUTH Authentication required."), target.ErrAuthFailed},
		{serverErr("NOPERM User app has no permissions to run the 'acl|setuser' command"), target.ErrInvalid},
		{serverErr("ERR DB index is out of range"), target.ErrInvalid},
		{serverErr("ERR unknown command 'ACL'"), target.ErrInvalid},
		{serverErr("READONLY You can't write against a read only replica."), target.ErrInvalid},
		{serverErr("LOADING Redis is loading the dataset in memory"), target.ErrUnreachable},
		{serverErr("BUSY Redis is busy running a script."), target.ErrUnreachable},
		{serverErr("ERR max number of clients reached"), target.ErrUnreachable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, target.ErrUnreachable},
		{syscall.ECONNRESET, target.ErrUnreachable},
		{io.EOF, target.ErrUnreachable},
		{errors.New("redigo: unexpected response line (possible server error or unsupported concurrent read by application)"), target.ErrUnreachable},
		{context.DeadlineExceeded, target.ErrUnreachable},
	}
	for _, c := range cases {
		if got := classify(c.err); !errors.Is(got, c.want) {
			t.Errorf("classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if got := classify(context.Canceled); !errors.Is(got, context.Canceled) || errors.Is(got, target.ErrUnreachable) {
		t.Errorf("canceled: %v", got)
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}

func TestScrub(t *testing.T) {
	h := PasswordHash("Pw-1")
	err := scrub(classify(serverErr("ERR Error in ACL SETUSER modifier '#"+h+"': Syntax error")), h)
	if !errors.Is(err, target.ErrInvalid) || strings.Contains(err.Error(), h) || !strings.Contains(err.Error(), "<hash>") {
		t.Errorf("scrub: %v", err)
	}
	plain := classify(serverErr("NOPERM no"))
	if got := scrub(plain, h); got != plain {
		t.Errorf("scrub changed an error without the hash: %v", got)
	}
}

func TestOptions(t *testing.T) {
	e := New(Options{})
	for db, want := range map[string]int{"": 0, "3": 3, "app": 0, "-1": 0} {
		o, err := e.options(target.Credential{Host: "::1", Username: "u", Password: secret.NewPassword("Pw-1"), DBName: db})
		if err != nil {
			t.Fatal(err)
		}
		if o.DB != want {
			t.Errorf("DBName %q: DB %d, want %d", db, o.DB, want)
		}
		if o.Addr != "[::1]:6379" || o.Username != "u" || o.Password != "Pw-1" || o.Timeout != e.o.ConnectTimeout {
			t.Errorf("options %+v", o)
		}
	}
	if _, err := e.options(target.Credential{Host: "h"}); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("no username: %v, want ErrInvalid", err)
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
}

func TestEngineBasics(t *testing.T) {
	var e target.Engine = New(Options{})
	if e.Name() != "redis" || e.DefaultPort() != 6379 || !e.Capabilities().SingleUser || !e.Capabilities().Alternating {
		t.Errorf("%s %d %+v", e.Name(), e.DefaultPort(), e.Capabilities())
	}
}

func TestCloneRules(t *testing.T) {
	// ACL GETUSER replies of Redis 7.0 over RESP2 (passwords are hashes
	// and never copied).
	u1 := []any{"flags", []any{"on", "skip-sanitize-payload"}, "passwords", []any{"30c952fa"},
		"commands", "-@all +get +ping +config|get +set", "keys", "~app:* %R~ro:*", "channels", "&chan:*",
		"selectors", []any{[]any{"commands", "-@all +hget", "keys", "~sel:*", "channels", ""}}}
	want := "on skip-sanitize-payload ~app:* %R~ro:* &chan:* -@all +get +ping +config|get +set (resetchannels ~sel:* -@all +hget)"
	if got, err := CloneRules(u1); err != nil || strings.Join(got, " ") != want {
		t.Errorf("Redis 7: %q, %v; want %q", got, err, want)
	}
	// RESP3 map, nopass dropped.
	u2 := map[any]any{"flags": []any{"off", "nopass"}, "passwords": []any{}, "commands": "+@all -debug", "keys": "~*", "channels": "&*", "selectors": []any{}}
	if got, err := CloneRules(u2); err != nil || strings.Join(got, " ") != "off ~* &* +@all -debug" {
		t.Errorf("RESP3: %q, %v", got, err)
	}
	// Redis 6.2: patterns as lists, all* flags.
	u3 := []any{"flags", []any{"on", "allkeys", "allchannels"}, "passwords", []any{}, "commands", "+@all", "keys", []any{"*"}, "channels", []any{"*"}}
	if got, err := CloneRules(u3); err != nil || strings.Join(got, " ") != "on ~* &* ~* &* +@all" {
		t.Errorf("Redis 6: %q, %v", got, err)
	}
	for name, bad := range map[string]any{
		"space in a pattern": []any{"flags", []any{"on"}, "commands", "+@all", "keys", "~a b", "channels", ""},
		"unknown flag":       []any{"flags", []any{"on", "future-flag"}, "commands", "+@all", "keys", "", "channels", ""},
		"no commands":        []any{"flags", []any{"on"}, "keys", "", "channels", ""},
		"odd list":           []any{"flags"},
		"not a reply":        "user x on",
	} {
		if _, err := CloneRules(bad); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// The secret's tls field, or the AWS endpoint default (ElastiCache), turns
// TLS on; a secret with neither keeps Options.TLS (nil: plain TCP).
func TestOptionsTLS(t *testing.T) {
	const cache = "master.r.abc.use1.cache.amazonaws.com"
	tests := []struct {
		host   string
		mode   secret.TLSMode
		plain  bool
		verify bool
	}{
		{"127.0.0.1", secret.TLSDefault, true, false},
		{cache, secret.TLSDefault, false, true},
		{cache, secret.TLSRequire, false, false},
		{cache, secret.TLSDisable, true, false},
		{"127.0.0.1", secret.TLSVerifyFull, false, true},
		{"127.0.0.1", secret.TLSRequire, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.host+" "+string(tt.mode), func(t *testing.T) {
			o, err := New(Options{}).options(target.Credential{Host: tt.host, Username: "u", TLS: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.plain:
				if o.TLSConfig != nil {
					t.Errorf("TLSConfig %+v, want plain TCP", o.TLSConfig)
				}
			case tt.verify:
				if o.TLSConfig == nil || o.TLSConfig.InsecureSkipVerify || o.TLSConfig.ServerName != tt.host || o.TLSConfig.RootCAs == nil {
					t.Errorf("TLSConfig %+v, want verification of %s", o.TLSConfig, tt.host)
				}
			default:
				if o.TLSConfig == nil || !o.TLSConfig.InsecureSkipVerify {
					t.Errorf("TLSConfig %+v, want unverified TLS", o.TLSConfig)
				}
			}
		})
	}
}

// textReply gives CloneRules the shape it reads whatever the client:
// redigo's bulk strings ([]byte), nested in arrays, become strings.
func TestTextReply(t *testing.T) {
	got := textReply([]any{[]byte("flags"), []any{[]byte("on")}, []byte("commands"), []byte("+@all"), int64(3), nil})
	want := []any{"flags", []any{"on"}, "commands", "+@all", int64(3), nil}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("textReply = %#v, want %#v", got, want)
	}
}

package redis

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/shared/client"
)

// fakeSM serves one secret's stages.
type fakeSM map[string]string // stage -> value

func (f fakeSM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	v, ok := f[aws.ToString(in.VersionStage)]
	if !ok || aws.ToString(in.SecretId) != "cache" {
		return nil, &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: &v, VersionId: aws.String("v-" + aws.ToString(in.VersionStage)),
		VersionStages: []string{aws.ToString(in.VersionStage)}}, nil
}

func redisValue(engine, user, pw string) string {
	return fmt.Sprintf(`{"engine":%q,"host":"cache.internal","username":%q,"password":%q}`, engine, user, pw)
}

// fakeRedis answers AUTH on one side of a pipe: +OK for want, WRONGPASS
// otherwise; it records the passwords tried.
func fakeRedis(t *testing.T, conn net.Conn, want string, tried *[]string, mu *sync.Mutex) {
	t.Helper()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		var args []string
		for range n {
			if _, err := r.ReadString('\n'); err != nil { // $len
				return
			}
			arg, err := r.ReadString('\n')
			if err != nil {
				return
			}
			args = append(args, strings.TrimSuffix(arg, "\r\n"))
		}
		pw := args[len(args)-1]
		mu.Lock()
		*tried = append(*tried, pw)
		mu.Unlock()
		reply := "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
		if pw == want {
			reply = "+OK\r\n"
		}
		if _, err := io.WriteString(conn, reply); err != nil {
			return
		}
	}
}

func TestLoginDial(t *testing.T) {
	sm := fakeSM{
		client.StageCurrent:  redisValue("redis", "app", "Cur-pw-1"),
		client.StagePending:  redisValue("redis", "app", "Pend-pw-2"),
		client.StagePrevious: redisValue("redis", "app", "Old-pw-0"),
	}
	for _, tc := range []struct {
		name    string
		server  string
		want    []string // passwords tried, in order
		wantErr error
	}{
		{"current", "Cur-pw-1", []string{"Cur-pw-1"}, nil},
		{"pending, on the same connection", "Pend-pw-2", []string{"Cur-pw-1", "Pend-pw-2"}, nil},
		{"previous", "Old-pw-0", []string{"Cur-pw-1", "Pend-pw-2", "Old-pw-0"}, nil},
		// AWSCURRENT once more: a rollback may have set it back meanwhile.
		{"none", "other", []string{"Cur-pw-1", "Pend-pw-2", "Old-pw-0", "Cur-pw-1"}, client.ErrAuthFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client.New(sm)
			opt, err := Options(c, "cache", &goredis.Options{Username: "ignored", Password: "ignored"})
			if err != nil {
				t.Fatal(err)
			}
			if opt.Addr != "cache.internal:6379" || opt.Username != "" || opt.Password != "" {
				t.Fatalf("options: addr %q user %q password set %v", opt.Addr, opt.Username, opt.Password != "")
			}
			var mu sync.Mutex
			var tried []string
			dials := 0
			dial := func(context.Context, string, string) (net.Conn, error) {
				dials++
				a, b := net.Pipe()
				go fakeRedis(t, b, tc.server, &tried, &mu)
				return a, nil
			}
			conn, err := loginDial(context.Background(), c, "cache", opt, dial, "tcp", opt.Addr)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if conn != nil {
				_ = conn.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(tried) != fmt.Sprint(tc.want) || dials != 1 {
				t.Fatalf("tried %v over %d dials, want %v over one", tried, dials, tc.want)
			}
			if err != nil {
				for _, pw := range []string{"Cur-pw-1", "Pend-pw-2", "Old-pw-0"} {
					if strings.Contains(err.Error(), pw) {
						t.Fatalf("error holds a password: %v", err)
					}
				}
			}
		})
	}
}

func TestAuthReplies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reply    string
		wantErr  bool
		authFail bool
	}{
		{"ok", "+OK\r\n", false, false},
		{"wrongpass", "-WRONGPASS invalid username-password pair or user is disabled.\r\n", true, true},
		{"old server", "-ERR invalid password\r\n", true, true},
		{"no password configured", "-ERR AUTH <password> called without any password configured for the default user.\r\n", true, false},
		{"not redis", "HTTP/1.1 400 Bad Request\r\n", true, false},
		{"closed", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			done := make(chan struct{})
			go func() {
				buf := make([]byte, 256)
				_, _ = b.Read(buf)
				_, _ = io.WriteString(b, tc.reply)
				if tc.reply == "" {
					_ = b.Close() // the server hangs up instead of answering
				}
				<-done
				_ = b.Close()
			}()
			err := auth(context.Background(), a, "app", "Secret-pw-5", 5e9)
			close(done)
			if (err != nil) != tc.wantErr || IsAuthFailure(err) != tc.authFail {
				t.Fatalf("err = %v (auth failure %v)", err, IsAuthFailure(err))
			}
			if err != nil && strings.Contains(err.Error(), "Secret-pw-5") {
				t.Fatalf("error holds the password: %v", err)
			}
		})
	}
}

func TestOptionsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *client.Cache
		id   string
		want error
	}{
		{"nil cache", nil, "cache", client.ErrUnavailable},
		{"empty id", client.New(fakeSM{}), "", client.ErrNotFound},
		{"missing", client.New(fakeSM{}), "cache", client.ErrNotFound},
		{"wrong engine", client.New(fakeSM{client.StageCurrent: redisValue("postgres", "app", "pw-3")}), "cache", client.ErrWrongEngine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClient(tc.c, tc.id, nil); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TLS follows the secret as the rotation's engine does: its "tls" field,
// else verify-full for an ElastiCache endpoint, else base's TLSConfig.
func TestOptionsTLS(t *testing.T) {
	const elasticache = "master.r.abc.use1.cache.amazonaws.com"
	pool := x509.NewCertPool()
	value := func(host, mode string) string {
		if mode == "" {
			return fmt.Sprintf(`{"engine":"redis","host":%q,"username":"u","password":"pw-1"}`, host)
		}
		return fmt.Sprintf(`{"engine":"redis","host":%q,"username":"u","password":"pw-1","tls":%q}`, host, mode)
	}
	tests := []struct {
		name       string
		value      string
		base       *goredis.Options
		plain      bool
		verifyHost string
		ownRoots   bool
	}{
		{"no field, own host: plain", value("cache.internal", ""), nil, true, "", false},
		{"no field, own host: base's TLS", value("cache.internal", ""), &goredis.Options{TLSConfig: &tls.Config{ServerName: "x"}}, false, "x", false},
		{"no field, ElastiCache: verify-full", value(elasticache, ""), nil, false, elasticache, false},
		{"verify-full trusts base's roots", value("cache.internal", "verify-full"), &goredis.Options{TLSConfig: &tls.Config{RootCAs: pool}}, false, "cache.internal", true},
		{"verify-full names the host of base's address", value("cache.internal", "verify-full"), &goredis.Options{Addr: "replica.internal:6380"}, false, "replica.internal", false},
		{"require", value(elasticache, "require"), nil, false, "", false},
		{"disable", value(elasticache, "disable"), &goredis.Options{TLSConfig: &tls.Config{}}, true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, err := Options(client.New(fakeSM{client.StageCurrent: tt.value}), "cache", tt.base)
			if err != nil {
				t.Fatal(err)
			}
			tc := opt.TLSConfig
			switch {
			case tt.plain:
				if tc != nil {
					t.Fatalf("TLSConfig %+v, want plain TCP", tc)
				}
			case tt.verifyHost != "":
				if tc == nil || tc.InsecureSkipVerify || tc.ServerName != tt.verifyHost || (tc.RootCAs == pool) != tt.ownRoots {
					t.Fatalf("TLSConfig %+v, want verification of %s", tc, tt.verifyHost)
				}
			default:
				if tc == nil || !tc.InsecureSkipVerify {
					t.Fatalf("TLSConfig %+v, want unverified TLS", tc)
				}
			}
		})
	}
}

// A TLS dial that fails hands back a nil *tls.Conn, which is a non-nil
// net.Conn: the login reports the dial's error instead of panicking on it.
func TestLoginDialFailedTLS(t *testing.T) {
	c := client.New(fakeSM{client.StageCurrent: redisValue("redis", "app", "Cur-pw-1")})
	opt, err := Options(c, "cache", nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("tls: failed to verify certificate")
	dial := func(context.Context, string, string) (net.Conn, error) {
		var tc *tls.Conn
		return tc, refused
	}
	if _, err := loginDial(context.Background(), c, "cache", opt, dial, "tcp", opt.Addr); !errors.Is(err, refused) {
		t.Fatalf("err = %v, want the dial's error", err)
	}
}

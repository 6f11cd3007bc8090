//go:build integration

package standin

import (
	"context"
	"os"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

func TestStartRedis(t *testing.T) {
	ctx := context.Background()
	r, err := StartRedis(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	t.Logf("Redis on %s in %v", r.Addr(), r.Started)

	admin := r.AdminClient()
	info, err := admin.Info(ctx, "server").Result()
	_ = admin.Close()
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "redis_version:") {
			t.Log(strings.TrimSpace(l))
		}
	}

	// The default user needs the password.
	anon := goredis.NewClient(&goredis.Options{Addr: r.Addr(), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	err = anon.Ping(ctx).Err()
	_ = anon.Close()
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without AUTH: %v, want NOAUTH", err)
	}
	// The password is not on the command line, where ps shows it.
	if b, err := os.ReadFile("/proc/" + itoa(r.proc.cmd.Process.Pid) + "/cmdline"); err == nil && strings.Contains(string(b), r.AdminPassword) {
		t.Error("admin password on redis-server's command line")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", r.Dir, err)
	}
	admin = r.AdminClient()
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err == nil {
		t.Error("server still answers after Close")
	}
}

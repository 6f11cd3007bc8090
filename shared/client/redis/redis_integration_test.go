//go:build integration

package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/internal/clienttest"
	"github.com/secretsaga/secretsaga/shared/client/redis"
)

// TestAgainstRedis plays rotations on a real Redis server and the Secrets
// Manager emulator; every new connection through the client must log in.
func TestAgainstRedis(t *testing.T) {
	ctx := context.Background()
	r, err := standin.StartRedis(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	admin := r.AdminClient()
	t.Cleanup(func() { _ = admin.Close() })
	clienttest.Run(t, clienttest.Target{
		Engine: "redis", Host: r.Host, Port: r.Port,
		SetPassword: func(t *testing.T, user, pw string) {
			t.Helper()
			if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", "resetpass", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
				t.Fatalf("setting %s's password: %v", user, err)
			}
		},
		Connect: func(ctx context.Context, c *client.Cache, secretID string) (string, error) {
			rc, err := redis.NewClient(c, secretID, &goredis.Options{MaxRetries: -1})
			if err != nil {
				return "", err
			}
			defer rc.Close()
			return rc.Do(ctx, "ACL", "WHOAMI").Text()
		},
	})
}

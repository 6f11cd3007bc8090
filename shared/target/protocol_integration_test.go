//go:build integration

package target_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/mysql"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
	"github.com/secretsaga/secretsaga/shared/target/redis"
)

// Each engine pointed at another engine's real server fails with a
// WrongProtocolError naming both protocols, not as "unreachable" (which the
// saga retries 4 times: pgx said "received unexpected message" at once, the
// MySQL driver waited 6 s for a greeting, go-redis said EOF or "invalid
// reply"). Identify names each server's own protocol.
func TestWrongProtocolAgainstRealServers(t *testing.T) {
	ctx := context.Background()
	pg, err := standin.StartPostgres(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	m, err := standin.StartMariaDB(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	r, err := standin.StartRedis(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	type server struct {
		protocol string
		engine   target.Engine
		port     int
	}
	servers := []server{
		{target.ProtocolPostgres, postgres.New(postgres.Options{}), pg.Port},
		{target.ProtocolMySQL, mysql.New(mysql.Options{}), m.Port},
		{target.ProtocolRedis, redis.New(redis.Options{}), r.Port},
	}
	for _, s := range servers {
		got, err := target.Identify(ctx, "127.0.0.1:"+itoa(s.port), target.IdentifyWait)
		if err != nil || got != s.protocol {
			t.Errorf("Identify(%s server) = %q, %v", s.protocol, got, err)
		}
	}
	for _, client := range servers {
		for _, srv := range servers {
			if client == srv {
				continue
			}
			t.Run(client.protocol+" client at "+srv.protocol+" server", func(t *testing.T) {
				err := client.engine.Verify(ctx, target.VerifyRequest{Credential: target.Credential{
					Host: "127.0.0.1", Port: srv.port, Username: "app", Password: secret.NewPassword("pw"), DBName: "0"}})
				var wp *target.WrongProtocolError
				if !errors.As(err, &wp) || wp.Found != srv.protocol || wp.Want != client.protocol || errors.Is(err, target.ErrUnreachable) {
					t.Fatalf("Verify = %v, want a WrongProtocolError (found %s, want %s)", err, srv.protocol, client.protocol)
				}
			})
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

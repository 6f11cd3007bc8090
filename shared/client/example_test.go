package client_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/mysql"
	"github.com/secretsaga/secretsaga/shared/client/pgsql"
	"github.com/secretsaga/secretsaga/shared/client/redis"
)

// One cache per process, shared by every pool: each secret is read once
// per TTL, and once per refresh interval after refused logins.
func Example() {
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		panic(err)
	}
	c := client.New(secretsmanager.NewFromConfig(awsCfg), client.WithTTL(5*time.Minute), client.WithLogger(slog.Default()))

	// PostgreSQL through pgx's stdlib.
	pgConn, err := pgsql.NewConnector(c, "prod/orders/db", pgsql.WithDSN("sslmode=verify-full"))
	if err != nil {
		panic(err)
	}
	orders := sql.OpenDB(pgConn)
	defer orders.Close()

	// MySQL or MariaDB through go-sql-driver/mysql.
	myConn, err := mysql.NewConnector(c, "prod/shop/db")
	if err != nil {
		panic(err)
	}
	shop := sql.OpenDB(myConn)
	defer shop.Close()

	// Redis through go-redis.
	rdb, err := redis.NewClient(c, "prod/cache", &goredis.Options{PoolSize: 20})
	if err != nil {
		panic(err)
	}
	defer rdb.Close()

	// A query that opens a connection logs in through a rotation; what the
	// error says when it cannot is told apart with errors.Is.
	if err := orders.PingContext(ctx); errors.Is(err, client.ErrDeleted) {
		slog.Error("the secret is scheduled for deletion; restore it", "error", err)
	}
	st := c.Stats()
	slog.Info("client", "reads", st.GetSecretValueCalls, "retries", st.AuthRetries, "fallbacks", st.Fallbacks)
}

package main

import (
	"context"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/shared/client"
	"github.com/secretsaga/secretsaga/shared/client/mysql"
	"github.com/secretsaga/secretsaga/shared/client/pgsql"
	"github.com/secretsaga/secretsaga/shared/client/redis"
)

// Client is the application that uses shared/client: each pool is one
// application instance with its own cache (default options: a value is
// used until refused or five minutes old), so every instance finds the
// working version on its own.
type Client struct {
	API client.API
	// Log receives the cache's log lines (the leak scan reads them).
	Log *slog.Logger
	// Options are passed to every cache.
	Options []client.Option
}

// Name implements Dialer.
func (*Client) Name() string { return "client" }

func (c *Client) cache() *client.Cache {
	return client.New(c.API, append([]client.Option{client.WithLogger(c.Log)}, c.Options...)...)
}

// Connector implements Dialer.
func (c *Client) Connector(_ context.Context, engine, secretID string) (driver.Connector, error) {
	switch engine {
	case "postgres":
		return pgsql.NewConnector(c.cache(), secretID, pgsql.WithDSN("sslmode=disable connect_timeout=5"))
	case "mariadb", "mysql":
		return mysql.NewConnector(c.cache(), secretID, mysql.WithConfig(func(cfg *mysqldrv.Config) { cfg.Timeout = 5 * time.Second }))
	}
	return nil, fmt.Errorf("no database/sql connector for engine %q", engine)
}

// Redis implements Dialer.
func (c *Client) Redis(_ context.Context, secretID string, base *goredis.Options) (*goredis.Client, error) {
	return redis.NewClient(c.cache(), secretID, base)
}

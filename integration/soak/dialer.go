package main

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	goredis "github.com/redis/go-redis/v9"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// Dialer is how an application gets to its database: the credential source
// under its connection pools. The soak runs the same workers over each
// Dialer, so the only difference between two modes is where a new
// connection's login comes from and what happens when it is refused.
type Dialer interface {
	// Name is the mode's name in the report.
	Name() string
	// Connector opens database/sql connections to the secret's database
	// (engine "postgres" or "mariadb"): every new connection of a pool
	// built on it logs in with what the dialer knows of the secret then.
	Connector(ctx context.Context, engine, secretID string) (driver.Connector, error)
	// Redis returns a go-redis client for the secret built on base (pool
	// settings the soak chose: size, connection lifetime, dialer).
	Redis(ctx context.Context, secretID string, base *goredis.Options) (*goredis.Client, error)
}

// Naive is the baseline application: it reads AWSCURRENT with the real SDK
// when its copy is older than Every (lazily, at a new connection; one copy
// per pool, as one per application instance), logs in with it, and never
// retries a refused login. It is what an application written from the AWS
// examples does.
type Naive struct {
	SM    *secretsmanager.Client
	Every time.Duration
}

// Name implements Dialer.
func (*Naive) Name() string { return "naive" }

// Connector implements Dialer.
func (n *Naive) Connector(ctx context.Context, engine, secretID string) (driver.Connector, error) {
	src := &naiveSource{sm: n.SM, id: secretID, every: n.Every}
	if _, err := src.get(ctx); err != nil {
		return nil, err
	}
	return &naiveConnector{src: src, engine: engine}, nil
}

// Redis implements Dialer.
func (n *Naive) Redis(ctx context.Context, secretID string, base *goredis.Options) (*goredis.Client, error) {
	src := &naiveSource{sm: n.SM, id: secretID, every: n.Every}
	v, err := src.get(ctx)
	if err != nil {
		return nil, err
	}
	o := *base
	o.Addr = net.JoinHostPort(v.Host, strconv.Itoa(v.Port))
	o.CredentialsProviderContext = func(ctx context.Context) (string, string, error) {
		v, err := src.get(ctx)
		if err != nil {
			return "", "", err
		}
		return v.Username, v.Password.Reveal(), nil
	}
	return goredis.NewClient(&o), nil
}

// naiveSource is one application instance's copy of AWSCURRENT.
type naiveSource struct {
	sm    *secretsmanager.Client
	id    string
	every time.Duration

	mu sync.Mutex
	v  *secret.Value
	at time.Time
}

// get returns the copy, read again first if it is older than every. A
// failed read keeps the old copy, as such an application would.
func (s *naiveSource) get(ctx context.Context) (*secret.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v != nil && time.Since(s.at) < s.every {
		return s.v, nil
	}
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.id, VersionStage: aws.String("AWSCURRENT")})
	if err == nil {
		var v *secret.Value
		if v, err = secret.Parse(aws.ToString(out.SecretString)); err == nil {
			s.v, s.at = v, time.Now()
			return v, nil
		}
	}
	if s.v != nil {
		return s.v, nil
	}
	return nil, fmt.Errorf("read secret %s: %w", s.id, err)
}

type naiveConnector struct {
	src    *naiveSource
	engine string
}

func (c *naiveConnector) Connect(ctx context.Context) (driver.Conn, error) {
	v, err := c.src.get(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := valueConnector(c.engine, v)
	if err != nil {
		return nil, err
	}
	return conn.Connect(ctx)
}

func (c *naiveConnector) Driver() driver.Driver {
	if c.engine == "postgres" {
		return stdlib.GetDefaultDriver()
	}
	return &mysql.MySQLDriver{}
}

// valueConnector is the driver's own connector for one secret value.
func valueConnector(engine string, v *secret.Value) (driver.Connector, error) {
	switch engine {
	case "postgres":
		cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=5")
		if err != nil {
			return nil, err
		}
		cfg.Host, cfg.Port, cfg.User, cfg.Database = v.Host, uint16(v.Port), v.Username, v.DBName
		cfg.Password = v.Password.Reveal()
		return stdlib.GetConnector(*cfg), nil
	case "mariadb", "mysql":
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = v.Username, v.Password.Reveal()
		cfg.Net, cfg.Addr, cfg.DBName = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(v.Port)), v.DBName
		cfg.Timeout = 5 * time.Second
		return mysql.NewConnector(cfg)
	}
	return nil, fmt.Errorf("no database/sql driver for engine %q", engine)
}

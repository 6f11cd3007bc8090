// Package client is the application side of secretsaga: it reads the
// database credential secretsaga rotates from AWS Secrets Manager, caches
// it, and, when a server refuses a login, tries the other versions of the
// secret so that an application never sees a failed request because of a
// rotation.
//
// Why retrying is needed: in single-user rotation the database password
// changes at setSecret while AWSCURRENT moves only at finishSecret (or the
// old password returns at compensation), so for a while the password that
// works is AWSPENDING's, or AWSPREVIOUS's; with alternating users the
// previous user stops working one rotation later, so a value cached longer
// than that fails. After a refused login the cache reads the secret again
// (one read per secret per refresh interval, however many connections
// fail) and the connector tries AWSCURRENT, AWSPENDING, AWSPREVIOUS,
// without duplicates, up to a bound. If every candidate of a read made
// before the refusal is refused too (the next rotation set the server
// within the interval), one more read is made for that connection.
//
// The connectors live in subpackages, so that an application links only
// its own driver:
//
//	shared/client/pgsql  database/sql connector for pgx v5 (stdlib)
//	shared/client/mysql  database/sql connector for go-sql-driver/mysql
//	shared/client/redis  go-redis v9 client whose dialer logs in
//
// API (kept stable; the soak harness codes against it):
//
//	func New(api API, opts ...Option) *Cache
//	func WithTTL(time.Duration) Option
//	func WithLogger(*slog.Logger) Option
//	func WithMaxStale(time.Duration) Option
//	func WithRefreshInterval(time.Duration) Option
//	func WithMaxAttempts(int) Option
//	func WithFetchTimeout(time.Duration) Option
//	func (*Cache) Get(ctx, secretID string) (Credential, error)
//	func (*Cache) Candidates(ctx, secretID string) ([]Credential, error)
//	func (*Cache) Invalidate(secretID string)
//	func (*Cache) Stats() Stats // GetSecretValueCalls, AuthFailures, AuthRetries, Exhausted, Logins/Fallbacks by stage
//	func Login[T any](ctx, *Cache, secretID string, Engine, connect func(ctx, Credential) (T, error)) (T, error)
//
//	pgsql.NewConnector(c *client.Cache, secretID string, opts ...pgsql.Option) (driver.Connector, error)
//	mysql.NewConnector(c *client.Cache, secretID string, opts ...mysql.Option) (driver.Connector, error)
//	redis.NewClient(c *client.Cache, secretID string, base *goredis.Options) (*goredis.Client, error)
//	redis.Options(c *client.Cache, secretID string, base *goredis.Options) (*goredis.Options, error)
//
// TLS: each connector connects as the rotation does for the same secret:
// its "tls" field (verify-full, require, disable), else verify-full for an
// RDS, Aurora or ElastiCache endpoint, else the application's own setting.
// verify-full trusts the CAs of the application's own TLS configuration
// when it names some, else the RDS CA bundle built in (shared/dbtls) and
// the PEM file named by DB_TLS_CA_FILE.
//
// Errors are *Error values whose kind errors.Is matches: ErrNotFound,
// ErrDeleted, ErrInvalidValue, ErrWrongEngine, ErrUnavailable,
// ErrAuthFailed. They name the secret, never hold a value, and nothing in
// this package panics on bad input. Nothing it logs holds a value either.
package client

// Package engines is the registry of the supported target engines, apart
// from shared/config so that a Lambda function links the engines only when
// it validates or logs in to a target (the saga's functions), and not the
// fleet's or the native rotation entry's (see shared/lambdaenv).
package engines

import (
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/mysql"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
	"github.com/secretsaga/secretsaga/shared/target/redis"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// Registry returns the registry of supported engines, each traced
// (shared/tracing: a span per operation) and then wrapped by wrap if it is
// not nil (fault injection, whose failures the spans then record too).
func Registry(wrap func(target.Engine) target.Engine) *target.Registry {
	traced := func(e target.Engine) target.Engine { return tracing.Engine(e) }
	if wrap != nil {
		traced = func(e target.Engine) target.Engine { return wrap(tracing.Engine(e)) }
	}
	r := &target.Registry{}
	r.Register(traced(postgres.New(postgres.Options{})), "postgresql", "aurora-postgresql")
	r.Register(traced(mysql.New(mysql.Options{})), "mariadb", "aurora-mysql")
	r.Register(traced(redis.New(redis.Options{})))
	return r
}

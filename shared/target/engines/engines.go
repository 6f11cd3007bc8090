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
)

// Registry returns the registry of supported engines, each wrapped by wrap
// if it is not nil (fault injection).
func Registry(wrap func(target.Engine) target.Engine) *target.Registry {
	if wrap == nil {
		wrap = func(e target.Engine) target.Engine { return e }
	}
	r := &target.Registry{}
	r.Register(wrap(postgres.New(postgres.Options{})), "postgresql", "aurora-postgresql")
	r.Register(wrap(mysql.New(mysql.Options{})), "mariadb", "aurora-mysql")
	r.Register(wrap(redis.New(redis.Options{})))
	return r
}

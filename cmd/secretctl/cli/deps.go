package cli

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/secretsaga/secretsaga/shared/config"
)

// Endpoints override the AWS endpoints of the clients NewDeps makes (local
// stand-ins). Empty means the SDK's normal resolution, which honours
// AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_DYNAMODB,
// AWS_ENDPOINT_URL_SFN and AWS_ENDPOINT_URL.
type Endpoints struct {
	SecretsManager, DynamoDB, SFN string
}

// NewDeps makes the real AWS clients from the SDK's default configuration
// (profile, region, credentials) and ep. Making them does no I/O.
func NewDeps(ctx context.Context, ep Endpoints) (Deps, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return Deps{ClientErr: err}, err
	}
	return NewDepsFromConfig(cfg, ep), nil
}

// NewDepsFromConfig makes the clients from cfg (for callers that already
// have one, such as the local demo) and ep.
func NewDepsFromConfig(cfg aws.Config, ep Endpoints) Deps {
	return Deps{
		Ephemeral: func(table string) (Ephemeral, error) {
			return config.NewEphemeral(config.Options{AWS: cfg, LedgerTable: table, Actor: "secretctl",
				SecretsManagerEndpoint: ep.SecretsManager, DynamoDBEndpoint: ep.DynamoDB,
				// What a revocation logs is the CLI's own output.
				Log: slog.New(slog.DiscardHandler)})
		},
		SM: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
			if ep.SecretsManager != "" {
				o.BaseEndpoint = aws.String(ep.SecretsManager)
			}
		}),
		DB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			if ep.DynamoDB != "" {
				o.BaseEndpoint = aws.String(ep.DynamoDB)
			}
			if ep.DynamoDB != "" || os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != "" {
				// A local DynamoDB (DynamoDB Local) answers errors with
				// bodies that fail the SDK's CRC32 check.
				o.DisableValidateResponseChecksum = true
			}
		}),
		SFN: sfn.NewFromConfig(cfg, func(o *sfn.Options) {
			if ep.SFN != "" {
				o.BaseEndpoint = aws.String(ep.SFN)
			}
		}),
	}
}

package main

import (
	"context"
	"os"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
)

// newDeps makes the real AWS clients from the SDK's default configuration
// (profile, region, credentials). The SDK itself applies the per-service
// endpoint overrides AWS_ENDPOINT_URL_SECRETS_MANAGER,
// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SFN (and AWS_ENDPOINT_URL).
// Making the clients does no I/O.
func newDeps(ctx context.Context) cli.Deps {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return cli.Deps{ClientErr: err}
	}
	return cli.Deps{
		SM: secretsmanager.NewFromConfig(cfg),
		DB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			if os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != "" {
				// A local DynamoDB (DynamoDB Local) answers errors with
				// bodies that fail the SDK's CRC32 check.
				o.DisableValidateResponseChecksum = true
			}
		}),
		SFN: sfn.NewFromConfig(cfg),
	}
}

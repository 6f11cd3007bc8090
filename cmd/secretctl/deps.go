package main

import (
	"context"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
)

// newDeps makes the real AWS clients from the SDK's default configuration
// (profile, region, credentials). The SDK itself applies the per-service
// endpoint overrides AWS_ENDPOINT_URL_SECRETS_MANAGER,
// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SFN (and AWS_ENDPOINT_URL).
// Making the clients does no I/O.
func newDeps(ctx context.Context) cli.Deps {
	deps, _ := cli.NewDeps(ctx, cli.Endpoints{})
	return deps
}

// Command listsecrets is the fleet rotation's listsecrets Lambda function: a thin adapter
// over fleet.Service.List. Errors it returns are the named types of
// shared/faults, whose type names the state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// Secrets Manager (ListSecrets) is the one client it calls.
func secrets(cfg aws.Config) fleet.Secrets {
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.TracerProvider = tracing.SDK() })
}

func main() {
	svc, err := lambdaenv.Fleet(context.Background(), secrets)
	if err != nil {
		log.Fatalf("listsecrets: %v", err)
	}
	lambda.Start(tracing.Handler("listsecrets", svc.List, nil))
}

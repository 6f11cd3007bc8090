// Command releaselease is the rotation saga's releaselease Lambda function: a thin
// adapter that wires configuration and clients and calls rotation.Service.Release.
// Errors it returns are the named types of shared/faults, whose type names the
// state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/shared/target/engines"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// clients are those of the calls this step makes, as its role's grants
// (infra/rotation Handlers): Secrets Manager, DynamoDB (the ledger),
// EventBridge (the outcome events) and the engines. Only they are linked.
func clients(cfg aws.Config) lambdaenv.SagaClients {
	return lambdaenv.SagaClients{
		Secrets: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.TracerProvider = tracing.SDK() }),
		Ledger:  dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.TracerProvider = tracing.SDK() }),
		Engines: engines.Registry(nil),
		Events:  eventbus.Buses(eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.TracerProvider = tracing.SDK() })),
	}
}

func main() {
	svc, err := lambdaenv.Saga(context.Background(), "releaselease", clients)
	if err != nil {
		log.Fatalf("releaselease: %v", err)
	}
	lambda.Start(tracing.Handler("releaselease", svc.Release, rotation.CloseInput.Trace))
}

// Command repair is the self-healing Lambda function: run by an EventBridge
// Scheduler schedule, it takes every secret the ledger holds in
// COMPENSATION_FAILED whose next attempt is due, decides from what logs in
// now (roll forward, clean up, revert, or wait) and ends the rotation, or
// calls a person when one is really needed (rotation.Service.Repair). A thin
// adapter like the saga's functions; its backoff comes from REPAIR_BACKOFF,
// REPAIR_MAX_BACKOFF and REPAIR_ALERT_AFTER.
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
	svc, err := lambdaenv.Saga(context.Background(), "repair", clients)
	if err != nil {
		log.Fatalf("repair: %v", err)
	}
	lambda.Start(tracing.Handler("repair", svc.Repair, rotation.RepairInput.Trace))
}

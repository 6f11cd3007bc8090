// Command ephemeralalert publishes Revocation Failed when the short-lived
// login state machine gives up retrying a revocation; the lease stays due,
// for the sweeper (ephemeral.Service.Alert). A thin adapter: the ledger and
// the bus.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// clients are those of the calls this step makes (its role grants no
// more); only they are linked.
func clients(cfg aws.Config) lambdaenv.EphemeralClients {
	return lambdaenv.EphemeralClients{
		Ledger: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.TracerProvider = tracing.SDK() }),
		Events: eventbus.Buses(eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.TracerProvider = tracing.SDK() })),
	}
}

func main() {
	svc, err := lambdaenv.Ephemeral(context.Background(), "ephemeralalert", clients)
	if err != nil {
		log.Fatalf("ephemeralalert: %v", err)
	}
	lambda.Start(tracing.Handler("ephemeralalert", svc.Alert, nil))
}

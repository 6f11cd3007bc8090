// Command ephemeralissue is the short-lived login state machine's Issue task:
// from a template secret it journals ISSUING, creates a login with the
// template's role, proves it logs in, stores it as a secret and journals
// ISSUED (ephemeral.Service.Issue). A thin adapter.
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
	"github.com/secretsaga/secretsaga/shared/target/engines"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// clients are those of the calls this step makes (its role grants no
// more); only they are linked.
func clients(cfg aws.Config) lambdaenv.EphemeralClients {
	return lambdaenv.EphemeralClients{
		Secrets: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.TracerProvider = tracing.SDK() }),
		Ledger:  dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.TracerProvider = tracing.SDK() }),
		Engines: engines.Registry(nil),
		Events:  eventbus.Buses(eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.TracerProvider = tracing.SDK() })),
	}
}

func main() {
	svc, err := lambdaenv.Ephemeral(context.Background(), "ephemeralissue", clients)
	if err != nil {
		log.Fatalf("ephemeralissue: %v", err)
	}
	lambda.Start(tracing.Handler("ephemeralissue", svc.Issue, nil))
}

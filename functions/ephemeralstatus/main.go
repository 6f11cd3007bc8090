// Command ephemeralstatus is the short-lived login state machine's
// CheckExpiry task: it reads the lease from the ledger, whose expiry a
// renewal moves (ephemeral.Service.Status). A thin adapter: the ledger only.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// clients are those of the calls this step makes (its role grants no
// more); only they are linked.
func clients(cfg aws.Config) lambdaenv.EphemeralClients {
	return lambdaenv.EphemeralClients{
		Ledger: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.TracerProvider = tracing.SDK() }),
	}
}

func main() {
	svc, err := lambdaenv.Ephemeral(context.Background(), "ephemeralstatus", clients)
	if err != nil {
		log.Fatalf("ephemeralstatus: %v", err)
	}
	lambda.Start(tracing.Handler("ephemeralstatus", svc.Status, nil))
}

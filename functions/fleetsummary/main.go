// Command fleetsummary is the fleet rotation's fleetsummary Lambda function: a thin adapter
// over fleet.Service.Summarize. Errors it returns are the named types of
// shared/faults, whose type names the state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

func main() {
	// Summarize adds up its input: no AWS client.
	svc, err := lambdaenv.Fleet(context.Background(), nil)
	if err != nil {
		log.Fatalf("fleetsummary: %v", err)
	}
	lambda.Start(tracing.Handler("fleetsummary", svc.Summarize, nil))
}

// Command listsecrets is the fleet rotation's listsecrets Lambda function: a thin adapter
// over fleet.Service.List. Errors it returns are the named types of
// shared/faults, whose type names the state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/config"
)

func main() {
	svc, err := config.FleetFromEnv(context.Background())
	if err != nil {
		log.Fatalf("listsecrets: %v", err)
	}
	lambda.Start(svc.List)
}

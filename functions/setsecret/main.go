// Command setsecret is the rotation saga's setsecret Lambda function: a thin
// adapter that wires configuration and clients and calls rotation.Service.Set.
// Errors it returns are the named types of shared/faults, whose type names the
// state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/config"
)

func main() {
	svc, err := config.FromEnv(context.Background(), "setsecret")
	if err != nil {
		log.Fatalf("setsecret: %v", err)
	}
	lambda.Start(svc.Set)
}

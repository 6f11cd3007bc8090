// Command releaselease is the rotation saga's releaselease Lambda function: a thin
// adapter that wires configuration and clients and calls rotation.Service.Release.
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
	svc, err := config.FromEnv(context.Background(), "releaselease")
	if err != nil {
		log.Fatalf("releaselease: %v", err)
	}
	lambda.Start(svc.Release)
}

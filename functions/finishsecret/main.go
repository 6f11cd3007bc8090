// Command finishsecret is the rotation saga's finishsecret Lambda function: a thin
// adapter that wires configuration and clients and calls rotation.Service.Finish.
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
	svc, err := config.FromEnv(context.Background(), "finishsecret")
	if err != nil {
		log.Fatalf("finishsecret: %v", err)
	}
	lambda.Start(svc.Finish)
}

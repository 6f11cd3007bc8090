// Command nativerotation is the Lambda function a secret's Secrets Manager
// rotation configuration names (native rotation, RotateSecret): a thin
// adapter that wires configuration and calls native.Service.Handle, which
// starts the rotation saga on createSecret and watches it on setSecret,
// testSecret and finishSecret. Errors it returns are the named types of
// shared/faults.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/config"
)

func main() {
	svc, err := config.NativeFromEnv(context.Background())
	if err != nil {
		log.Fatalf("nativerotation: %v", err)
	}
	lambda.Start(svc.Handle)
}

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
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/native"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// Step Functions (StartExecution, DescribeExecution) is the one client it
// calls.
func stepFunctions(cfg aws.Config) native.SFN {
	return sfn.NewFromConfig(cfg, func(o *sfn.Options) { o.TracerProvider = tracing.SDK() })
}

func main() {
	svc, err := lambdaenv.Native(context.Background(), stepFunctions)
	if err != nil {
		log.Fatalf("nativerotation: %v", err)
	}
	lambda.Start(tracing.Handler("nativerotation", func(ctx context.Context, ev native.Event) (struct{}, error) {
		return struct{}{}, svc.Handle(ctx, ev)
	}, native.Event.Trace))
}

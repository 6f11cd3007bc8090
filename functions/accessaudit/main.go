// Command accessaudit is the access audit's Lambda function, the target of
// the EventBridge rule on CloudTrail's Secrets Manager calls: a thin adapter
// over access.Service.Handle. Errors it returns are the named types of
// shared/faults; an event it does not take is logged and dropped.
package main

import (
	"context"
	"encoding/json"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/access"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

func main() {
	svc, err := access.FromEnv(context.Background())
	if err != nil {
		log.Fatalf("accessaudit: %v", err)
	}
	lambda.Start(tracing.Handler("accessaudit", func(ctx context.Context, event json.RawMessage) (struct{}, error) {
		return struct{}{}, svc.Handle(ctx, event)
	}, nil))
}

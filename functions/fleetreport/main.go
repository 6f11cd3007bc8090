// Command fleetreport is the fleet rotation's fleetreport Lambda function: a thin adapter
// over fleet.Service.Report, which announces a failed fleet child. Errors it returns are
// the named types of shared/faults, whose type names the state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// EventBridge (PutEvents) is the one client it calls.
func bus(cfg aws.Config) events.Buses {
	return eventbus.Buses(eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.TracerProvider = tracing.SDK() }))
}

func main() {
	svc, err := lambdaenv.FleetReport(context.Background(), bus)
	if err != nil {
		log.Fatalf("fleetreport: %v", err)
	}
	lambda.Start(tracing.Handler("fleetreport", svc.Report, fleet.ReportInput.Trace))
}

// Command fleetreport is the fleet rotation's fleetreport Lambda function: a thin adapter
// over fleet.Service.Report, which announces a failed fleet child. Errors it returns are
// the named types of shared/faults, whose type names the state machine's Retry and Catch match.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/config"
)

func main() {
	svc, err := config.FleetReportFromEnv(context.Background())
	if err != nil {
		log.Fatalf("fleetreport: %v", err)
	}
	lambda.Start(svc.Report)
}

// Command repair is the self-healing Lambda function: run by an EventBridge
// Scheduler schedule, it takes every secret the ledger holds in
// COMPENSATION_FAILED whose next attempt is due, decides from what logs in
// now (roll forward, clean up, revert, or wait) and ends the rotation, or
// calls a person when one is really needed (rotation.Service.Repair). A thin
// adapter like the saga's functions; its backoff comes from REPAIR_BACKOFF,
// REPAIR_MAX_BACKOFF and REPAIR_ALERT_AFTER.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/secretsaga/secretsaga/shared/config"
)

func main() {
	svc, err := config.FromEnv(context.Background(), "repair")
	if err != nil {
		log.Fatalf("repair: %v", err)
	}
	lambda.Start(svc.Repair)
}

// Command fn is the Lambda function TestBinary runs as a built binary
// behind the Lambda Runtime API: it reports what a function sees (its
// environment, deadline, process) and fails in each way a function can.
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/secretsaga/secretsaga/shared/faults"
)

type event struct {
	Op      string
	Env     string // the variable "echo" reports
	SleepMs int
}

type result struct {
	Value, Home, FunctionName, RequestID string
	DeadlineMs                           int64
	Pid                                  int
}

func handle(ctx context.Context, ev event) (result, error) {
	switch ev.Op {
	case "conflict":
		return result{}, &faults.ConflictError{Detail: faults.Detail{SecretID: "app/db", Step: "test", Reason: "another rotation holds the lease"}}
	case "exit":
		os.Exit(3)
	case "panic":
		panic("boom")
	}
	// "sleep" ignores its context, as a hung call would.
	time.Sleep(time.Duration(ev.SleepMs) * time.Millisecond)
	dl, _ := ctx.Deadline()
	lc, _ := lambdacontext.FromContext(ctx)
	return result{Value: os.Getenv(ev.Env), Home: os.Getenv("HOME"), FunctionName: lambdacontext.FunctionName,
		RequestID: lc.AwsRequestID, DeadlineMs: time.Until(dl).Milliseconds(), Pid: os.Getpid()}, nil
}

func main() { lambda.Start(handle) }

// Package lambdaenv wires what a Lambda function runs from its environment
// (the variables shared/functions lists for it, which the CDK app and the
// local stack set) and from the AWS clients its main.go makes: each
// function's main.go makes exactly the clients of the calls its step
// makes, the ones its IAM role is granted (infra/rotation Handlers), and
// so links only those. shared/config, which links every client and engine,
// wires the same Service for the demo and the integration tests.
//
// Why the split: a bootstrap must stay at most 10 MB (README "Binary
// sizes"), and an AWS service package costs its bytes as soon as it is
// linked, used or not.
package lambdaenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/secretsaga/secretsaga/shared/awsenv"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/native"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// SagaClients are the clients of a saga function.
type SagaClients struct {
	Secrets secretstore.API // required
	Ledger  ledger.API      // required
	Engines *target.Registry
	// Events is nil for a function that publishes nothing (no
	// events:PutEvents grant): a Publish fails with ErrNoEventBus. A
	// publisher's main.go passes eventbus.Buses over its EventBridge
	// client, which only it links.
	Events events.Buses
	// Alarms is nil for a function that reads no alarms (no
	// cloudwatch:DescribeAlarms grant): a bake that watches alarms fails
	// as the rotation.Service documents.
	Alarms rotation.Alarms
}

// ErrNoEventBus: the function was built without an EventBridge client,
// since its step publishes nothing; a Publish reaching it is a wiring bug.
var ErrNoEventBus = errors.New("lambdaenv: this function has no EventBridge client (its role has no events:PutEvents)")

type noBus struct{}

func (noBus) Publish(context.Context, events.Event) error { return ErrNoEventBus }

// Saga builds the rotation.Service the saga function actor runs: the AWS
// configuration of the environment (shared/awsenv), the clients clients
// makes from it, and from the environment the ledger table, its journal's
// retention, the bus, the bake alarms and the repair policy.
func Saga(ctx context.Context, actor string, clients func(aws.Config) SagaClients) (*rotation.Service, error) {
	cfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	return SagaFrom(os.Getenv, actor, clients(cfg))
}

// SagaFrom is Saga with the environment read through getenv and the
// clients made.
func SagaFrom(getenv func(string) string, actor string, c SagaClients) (*rotation.Service, error) {
	table := getenv(functions.EnvLedgerTable)
	if table == "" {
		return nil, errors.New("config: the ledger table name is empty; set " + functions.EnvLedgerTable)
	}
	repair, err := RepairPolicy(getenv)
	if err != nil {
		return nil, err
	}
	retention, err := LedgerRetention(getenv)
	if err != nil {
		return nil, err
	}
	svc := &rotation.Service{
		Secrets:        secretstore.New(c.Secrets),
		Ledger:         ledger.New(c.Ledger, table, ledger.Options{Retention: retention}),
		Engines:        c.Engines,
		Events:         noBus{},
		BakeAlarmNames: AlarmNames(getenv(functions.EnvBakeAlarmNames)),
		RepairPolicy:   repair,
		Actor:          actor,
		Log:            Logger(),
	}
	if c.Events != nil {
		svc.Events = c.Events(getenv(functions.EnvEventBus))
	}
	if c.Alarms != nil {
		svc.Alarms = c.Alarms
	}
	return svc, nil
}

// Fleet builds the fleet steps the listsecrets and fleetsummary functions
// run: listing through the Secrets Manager client secrets makes (nil for
// fleetsummary, which calls nothing), no bus (a Report fails with
// ErrNoEventBus; fleetreport is FleetReport).
func Fleet(ctx context.Context, secrets func(aws.Config) fleet.Secrets) (*fleet.Service, error) {
	cfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	svc := &fleet.Service{Events: noBus{}, Log: Logger()}
	if secrets != nil {
		svc.Secrets = secrets(cfg)
	}
	return svc, nil
}

// Native builds the Secrets Manager native rotation entry the
// nativerotation function runs: it starts and watches executions of the
// rotation state machine STATE_MACHINE_ARN names through the Step
// Functions client sfnClient makes.
func Native(ctx context.Context, sfnClient func(aws.Config) native.SFN) (*native.Service, error) {
	arn := os.Getenv(functions.EnvStateMachineArn)
	if arn == "" {
		return nil, errors.New("config: the rotation state machine's ARN is empty; set " + functions.EnvStateMachineArn)
	}
	cfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	return &native.Service{SFN: sfnClient(cfg), StateMachineArn: arn, Log: Logger()}, nil
}

// Logger is the functions' logger: JSON on stderr, which Lambda sends to
// the function's log group.
func Logger() *slog.Logger { return slog.New(slog.NewJSONHandler(os.Stderr, nil)) }

// LedgerRetention reads the journal's retention from getenv: a whole
// number of days; unset, empty or 0 means no TTL (records are kept
// forever), anything else that is not a whole number ≥ 0 is an error
// naming the variable. The ledger writes now+retention as each journal
// record's expiresAt, the table's TTL attribute.
func LedgerRetention(getenv func(string) string) (time.Duration, error) {
	v := strings.TrimSpace(getenv(functions.EnvLedgerRetentionDays))
	if v == "" {
		return 0, nil
	}
	days, err := strconv.Atoi(v)
	if err != nil || days < 0 {
		return 0, fmt.Errorf("config: %s=%q: want a whole number of days (0 keeps journal records forever)", functions.EnvLedgerRetentionDays, v)
	}
	return time.Duration(days) * 24 * time.Hour, nil
}

// RepairPolicy reads the repair backoff from getenv; unset or empty
// variables keep the defaults, a malformed one is an error naming it.
func RepairPolicy(getenv func(string) string) (rotation.RepairPolicy, error) {
	var p rotation.RepairPolicy
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{{functions.EnvRepairBackoff, &p.Backoff}, {functions.EnvRepairMaxBackoff, &p.MaxBackoff}, {functions.EnvRepairAlertAfter, &p.AlertAfter}} {
		v := strings.TrimSpace(getenv(f.name))
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("config: %s=%q: want a positive duration such as 1h or 30m", f.name, v)
		}
		*f.dst = d
	}
	return p, nil
}

// AlarmNames splits a comma-separated list of alarm names (BAKE_ALARM_NAMES),
// dropping blanks.
func AlarmNames(list string) []string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// FleetReport builds the fleet steps the fleetreport function runs:
// Fleet's, publishing to the bus EVENT_BUS_NAME names through the
// EventBridge client buses makes (eventbus.Buses).
func FleetReport(ctx context.Context, buses func(aws.Config) events.Buses) (*fleet.Service, error) {
	cfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	return &fleet.Service{Events: buses(cfg)(os.Getenv(functions.EnvEventBus)), Log: Logger()}, nil
}

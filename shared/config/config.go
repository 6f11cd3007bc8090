// Package config wires a rotation.Service from the environment, the same way
// for every Lambda function, the demo and the integration tests: only the
// endpoints and extra SDK options differ, never the code path.
package config

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
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/smithy-go/middleware"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/native"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/mysql"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
	"github.com/secretsaga/secretsaga/shared/target/redis"
)

// Environment variables the functions read: the names of shared/functions,
// which lists who reads which (the CDK app sets them from that list).
const (
	EnvLedgerTable = functions.EnvLedgerTable
	EnvEventBus    = functions.EnvEventBus
	// EnvStateMachineArn is the rotation state machine the native rotation
	// entry starts.
	EnvStateMachineArn = functions.EnvStateMachineArn
	// EnvBakeAlarmNames lists CloudWatch alarms (comma-separated) that every
	// bake watches, besides the execution's BakeAlarms (verify function).
	EnvBakeAlarmNames = functions.EnvBakeAlarmNames
	// The repair function's backoff (Go durations, e.g. "1h"): the first
	// attempt REPAIR_BACKOFF after the failure, doubling up to
	// REPAIR_MAX_BACKOFF; a person is called after REPAIR_ALERT_AFTER.
	EnvRepairBackoff    = functions.EnvRepairBackoff
	EnvRepairMaxBackoff = functions.EnvRepairMaxBackoff
	EnvRepairAlertAfter = functions.EnvRepairAlertAfter
	// EnvLedgerRetentionDays: the journal records' TTL in days (0: none).
	EnvLedgerRetentionDays = functions.EnvLedgerRetentionDays
)

// LedgerRetention reads the journal's retention from getenv: a whole
// number of days; unset, empty or 0 means no TTL (records are kept
// forever), anything else that is not a whole number ≥ 0 is an error
// naming the variable. The ledger writes now+retention as each journal
// record's expiresAt, the table's TTL attribute.
func LedgerRetention(getenv func(string) string) (time.Duration, error) {
	v := strings.TrimSpace(getenv(EnvLedgerRetentionDays))
	if v == "" {
		return 0, nil
	}
	days, err := strconv.Atoi(v)
	if err != nil || days < 0 {
		return 0, fmt.Errorf("config: %s=%q: want a whole number of days (0 keeps journal records forever)", EnvLedgerRetentionDays, v)
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
	}{{EnvRepairBackoff, &p.Backoff}, {EnvRepairMaxBackoff, &p.MaxBackoff}, {EnvRepairAlertAfter, &p.AlertAfter}} {
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

// Options build a Service.
type Options struct {
	AWS         aws.Config
	LedgerTable string
	EventBus    string
	Actor       string
	// Endpoints override the AWS endpoints (local stand-ins). Empty means the
	// SDK's normal resolution, which also honours AWS_ENDPOINT_URL_<SERVICE>.
	SecretsManagerEndpoint, DynamoDBEndpoint, EventBridgeEndpoint, CloudWatchEndpoint string
	// BakeAlarmNames are CloudWatch alarms every bake watches.
	BakeAlarmNames []string
	// APIOptions are extra SDK middleware (fault injection, call recording).
	APIOptions []func(*middleware.Stack) error
	// WrapEngine, if set, wraps every target engine (fault injection).
	WrapEngine func(target.Engine) target.Engine
	Ledger     ledger.Options
	Log        *slog.Logger
	// Repair times the repair function's attempts (zero: defaults).
	Repair rotation.RepairPolicy
}

// Engines returns the registry of supported engines.
func Engines(wrap func(target.Engine) target.Engine) *target.Registry {
	if wrap == nil {
		wrap = func(e target.Engine) target.Engine { return e }
	}
	r := &target.Registry{}
	r.Register(wrap(postgres.New(postgres.Options{})), "postgresql", "aurora-postgresql")
	r.Register(wrap(mysql.New(mysql.Options{})), "mariadb", "aurora-mysql")
	r.Register(wrap(redis.New(redis.Options{})))
	return r
}

// New builds the Service.
func New(o Options) (*rotation.Service, error) {
	if o.LedgerTable == "" {
		return nil, errors.New("config: the ledger table name is empty; set " + EnvLedgerTable)
	}
	cfg := o.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, o.APIOptions...)
	sm := secretsManager(cfg, o)
	db := dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
		if o.DynamoDBEndpoint != "" {
			do.BaseEndpoint = &o.DynamoDBEndpoint
			// DynamoDB Local's 4xx bodies fail the CRC32 check the SDK makes.
			do.DisableValidateResponseChecksum = true
		}
	})
	eb := eventbridge.NewFromConfig(cfg, func(eo *eventbridge.Options) {
		if o.EventBridgeEndpoint != "" {
			eo.BaseEndpoint = &o.EventBridgeEndpoint
		}
	})
	cw := cloudwatch.NewFromConfig(cfg, func(co *cloudwatch.Options) {
		if o.CloudWatchEndpoint != "" {
			co.BaseEndpoint = &o.CloudWatchEndpoint
		}
	})
	log := logger(o)
	return &rotation.Service{
		Secrets:        secretstore.New(sm),
		Ledger:         ledger.New(db, o.LedgerTable, o.Ledger),
		Engines:        Engines(o.WrapEngine),
		Events:         events.NewBus(eb, o.EventBus),
		Alarms:         cw,
		BakeAlarmNames: o.BakeAlarmNames,
		RepairPolicy:   o.Repair,
		Actor:          o.Actor,
		Log:            log,
	}, nil
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

func secretsManager(cfg aws.Config, o Options) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(cfg, func(so *secretsmanager.Options) {
		if o.SecretsManagerEndpoint != "" {
			so.BaseEndpoint = &o.SecretsManagerEndpoint
		}
	})
}

func logger(o Options) *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}

// NewFleet builds the fleet rotation's steps (list, report a failed child,
// summarize): Secrets Manager and the event bus.
func NewFleet(o Options) *fleet.Service {
	cfg := o.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, o.APIOptions...)
	eb := eventbridge.NewFromConfig(cfg, func(eo *eventbridge.Options) {
		if o.EventBridgeEndpoint != "" {
			eo.BaseEndpoint = &o.EventBridgeEndpoint
		}
	})
	return &fleet.Service{Secrets: secretsManager(cfg, o), Events: events.NewBus(eb, o.EventBus), Log: logger(o)}
}

// FleetFromEnv builds the fleet steps a Lambda function runs.
func FleetFromEnv(ctx context.Context) (*fleet.Service, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return NewFleet(Options{AWS: cfg}), nil
}

// FleetReportFromEnv builds the fleet steps the fleetreport function runs:
// FleetFromEnv's, publishing to the bus EVENT_BUS_NAME names.
func FleetReportFromEnv(ctx context.Context) (*fleet.Service, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return NewFleet(Options{AWS: cfg, EventBus: os.Getenv(EnvEventBus)}), nil
}

// FromEnv builds the Service a Lambda function runs: the default AWS
// configuration chain and the table, its journal's retention, the bus and
// the bake alarms from the environment.
func FromEnv(ctx context.Context, actor string) (*rotation.Service, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	repair, err := RepairPolicy(os.Getenv)
	if err != nil {
		return nil, err
	}
	retention, err := LedgerRetention(os.Getenv)
	if err != nil {
		return nil, err
	}
	return New(Options{AWS: cfg, LedgerTable: os.Getenv(EnvLedgerTable), EventBus: os.Getenv(EnvEventBus), Actor: actor,
		BakeAlarmNames: AlarmNames(os.Getenv(EnvBakeAlarmNames)), Repair: repair, Ledger: ledger.Options{Retention: retention}})
}

// NewNative builds the Secrets Manager native rotation entry: it starts and
// watches executions of the rotation state machine stateMachineArn.
// sfnEndpoint overrides the Step Functions endpoint (empty: the SDK's
// resolution, which honours AWS_ENDPOINT_URL_SFN).
func NewNative(o Options, sfnEndpoint, stateMachineArn string) *native.Service {
	cfg := o.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, o.APIOptions...)
	client := sfn.NewFromConfig(cfg, func(so *sfn.Options) {
		if sfnEndpoint != "" {
			so.BaseEndpoint = &sfnEndpoint
		}
	})
	return &native.Service{SFN: client, StateMachineArn: stateMachineArn, Log: logger(o)}
}

// NativeFromEnv builds the native rotation entry a Lambda function runs:
// the default AWS configuration chain and the state machine from
// STATE_MACHINE_ARN.
func NativeFromEnv(ctx context.Context) (*native.Service, error) {
	arn := os.Getenv(EnvStateMachineArn)
	if arn == "" {
		return nil, errors.New("config: the rotation state machine's ARN is empty; set " + EnvStateMachineArn)
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return NewNative(Options{AWS: cfg, Actor: "nativerotation"}, "", arn), nil
}

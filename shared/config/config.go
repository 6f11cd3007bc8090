// Package config wires a rotation.Service from the environment, the same way
// for every Lambda function, the demo and the integration tests: only the
// endpoints and extra SDK options differ, never the code path.
package config

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/smithy-go/middleware"

	"github.com/secretsaga/secretsaga/shared/alarms"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/lambdaenv"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/native"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/engines"
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

// LedgerRetention reads the journal's retention (lambdaenv.LedgerRetention).
func LedgerRetention(getenv func(string) string) (time.Duration, error) {
	return lambdaenv.LedgerRetention(getenv)
}

// RepairPolicy reads the repair backoff (lambdaenv.RepairPolicy).
func RepairPolicy(getenv func(string) string) (rotation.RepairPolicy, error) {
	return lambdaenv.RepairPolicy(getenv)
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

// Engines returns the registry of supported engines (engines.Registry).
func Engines(wrap func(target.Engine) target.Engine) *target.Registry {
	return engines.Registry(wrap)
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
		Events:         eventbus.New(eb, o.EventBus),
		Alarms:         alarms.New(cw),
		BakeAlarmNames: o.BakeAlarmNames,
		RepairPolicy:   o.Repair,
		Actor:          o.Actor,
		Log:            log,
	}, nil
}

// NewEphemeral builds the short-lived logins' service (issue, renew,
// revoke, sweep) with the same clients, endpoints and options as New.
func NewEphemeral(o Options) (*ephemeral.Service, error) {
	if o.LedgerTable == "" {
		return nil, errors.New("config: the ledger table name is empty; set " + EnvLedgerTable)
	}
	cfg := o.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, o.APIOptions...)
	db := dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
		if o.DynamoDBEndpoint != "" {
			do.BaseEndpoint = &o.DynamoDBEndpoint
			do.DisableValidateResponseChecksum = true
		}
	})
	eb := eventbridge.NewFromConfig(cfg, func(eo *eventbridge.Options) {
		if o.EventBridgeEndpoint != "" {
			eo.BaseEndpoint = &o.EventBridgeEndpoint
		}
	})
	return &ephemeral.Service{
		Secrets: secretsManager(cfg, o),
		Ledger:  ledger.New(db, o.LedgerTable, o.Ledger),
		Engines: Engines(o.WrapEngine),
		Events:  eventbus.New(eb, o.EventBus),
		Actor:   o.Actor,
		Log:     logger(o),
	}, nil
}

// AlarmNames splits BAKE_ALARM_NAMES (lambdaenv.AlarmNames).
func AlarmNames(list string) []string { return lambdaenv.AlarmNames(list) }

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
	return lambdaenv.Logger()
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
	return &fleet.Service{Secrets: secretsManager(cfg, o), Events: eventbus.New(eb, o.EventBus), Log: logger(o)}
}

// FromEnv builds the Service a saga function runs, with every client
// (lambdaenv.Saga; each function's main.go passes only its own).
func FromEnv(ctx context.Context, actor string) (*rotation.Service, error) {
	return lambdaenv.Saga(ctx, actor, func(cfg aws.Config) lambdaenv.SagaClients {
		return lambdaenv.SagaClients{Secrets: secretsmanager.NewFromConfig(cfg), Ledger: dynamodb.NewFromConfig(cfg),
			Engines: Engines(nil), Events: eventbus.Buses(eventbridge.NewFromConfig(cfg)), Alarms: alarms.New(cloudwatch.NewFromConfig(cfg))}
	})
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

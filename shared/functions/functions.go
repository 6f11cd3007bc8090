// Package functions is the one table of the Lambda functions' runtime
// settings (timeout, memory and the environment variables each one reads)
// and of the placeholder each one fills in the state machine definitions. The CDK app (infra/) deploys the functions
// with these settings and the local stack (integration/local) runs them
// with the same ones, so a timeout that is too short locally is too short
// in AWS, and the other way round.
//
// It imports nothing but the standard library: the CDK app's module
// imports it without pulling in the AWS SDK.
package functions

import (
	"fmt"
	"slices"
	"time"
)

// Settings are one function's runtime settings.
type Settings struct {
	// Timeout is the function's configured timeout (Lambda allows 1 s to
	// 900 s); past it the invocation ends with Sandbox.Timedout.
	Timeout time.Duration
	// MemoryMB is the function's memory size (and so its CPU share).
	MemoryMB int
	// Placeholder is the ${Name} the state machine definitions use for the
	// function's ARN; empty for a function no definition calls.
	Placeholder string
	// Env names the environment variables the function reads (shared/lambdaenv
	// reads them), which the CDK app sets and the local stack sets when it
	// runs the built binaries. EnvBakeAlarmNames is set only when alarms
	// are configured (OptionalEnv).
	Env []string
}

// The environment variables the functions read.
const (
	// EnvLedgerTable is the ledger's DynamoDB table.
	EnvLedgerTable = "LEDGER_TABLE"
	// EnvEventBus is the EventBridge bus the saga's events go to.
	EnvEventBus = "EVENT_BUS_NAME"
	// EnvStateMachineArn is the rotation state machine the native rotation
	// entry starts.
	EnvStateMachineArn = "STATE_MACHINE_ARN"
	// EnvBakeAlarmNames lists CloudWatch alarms (comma-separated) that
	// every bake watches.
	EnvBakeAlarmNames = "BAKE_ALARM_NAMES"
	// EnvRepairBackoff, EnvRepairMaxBackoff and EnvRepairAlertAfter are the
	// repair function's backoff (shared/lambdaenv.RepairPolicy).
	EnvRepairBackoff    = "REPAIR_BACKOFF"
	EnvRepairMaxBackoff = "REPAIR_MAX_BACKOFF"
	EnvRepairAlertAfter = "REPAIR_ALERT_AFTER"
	// EnvLedgerRetentionDays is how long a journal record is kept, in
	// days: the functions that write the ledger give each record that TTL
	// (shared/lambdaenv.LedgerRetention); 0 keeps records forever.
	EnvLedgerRetentionDays = "LEDGER_RETENTION_DAYS"
	// EnvRotationGroup is the rotation group (the secretsaga:rotation-group
	// tag's value) whose secrets the access audit judges.
	EnvRotationGroup = "ROTATION_GROUP"
	// EnvTrustedPrincipals lists (comma-separated ARN patterns) the
	// product's own roles, whose reads the access audit records without
	// alerting.
	EnvTrustedPrincipals = "AUDIT_TRUSTED_PRINCIPALS"
)

// DefaultLedgerRetentionDays is the journal's retention where none is
// configured (the CDK app's ledgerRetentionDays, the local stack): more
// than a year, so a yearly audit still finds every rotation of the year.
const DefaultLedgerRetentionDays = 400

// OptionalEnv reports whether the environment variable name may be left
// unset: the bake's alarms, which a deployment may not configure, and the
// repair backoff, which has defaults.
func OptionalEnv(name string) bool {
	switch name {
	case EnvBakeAlarmNames, EnvRepairBackoff, EnvRepairMaxBackoff, EnvRepairAlertAfter:
		return true
	}
	return false
}

// The environments of the saga's steps: the ledger (and its retention:
// every step journals) and the bus; the ones that validate or run the bake
// also read its alarms.
var (
	sagaEnv = []string{EnvLedgerTable, EnvEventBus, EnvLedgerRetentionDays}
	bakeEnv = []string{EnvLedgerTable, EnvEventBus, EnvLedgerRetentionDays, EnvBakeAlarmNames}
)

// MemoryMB is every function's memory: they wait on the network, and 256
// MB keeps the AWS SDK's JSON decoding and the TLS handshakes quick.
const MemoryMB = 256

// The bake (the verify function) is the one step whose length the caller
// chooses (BakeSeconds), so its timeout is derived from the longest bake
// the saga accepts.
const (
	// MaxBakeSeconds is the longest bake an execution may ask for
	// (rotation.MaxBakeSeconds): ten minutes, as long as a deployment's
	// usual post-change observation window, well under Lambda's 900 s.
	MaxBakeSeconds = 600
	// VerifyChecks bounds what verify does besides waiting out the bake:
	// the last health check and alarm check after the bake's deadline (up
	// to one poll interval late), reading the secret, logging in with the
	// new AWSCURRENT and journalling the result. VerifyChecksBound
	// (functions_test.go) itemises it.
	VerifyChecks = 60 * time.Second
	// verifyMargin is kept on top of the bake and the checks, so that a
	// slow database or SDK retry during an accepted bake never turns a
	// healthy rotation into a Sandbox.Timedout (and a rollback).
	verifyMargin = 60 * time.Second
)

// VerifyTimeout is the verify function's timeout: the longest accepted
// bake, its checks and a margin (720 s).
const VerifyTimeout = MaxBakeSeconds*time.Second + VerifyChecks + verifyMargin

var table = map[string]Settings{
	"acquirelease": {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "AcquireLeaseFunctionArn", Env: bakeEnv},
	"createsecret": {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "CreateSecretFunctionArn", Env: sagaEnv},
	// setsecret, testsecret: a login to the target may wait out a connect
	// timeout before the next credential is tried.
	"setsecret":    {Timeout: 60 * time.Second, MemoryMB: MemoryMB, Placeholder: "SetSecretFunctionArn", Env: sagaEnv},
	"testsecret":   {Timeout: 60 * time.Second, MemoryMB: MemoryMB, Placeholder: "TestSecretFunctionArn", Env: sagaEnv},
	"finishsecret": {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "FinishSecretFunctionArn", Env: sagaEnv},
	"verify":       {Timeout: VerifyTimeout, MemoryMB: MemoryMB, Placeholder: "VerifyFunctionArn", Env: bakeEnv},
	"releaselease": {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "ReleaseLeaseFunctionArn", Env: sagaEnv},
	"compensate":   {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "CompensateFunctionArn", Env: sagaEnv},
	// The fleet: listsecrets pages through every secret of the account.
	"listsecrets":  {Timeout: 300 * time.Second, MemoryMB: MemoryMB, Placeholder: "ListSecretsFunctionArn"},
	"fleetsummary": {Timeout: 60 * time.Second, MemoryMB: MemoryMB, Placeholder: "FleetSummaryFunctionArn"},
	// fleetreport announces one failed fleet child (one PutEvents).
	"fleetreport": {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "FleetReportFunctionArn", Env: []string{EnvEventBus}},
	// The self-healing of COMPENSATION_FAILED secrets (scheduled, no
	// state machine calls it): per due secret a few logins that may each
	// wait out a connect timeout, and the undo's writes.
	"repair": {Timeout: 300 * time.Second, MemoryMB: MemoryMB,
		Env: []string{EnvLedgerTable, EnvEventBus, EnvLedgerRetentionDays, EnvRepairBackoff, EnvRepairMaxBackoff, EnvRepairAlertAfter}},
	// The Secrets Manager native rotation entry: finishSecret waits for the
	// saga.
	"nativerotation": {Timeout: 300 * time.Second, MemoryMB: MemoryMB, Env: []string{EnvStateMachineArn}},
	// The access audit: per CloudTrail event a DescribeSecret, a journal
	// query and two ledger writes (shared/access).
	"accessaudit": {Timeout: 30 * time.Second, MemoryMB: MemoryMB,
		Env: []string{EnvLedgerTable, EnvEventBus, EnvLedgerRetentionDays, EnvRotationGroup, EnvTrustedPrincipals}},
	// Short-lived logins (shared/ephemeral): issue and revoke each log in
	// as the master (a connect timeout each) and make a few AWS calls;
	// the sweeper revokes up to 200 leases and lists each template's
	// database per run.
	"ephemeralissue":  {Timeout: 60 * time.Second, MemoryMB: MemoryMB, Placeholder: "EphemeralIssueFunctionArn", Env: sagaEnv},
	"ephemeralstatus": {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "EphemeralStatusFunctionArn", Env: sagaEnv},
	"ephemeralrevoke": {Timeout: 120 * time.Second, MemoryMB: MemoryMB, Placeholder: "EphemeralRevokeFunctionArn", Env: sagaEnv},
	"ephemeralalert":  {Timeout: 30 * time.Second, MemoryMB: MemoryMB, Placeholder: "EphemeralAlertFunctionArn", Env: sagaEnv},
	"ephemeralsweep":  {Timeout: 300 * time.Second, MemoryMB: MemoryMB, Env: sagaEnv},
}

// Get returns the settings of the function named name (the directory under
// functions/).
func Get(name string) (Settings, bool) {
	s, ok := table[name]
	s.Env = slices.Clone(s.Env) // the table stays as written
	return s, ok
}

// MustGet is Get for names known at build time; it panics on an unknown
// name, naming the known ones.
func MustGet(name string) Settings {
	s, ok := Get(name)
	if !ok {
		panic(fmt.Sprintf("functions: no settings for %q; known: %v", name, Names()))
	}
	return s
}

// Names returns every function's name, sorted.
func Names() []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ByPlaceholder returns the function whose ARN fills the definitions'
// ${placeholder}.
func ByPlaceholder(placeholder string) (string, bool) {
	for n, s := range table {
		if s.Placeholder != "" && s.Placeholder == placeholder {
			return n, true
		}
	}
	return "", false
}

// MaxBootstrapBytes is the size budget of a function's bootstrap (linux/arm64,
// stripped, as `make build` makes it): 10 MB as `make build` prints sizes
// (MiB). A smaller artefact is a quicker cold start (Lambda copies and maps
// it) and leaves room under Lambda's 50 MB zip limit for the CA bundle and
// an instrumentation layer.
const MaxBootstrapBytes = 10 << 20

// overBudget are the bootstraps that do not fit MaxBootstrapBytes yet, with
// the ceiling each must not grow past. None since `make build` stopped
// inlining outside crypto (LAMBDA_GCFLAGS); a function added here needs a
// reason and a README entry.
var overBudget = map[string]int64{}

// BootstrapBudget is the size the function's bootstrap must not exceed:
// MaxBootstrapBytes, or for one that does not fit it yet its ceiling.
func BootstrapBudget(name string) int64 {
	if b, ok := overBudget[name]; ok {
		return b
	}
	return MaxBootstrapBytes
}

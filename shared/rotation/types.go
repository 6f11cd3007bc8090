// Package rotation implements the rotation saga's steps: acquire the lease,
// create, set, test, finish, verify, release, and compensation. Each is
// idempotent (running it twice, or again after a crash in the middle, is
// safe), checks the lease's fencing token before it touches anything, and
// journals write-ahead intents before effects on the target. The Lambda
// handlers in functions/ are thin adapters over Service.
package rotation

import (
	"context"
	"log/slog"
	"time"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// Steps, as they appear in errors, logs and the journal.
const (
	StepAcquire    = "acquire"
	StepCreate     = "create"
	StepSet        = "set"
	StepTest       = "test"
	StepFinish     = "finish"
	StepVerify     = "verify"
	StepRelease    = "release"
	StepCompensate = "compensate"
	StepAbandon    = "abandon"
)

// Secrets is what the rotation needs of Secrets Manager
// (*secretstore.Store implements it).
type Secrets interface {
	Describe(ctx context.Context, id string) (secretstore.Description, error)
	Value(ctx context.Context, id, versionID, stage string) (string, error)
	// Current reads AWSCURRENT's version id and value in one call.
	Current(ctx context.Context, id string) (versionID, value string, err error)
	HasVersion(ctx context.Context, id, versionID string) (bool, error)
	// Filled tells the empty version RotateSecret creates for its token
	// (listed, with no value) from one that holds a value.
	Filled(ctx context.Context, id, versionID string) (bool, error)
	PutPending(ctx context.Context, id, token, value string) error
	MoveStage(ctx context.Context, id, stage, to, from string) error
	RemoveStage(ctx context.Context, id, stage, from string) error
}

// Ledger is what the rotation needs of the ledger (*ledger.Ledger).
type Ledger interface {
	Table() string
	Get(ctx context.Context, secretARN string) (ledger.Lease, bool, error)
	Acquire(ctx context.Context, req ledger.AcquireRequest) (ledger.Lease, error)
	Append(ctx context.Context, lease *ledger.Lease, rec ledger.Record, ch ledger.Change) error
	// Clone reads the record of a user secretsaga created (the
	// alternating strategy's other user).
	Clone(ctx context.Context, login ledger.Login) (ledger.Clone, bool, error)
}

// Publisher announces outcomes (*events.Bus).
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// AlarmState is what CloudWatch says of one alarm.
type AlarmState struct {
	State  string // CloudWatch's StateValue: OK, ALARM or INSUFFICIENT_DATA
	Reason string // its StateReason
}

// AlarmStateAlarm is the StateValue of an alarm that fires.
const AlarmStateAlarm = "ALARM"

// Alarms is what the bake needs of CloudWatch: the states of the named
// alarms, metric and composite; a name CloudWatch does not know is absent
// from the map, an error is CloudWatch's (wrapped: errors.As finds its
// smithy.APIError). shared/alarms implements it over CloudWatch's client,
// apart from this package so that only the function that bakes (verify)
// links that client (0.25 MB of every other bootstrap).
type Alarms interface {
	AlarmStates(ctx context.Context, names []string) (map[string]AlarmState, error)
}

// Service runs the steps. All fields are required except Log, Now,
// BakeAlarmNames and Alarms (which a bake needs only when it watches alarms).
type Service struct {
	Secrets Secrets
	Ledger  Ledger
	Engines *target.Registry
	Events  Publisher
	Alarms  Alarms
	// BakeAlarmNames are CloudWatch alarms every bake watches (the verify
	// function's BAKE_ALARM_NAMES), besides the execution's BakeAlarms.
	BakeAlarmNames []string
	// RepairPolicy times the repair function's attempts (zero: defaults).
	RepairPolicy RepairPolicy
	// Actor names who acts in the journal (the function name).
	Actor string
	Log   *slog.Logger
	Now   func() time.Time
}

// AcquireInput starts a rotation (the state machine's AcquireLease task).
type AcquireInput struct {
	SecretId           string
	ClientRequestToken string
	ExecutionArn       string
	// LedgerTable is the table the state machine was deployed with; it must
	// match the function's, so the two can never journal to different tables.
	LedgerTable string `json:",omitempty"`
	// Rollback makes this an operator rollback: ClientRequestToken must be
	// the AWSPREVIOUS version, which the saga makes AWSCURRENT again and
	// sets on the target, with the same lease, journal and compensation as
	// a rotation.
	Rollback bool `json:",omitempty"`
	// HealthCheckUrl, if set, must answer 2xx throughout BakeSeconds after
	// finish (the verify step), or the rotation is rolled back.
	HealthCheckUrl string `json:",omitempty"`
	BakeSeconds    int    `json:",omitempty"`
	// BakeAlarms are CloudWatch alarms that must stay out of ALARM
	// throughout BakeSeconds (with Service.BakeAlarmNames), or the rotation
	// is rolled back.
	BakeAlarms []string `json:",omitempty"`
	// Verify asks for the verify step after finish even without a health
	// check or alarms (it logs in with AWSCURRENT once more). With none of
	// the three, the state machine goes from finish straight to release,
	// and finish ends the rotation itself (Context.ReleaseAtFinish).
	Verify bool `json:",omitempty"`
	// TokenIsNew says the state machine made ClientRequestToken with
	// States.UUID() for this execution, so it names no version, labelled or
	// not, and acquire need not ask (ListSecretVersionIds). A caller that
	// sets it wrongly loses nothing: create's PutSecretValue refuses a token
	// whose version holds another value, and create then checks as before.
	TokenIsNew bool `json:",omitempty"`
}

// Context is a rotation in flight: what AcquireLease returns and every later
// step receives. The lease in the ledger is the authority; these fields let a
// step find it and prove it still owns it.
type Context struct {
	SecretId                  string
	SecretArn                 string
	ClientRequestToken        string
	ExecutionArn              string
	Fencing                   int64
	PreviousVersionId         string
	PreviousPreviousVersionId string   `json:",omitempty"`
	LedgerTable               string   `json:",omitempty"`
	Rollback                  bool     `json:",omitempty"`
	HealthCheckUrl            string   `json:",omitempty"`
	BakeSeconds               int      `json:",omitempty"`
	BakeAlarms                []string `json:",omitempty"`
	// ReleaseAtFinish says this rotation has no bake (acquire found no
	// Verify, HealthCheckUrl or BakeAlarms: the state machine's ShouldVerify
	// goes to release): finish journals FINISHED and frees the lease in the
	// same write as FINISH_DONE, one ledger transaction fewer, and release
	// only announces the outcome. An execution started before this field
	// existed lacks it and ends as before, in release.
	ReleaseAtFinish bool `json:",omitempty"`
	// Recover names a dead rotation this one must clean up after first.
	Recover *Recovery `json:",omitempty"`
	// Last is the previous step's output: the lease as that step left it
	// (ids, states and flags, never a value), so the next step need not read
	// it again. Every write is still conditioned on the lease's fencing
	// token, holder and journal sequence: a stale snapshot costs a read at
	// the write, never a write over what the step did not see.
	Last *StepOutput `json:",omitempty"`
	// Policy is the password policy acquire read from the secret's tags
	// (no value: length and excluded characters), so that create need not
	// describe the secret again. Without it create reads the tags itself.
	Policy *secretstore.Policy `json:",omitempty"`
}

// Recovery is what the ledger knew of a rotation whose execution died: its
// lease expired in a state that is not final.
type Recovery struct {
	Execution                 string
	Fencing                   int64
	Token                     string
	State                     string
	PreviousVersionId         string
	PreviousPreviousVersionId string `json:",omitempty"`
	SetMayHaveRun             bool   `json:",omitempty"`
	FinishMayHaveRun          bool   `json:",omitempty"`
}

// MaxBakeSeconds keeps the bake inside the verify function's timeout: both
// come from shared/functions, the table the CDK app deploys with.
const MaxBakeSeconds = functions.MaxBakeSeconds

// MaxBakeAlarms bounds an execution's BakeAlarms (one DescribeAlarms call
// names at most 100 alarms); maxAlarmName is CloudWatch's limit.
const (
	MaxBakeAlarms = 100
	maxAlarmName  = 255
)

// StepOutput is what a forward step returns: the state machine keeps it as
// the rotation context's Last, for the next step.
type StepOutput struct {
	Step    string
	Changed bool // false when the step found its work already done
	// Lease is the lease as the step left it: the state machine passes it
	// to the next step (Context.Last).
	Lease *ledger.Lease `json:",omitempty"`
	// Journal is this step's own record, left for the next step's write
	// (the lease as the step left it is in Lease): set's SET_DONE, which
	// test journals with TESTED, with set's time and actor, so that set
	// writes once (before the change) instead of twice.
	Journal *JournalEntry `json:",omitempty"`
	// Released is set by a finish that ended the rotation itself
	// (Context.ReleaseAtFinish): the state machine goes to release, which
	// announces it, and never to the bake.
	Released bool `json:",omitempty"`
}

// JournalEntry is a journal record a step leaves for the next step's
// write (StepOutput.Journal): what the record says, and nothing the write
// takes from the lease (keys, fencing, sequence, execution, token), so the
// state carries about 60 bytes rather than a whole ledger.Record's 200. Its
// fields have ledger.Record's names: an output written by either shape
// reads as the other.
type JournalEntry struct {
	State  ledger.State
	At     int64 // Unix milliseconds
	Actor  string
	Detail string `json:",omitempty"`
}

// Record is the journal record the entry describes.
func (e JournalEntry) Record() ledger.Record {
	return ledger.Record{State: e.State, At: e.At, Actor: e.Actor, Detail: e.Detail}
}

// TaskError is the error object a Catch puts into the state: Error is the
// errorType, Cause the Lambda error payload.
type TaskError struct {
	Error string
	Cause string `json:",omitempty"`
}

// Close modes and outcomes.
const (
	ModeRollback = "rollback"
	ModeAbandon  = "abandon"
	ModeRecover  = "recover"

	OutcomeFinished           = string(ledger.Finished)
	OutcomeCompensationFailed = string(ledger.CompensationFailed)
)

// CloseInput ends a rotation: Compensate (Mode) or Release (Outcome).
type CloseInput struct {
	Rotation          Context
	Mode              string     `json:",omitempty"`
	Outcome           string     `json:",omitempty"`
	Error             *TaskError `json:",omitempty"`
	CompensationError *TaskError `json:",omitempty"`
}

// CloseOutput reports how the rotation ended.
type CloseOutput struct {
	SecretArn      string
	VersionId      string
	State          string // the ledger's final state
	AWSCURRENT     string // the version that carries AWSCURRENT afterwards
	TargetReverted bool   `json:",omitempty"`
}

// StepInput names, in errors, a handler's input that does not decode (the
// handler, and so its step, never ran).
const StepInput = "input"

// UnmarshalJSON makes a field of the wrong JSON type in the execution input
// (say "Rollback": "false") an InputError naming the field, instead of
// encoding/json's UnmarshalTypeError, which no Catch of the state machine
// names. The same holds for every handler input below.
func (in *AcquireInput) UnmarshalJSON(b []byte) error {
	type plain AcquireInput
	return faults.DecodeInput(b, (*plain)(in), StepAcquire, "the execution input")
}

// UnmarshalJSON: see AcquireInput's.
func (rc *Context) UnmarshalJSON(b []byte) error {
	type plain Context
	return faults.DecodeInput(b, (*plain)(rc), StepInput, "the rotation context (the AcquireLease result the state machine passes on)")
}

// UnmarshalJSON: see AcquireInput's.
func (in *CloseInput) UnmarshalJSON(b []byte) error {
	type plain CloseInput
	return faults.DecodeInput(b, (*plain)(in), StepInput, "the close step's input (the state machine's Parameters for Compensate or ReleaseLease)")
}

// Trace is what the spans of this step say of its rotation
// (shared/tracing): the secret's ARN (its id before acquire resolved it)
// and the execution's ARN.
func (c Context) Trace() tracing.Identity {
	secret := c.SecretArn
	if secret == "" {
		secret = c.SecretId
	}
	return tracing.Identity{Secret: secret, Execution: c.ExecutionArn}
}

// Trace is the rotation's identity as acquire's input names it.
func (in AcquireInput) Trace() tracing.Identity {
	return tracing.Identity{Secret: in.SecretId, Execution: in.ExecutionArn}
}

// Trace is the identity of the rotation being closed.
func (in CloseInput) Trace() tracing.Identity { return in.Rotation.Trace() }

// Trace is the secret a repair run is limited to (none: the whole queue).
func (in RepairInput) Trace() tracing.Identity { return tracing.Identity{Secret: in.SecretId} }

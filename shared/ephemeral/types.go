// Package ephemeral issues short-lived database logins and revokes them for
// certain (issue 17): a login of its own for a CI job, a migration or a
// person on call, made from a template secret (the database, a role to
// grant and a master login), stored as a secret of its own, and dropped at
// expiry. The ledger journals every lease before the database is touched
// (ISSUING, ISSUED, REVOKING, REVOKED), and the sweeper revokes every lease
// whose expiry passed, whatever happened to the execution that issued it.
// The Lambda handlers in functions/ephemeral* are thin adapters over
// Service; errors crossing them are the taxonomy of shared/faults.
package ephemeral

import (
	"context"
	"log/slog"
	"time"

	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Steps, as they appear in errors, logs and the journal.
const (
	StepIssue  = "issue"
	StepStatus = "status"
	StepRenew  = "renew"
	StepRevoke = "revoke"
	StepSweep  = "sweep"
	StepAlert  = "alert"
)

// Template fields and tags.
const (
	// FieldRole is the template's role to grant (PostgreSQL: a role the
	// login is a member of; MariaDB: a role; Redis: an ACL user whose
	// rules the login copies).
	FieldRole = "role"
	// FieldDefaultTTL and FieldMaxTTL are Go durations ("15m", "1h"):
	// the TTL a lease gets when the caller names none, and the longest a
	// lease may live, renewals included.
	FieldDefaultTTL = "default_ttl"
	FieldMaxTTL     = "max_ttl"
	// TagTemplate marks a secret as a template; its value is the
	// template's group, which the functions' IAM policies match (ABAC).
	TagTemplate = "secretsaga:ephemeral-template"
	// Tags on an issued login's secret. TagGroup is the template's group
	// (not TagTemplate, which only templates carry: the sweeper lists
	// templates by it).
	TagGroup    = "secretsaga:ephemeral-group"
	TagLease    = "secretsaga:ephemeral-lease"
	TagExpires  = "secretsaga:expires"
	TagOwner    = "secretsaga:owner"
	TagTemplArn = "secretsaga:template"
	// SecretPrefix names the issued logins' secrets: SecretPrefix + lease id.
	SecretPrefix = "secretsaga/ephemeral/"
)

// Defaults and bounds.
const (
	DefaultTTL    = 15 * time.Minute
	DefaultMaxTTL = time.Hour
	// MaxTTLCeiling bounds any template's max_ttl: a "short-lived" login
	// that lives for days is a long-lived password by another name.
	MaxTTLCeiling = 24 * time.Hour
	// MinTTL keeps a lease longer than the time its issue takes.
	MinTTL = 5 * time.Second
	// DefaultIssueGrace: an ISSUING lease (an issue that died half way) is
	// due for revocation this long after it started, or at its expiry if
	// that is sooner. Longer than the issue's Lambda timeout and retries.
	DefaultIssueGrace = 15 * time.Minute
	// DefaultAlertAfter failed revocation attempts publish Revocation
	// Failed (once per lease).
	DefaultAlertAfter = 3
	// DefaultRetryAfter: a lease whose revocation failed is due again
	// this long after, doubling with each attempt up to MaxRetryAfter.
	DefaultRetryAfter = 30 * time.Second
	MaxRetryAfter     = 15 * time.Minute
)

// SecretsAPI is the part of *secretsmanager.Client the service uses.
type SecretsAPI interface {
	DescribeSecret(context.Context, *sm.DescribeSecretInput, ...func(*sm.Options)) (*sm.DescribeSecretOutput, error)
	GetSecretValue(context.Context, *sm.GetSecretValueInput, ...func(*sm.Options)) (*sm.GetSecretValueOutput, error)
	CreateSecret(context.Context, *sm.CreateSecretInput, ...func(*sm.Options)) (*sm.CreateSecretOutput, error)
	PutSecretValue(context.Context, *sm.PutSecretValueInput, ...func(*sm.Options)) (*sm.PutSecretValueOutput, error)
	DeleteSecret(context.Context, *sm.DeleteSecretInput, ...func(*sm.Options)) (*sm.DeleteSecretOutput, error)
	TagResource(context.Context, *sm.TagResourceInput, ...func(*sm.Options)) (*sm.TagResourceOutput, error)
	ListSecrets(context.Context, *sm.ListSecretsInput, ...func(*sm.Options)) (*sm.ListSecretsOutput, error)
}

// Ledger is what the service needs of the ledger (*ledger.Ledger).
type Ledger interface {
	GetEphemeral(ctx context.Context, id string) (ledger.EphemeralLease, bool, error)
	BeginIssue(ctx context.Context, lease ledger.EphemeralLease, actor string, dueAt time.Time) (ledger.EphemeralLease, error)
	Transition(ctx context.Context, lease *ledger.EphemeralLease, ch ledger.EphemeralChange) error
	DueEphemeral(ctx context.Context, now time.Time, limit int) ([]ledger.EphemeralLease, error)
	OpenEphemeral(ctx context.Context) ([]ledger.EphemeralLease, error)
}

// Publisher announces outcomes (*events.Bus).
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// Service issues, renews and revokes short-lived logins. Secrets, Ledger,
// Engines and Events are required.
type Service struct {
	Secrets SecretsAPI
	Ledger  Ledger
	Engines *target.Registry
	Events  Publisher
	// Actor names who acts in the journal (the function name).
	Actor string
	Log   *slog.Logger
	Now   func() time.Time
	// IssueGrace, AlertAfter, RetryAfter: zero means the defaults above.
	IssueGrace time.Duration
	AlertAfter int
	RetryAfter time.Duration
	// SweepLimit bounds the leases one sweep revokes (0: 200), so a sweep
	// ends inside its Lambda timeout; the next sweep takes the rest.
	SweepLimit int
}

// IssueInput asks for a login (the ephemeral state machine's input).
type IssueInput struct {
	// TemplateId is the template secret's name or ARN.
	TemplateId string
	// LeaseId is a UUID (the state machine's States.UUID()) or a login
	// name made by target.NewEphemeralName; it names the login, so a
	// retried issue makes the same one. Empty: a new name.
	LeaseId string `json:",omitempty"`
	// TTL and MaxTTL are Go durations. Empty TTL: the template's
	// default_ttl; MaxTTL may only lower the template's max_ttl.
	TTL    string `json:",omitempty"`
	MaxTTL string `json:",omitempty"`
	// Owner is who asked (recorded in the ledger, the secret's tags and
	// the events).
	Owner        string `json:",omitempty"`
	ExecutionArn string `json:",omitempty"`
}

// LeaseInput names a lease (status, revoke).
type LeaseInput struct {
	LeaseId      string
	ExecutionArn string `json:",omitempty"`
	// Reason is journaled with a revocation ("expired", "issue failed",
	// "revoked by <who>").
	Reason string `json:",omitempty"`
	// Error is what made an issue fail, when revoke compensates it.
	Error *TaskError `json:",omitempty"`
	// IfExists: a lease that was never journaled is no error (the
	// compensation of an issue that failed before ISSUING).
	IfExists bool `json:",omitempty"`
}

// RenewInput moves a lease's expiry to TTL from now (at most its max).
type RenewInput struct {
	LeaseId string
	TTL     string
}

// TaskError is the error object a Catch puts into the state.
type TaskError struct {
	Error string
	Cause string `json:",omitempty"`
}

// Lease is what the steps return about a lease (never a password).
type Lease struct {
	LeaseId   string
	Username  string
	SecretArn string `json:",omitempty"`
	Template  string
	Engine    string
	Host      string
	Port      int
	Role      string
	Owner     string `json:",omitempty"`
	State     string
	// NotAfter is when the login expires, RFC 3339 in UTC to the second:
	// the state machine's Wait state waits until it (TimestampPath).
	NotAfter    string
	MaxNotAfter string
	// Expired: NotAfter has passed; Revoked: the lease is REVOKED.
	Expired bool
	Revoked bool
	// Capped: a renewal asked for more than the max and got the max.
	Capped bool `json:",omitempty"`
}

// SweepOutput is what one sweep did.
type SweepOutput struct {
	Due     int      // leases found due
	Revoked []string // leases revoked
	Failed  []string // leases whose revocation failed (due again later)
	// CrossChecked counts the databases whose user lists were read;
	// Orphans are prefixed logins revoked because of that list (their
	// lease was revoked or expired); Unaccounted are prefixed logins no
	// lease names (left alone, announced).
	CrossChecked int
	Orphans      []string `json:",omitempty"`
	Unaccounted  []string `json:",omitempty"`
	// Unchecked are the templates whose database could not be listed.
	Unchecked []string `json:",omitempty"`
}

// UnmarshalJSON makes a field of the wrong type an InputError naming the
// input, like the rotation's inputs.
func (in *IssueInput) UnmarshalJSON(b []byte) error {
	type plain IssueInput
	return faults.DecodeInput(b, (*plain)(in), StepIssue, "the execution input (TemplateId, TTL, MaxTTL, Owner)")
}

// UnmarshalJSON: see IssueInput's.
func (in *LeaseInput) UnmarshalJSON(b []byte) error {
	type plain LeaseInput
	return faults.DecodeInput(b, (*plain)(in), StepRevoke, "the lease input (LeaseId)")
}

// UnmarshalJSON: see IssueInput's.
func (in *RenewInput) UnmarshalJSON(b []byte) error {
	type plain RenewInput
	return faults.DecodeInput(b, (*plain)(in), StepRenew, "the renew input (LeaseId, TTL)")
}

// Package events defines the product's outcome events, which
// shared/eventbus publishes to Amazon EventBridge. One schema for all of
// them (see README "Events"); detail never carries a secret value.
package events

import "context"

// Source is the EventBridge source of every event.
const Source = "secretsaga"

// Detail types.
const (
	RotationSucceeded  = "Rotation Succeeded"
	RotationRolledBack = "Rotation Rolled Back"
	RotationAbandoned  = "Rotation Abandoned"
	CompensationFailed = "Compensation Failed"
	RollbackCompleted  = "Rollback Completed"
	// RotationRepaired: the repair function healed a secret left in
	// COMPENSATION_FAILED (rolled forward, cleaned up or reverted); info.
	RotationRepaired = "Rotation Repaired"
	// RepairNeeded: a person must act (no value logs in anywhere, or the
	// target has not answered for REPAIR_ALERT_AFTER); critical, with
	// what to do in Action.
	RepairNeeded = "Rotation Repair Needed"
	// FleetRotationFailed: one secret's rotation in a fleet failed, however
	// it failed (at acquire included); published by the fleet for every
	// failed child, besides whatever the saga announced itself. warning
	// when rolled back, critical otherwise.
	FleetRotationFailed = "Fleet Rotation Failed"
	// Short-lived logins (shared/ephemeral). EphemeralIssued and
	// EphemeralRevoked are info; RevocationFailed is critical: a login
	// that should be gone may still log in, and the sweeper keeps trying.
	// EphemeralUnaccounted (warning): the sweeper found a login with
	// secretsaga's prefix that no lease in the ledger names; it is left
	// alone (secretsaga drops only what its ledger says it created).
	EphemeralIssued      = "Ephemeral Credential Issued"
	EphemeralRevoked     = "Ephemeral Credential Revoked"
	RevocationFailed     = "Revocation Failed"
	EphemeralUnaccounted = "Ephemeral Login Unaccounted"
)

// Detail is the event body.
type Detail struct {
	SecretARN         string `json:"secretArn"`
	VersionID         string `json:"versionId"`                   // the rotation's token
	PreviousVersionID string `json:"previousVersionId,omitempty"` // AWSCURRENT at start
	ExecutionARN      string `json:"executionArn"`
	Fencing           int64  `json:"fencing"`
	ErrorClass        string `json:"errorClass,omitempty"`
	CompensationError string `json:"compensationErrorClass,omitempty"`
	Severity          string `json:"severity"` // info, warning, critical
	DurationMs        int64  `json:"durationMs"`
	// Action tells the people who receive the event what to do, if anything.
	Action string `json:"action,omitempty"`
	// Outcome says what a repair did (Rotation Repaired) or found.
	Outcome string `json:"outcome,omitempty"`
	// RepairAttempts counts the repair's attempts so far.
	RepairAttempts int `json:"repairAttempts,omitempty"`
	// Short-lived logins: the lease (which is the login's name), its
	// template, who asked for it, and when it expires (RFC 3339).
	LeaseID  string `json:"leaseId,omitempty"`
	Template string `json:"template,omitempty"`
	Owner    string `json:"owner,omitempty"`
	NotAfter string `json:"notAfter,omitempty"`
}

// Event is one outcome.
type Event struct {
	DetailType string
	Detail     Detail
}

// Publisher publishes events to one bus (*eventbus.Bus over EventBridge).
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

// Buses makes the Publisher of a named bus. A function's main.go passes
// eventbus.Buses over its EventBridge client, so that EventBridge's client
// is linked only into the functions that publish (README "Binary sizes"):
// this package names no AWS type.
type Buses func(name string) Publisher

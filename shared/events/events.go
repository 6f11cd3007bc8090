// Package events publishes the product's outcome events to Amazon
// EventBridge. One schema for all of them (see README "Events"); detail never
// carries a secret value.
package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

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

// API is the part of *eventbridge.Client used here.
type API interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus publishes to one event bus.
type Bus struct {
	api  API
	name string
}

// NewBus returns a publisher to the named bus ("" is the default bus).
func NewBus(api API, name string) *Bus {
	if name == "" {
		name = "default"
	}
	return &Bus{api: api, name: name}
}

// Publish sends e. PutEvents can accept the call and still reject the entry,
// so the per-entry result is checked too.
func (b *Bus) Publish(ctx context.Context, e Event) error {
	body, err := json.Marshal(e.Detail)
	if err != nil {
		return err
	}
	out, err := b.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: &b.name, Source: aws.String(Source), DetailType: &e.DetailType,
		Detail: aws.String(string(body)), Resources: []string{e.Detail.SecretARN},
	}}})
	if err != nil {
		return fmt.Errorf("publish %q: %w", e.DetailType, err)
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		return fmt.Errorf("publish %q: entry rejected: %s", e.DetailType, aws.ToString(out.Entries[0].ErrorCode))
	}
	return nil
}

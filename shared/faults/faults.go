// Package faults is the closed set of error types that cross a Lambda handler.
//
// aws-lambda-go reports a returned error's Go type name as errorType, and the
// rotation state machine's Retry and Catch clauses match on that name. Each type
// therefore has exactly one meaning for the saga (see DESIGN.md, "Errors are the
// saga's control flow"), and a handler must never return anything else: Classify
// is the one place where foreign errors are mapped onto the taxonomy.
//
// Messages name the secret and the step, never a secret value.
package faults

import "fmt"

// Names of the error types as the state machine sees them (errorType).
const (
	NameRetryable          = "RetryableError"
	NameConflict           = "ConflictError"
	NameInput              = "InputError"
	NameTestFailed         = "TestFailedError"
	NameCompensationFailed = "CompensationFailedError"
)

// Names lists every errorType the handlers can return, for the ASL checks.
var Names = []string{NameRetryable, NameConflict, NameInput, NameTestFailed, NameCompensationFailed}

// Detail is what every fault carries: where it happened and why.
type Detail struct {
	SecretID string // secret name or ARN as given by the caller
	Step     string // rotation step: acquire, create, set, test, finish, verify, compensate, release
	Reason   string // what is wrong and, for bad input, how to fix it; never a secret value
	Err      error  // the cause, for errors.Is/As; its text must not carry secret values either
}

func (d Detail) format(kind string) string {
	msg := fmt.Sprintf("%s: secret %q, step %s: %s", kind, d.SecretID, d.Step, d.Reason)
	if d.Err != nil {
		msg += ": " + d.Err.Error()
	}
	return msg
}

// RetryableError is a transient failure (throttling, timeout, connection
// refused): the state machine retries with backoff, then compensates.
type RetryableError struct{ Detail }

// ConflictError means another actor owns the secret (lease held, fencing
// mismatch, a version this execution did not create): stop, undo nothing of
// theirs.
type ConflictError struct{ Detail }

// InputError is a malformed secret, unknown engine, missing field or deleted
// secret: fail fast, compensate only this execution's own work.
type InputError struct{ Detail }

// TestFailedError means the new credential does not work: compensate.
type TestFailedError struct{ Detail }

// CompensationFailedError means the undo did not complete: alert, keep the
// lease so that no rotation starts on top of an unknown state.
type CompensationFailedError struct{ Detail }

func (e *RetryableError) Error() string          { return e.format(NameRetryable) }
func (e *ConflictError) Error() string           { return e.format(NameConflict) }
func (e *InputError) Error() string              { return e.format(NameInput) }
func (e *TestFailedError) Error() string         { return e.format(NameTestFailed) }
func (e *CompensationFailedError) Error() string { return e.format(NameCompensationFailed) }
func (e *RetryableError) Unwrap() error          { return e.Err }
func (e *ConflictError) Unwrap() error           { return e.Err }
func (e *InputError) Unwrap() error              { return e.Err }
func (e *TestFailedError) Unwrap() error         { return e.Err }
func (e *CompensationFailedError) Unwrap() error { return e.Err }

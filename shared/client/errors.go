package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// The kinds of failure an application can get from this package. Every
// error the package returns is an *Error whose Kind is one of these, so
// errors.Is(err, client.ErrNotFound) and friends tell them apart.
var (
	// ErrNotFound: Secrets Manager has no such secret (or no AWSCURRENT
	// value in it).
	ErrNotFound = errors.New("secret not found")
	// ErrDeleted: the secret is scheduled for deletion; restore it
	// (RestoreSecret) or point the application at another secret.
	ErrDeleted = errors.New("secret is scheduled for deletion")
	// ErrInvalidValue: the value is not the database-secret JSON structure
	// (not JSON, a field missing or of the wrong type, SecretBinary only).
	ErrInvalidValue = errors.New("secret value is not a usable database secret")
	// ErrWrongEngine: the secret's "engine" is not one the connector
	// speaks (a MySQL secret handed to the PostgreSQL connector).
	ErrWrongEngine = errors.New("secret is for another engine")
	// ErrUnavailable: Secrets Manager could not be read (network,
	// throttling, permissions) and no cached value young enough to serve
	// was at hand.
	ErrUnavailable = errors.New("secret could not be read")
	// ErrAuthFailed: the server refused every candidate credential.
	ErrAuthFailed = errors.New("the server refused every credential of the secret")
	// ErrInterrupted: the caller's context ended after the server refused
	// a credential and before the other candidates were tried; the error
	// also matches context.DeadlineExceeded or context.Canceled.
	ErrInterrupted = errors.New("the context ended before every credential of the secret was tried")
)

// Error is every error this package returns. Its text names the secret,
// the stage and the kind of failure, never a secret value.
type Error struct {
	SecretID string // the secret as the application named it
	Stage    string // the staging label concerned, if any
	Kind     error  // one of the Err* values above; errors.Is matches it
	Reason   string // what to do about it, if there is more to say
	Err      error  // the cause (Secrets Manager's or the driver's error), for errors.As
}

// Error says which secret, which stage and what kind of failure, then the
// cause's own text (Secrets Manager's or the driver's, which name users and
// hosts, never passwords).
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "secretsaga client: secret %q", e.SecretID)
	if e.Stage != "" {
		b.WriteString(" (" + e.Stage + ")")
	}
	b.WriteString(": ")
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("error")
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) (etc.) true for an *Error of that
// kind.
func (e *Error) Is(target error) bool { return target != nil && target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// classifyAPI maps a GetSecretValue error onto a kind. Secrets Manager's
// messages name the secret or the stage, never a value.
func classifyAPI(secretID, stage string, err error) *Error {
	var nf *types.ResourceNotFoundException
	var ir *types.InvalidRequestException
	switch {
	case errors.As(err, &nf):
		return &Error{SecretID: secretID, Stage: stage, Kind: ErrNotFound, Err: err}
	case errors.As(err, &ir) && strings.Contains(ir.ErrorMessage(), "marked for deletion"):
		return &Error{SecretID: secretID, Stage: stage, Kind: ErrDeleted,
			Reason: "restore it with RestoreSecret, or use another secret", Err: err}
	}
	return &Error{SecretID: secretID, Stage: stage, Kind: ErrUnavailable, Err: err}
}

// terminal reports whether err says the secret itself is unusable, as
// opposed to Secrets Manager being hard to reach: a stale value is served
// through the latter, never through the former.
func terminal(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrDeleted) || errors.Is(err, ErrInvalidValue)
}

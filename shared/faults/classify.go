package faults

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// Classify maps any error onto the taxonomy at the handler boundary. An error
// that already is (or wraps) a fault is returned as that fault itself, so the
// handler's errorType is the fault's type name and not the wrapper's.
//
// AWS errors are classified with the SDK's own retry rules (the same ones its
// retryer uses), so throttling, 5xx and connection errors are Retryable.
// Anything unrecognised is Retryable too: the state machine retries a bounded
// number of times and then compensates, which is safe because every step is
// idempotent; failing fast on an unknown error would be the riskier guess.
func Classify(err error, secretID, step string) error {
	if err == nil {
		return nil
	}
	if f := asFault(err); f != nil {
		return f
	}
	d := Detail{SecretID: secretID, Step: step, Err: err}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		d.Reason = "timed out"
		return &RetryableError{d}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		d.Reason = "connection failed"
		return &RetryableError{d}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		d.Reason = "network timeout"
		return &RetryableError{d}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ResourceNotFoundException":
			d.Reason = "the secret (or a version of it) does not exist; check the SecretId"
			return &InputError{d}
		case "InvalidRequestException":
			d.Reason = "Secrets Manager refused the request (a secret marked for deletion is refused: restore it first)"
			return &InputError{d}
		case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException":
			d.Reason = "permission denied; check the function's role and the secret's rotation-group tag"
			return &InputError{d}
		case "DecryptionFailure":
			d.Reason = "the secret's KMS key cannot be used; grant kms:Decrypt on it"
			return &InputError{d}
		case "ValidationException", "InvalidParameterException":
			d.Reason = "a request parameter was rejected"
			return &InputError{d}
		}
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary ||
		retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		d.Reason = "transient AWS error"
		return &RetryableError{d}
	}
	d.Reason = "unclassified error"
	return &RetryableError{d}
}

// asFault returns the outermost fault err is or wraps, or nil.
func asFault(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e.(type) {
		case *RetryableError, *ConflictError, *InputError, *TestFailedError, *CompensationFailedError:
			return e
		}
	}
	// Joined or multi-wrapped errors: fall back to errors.As in a fixed order
	// of severity.
	var c *CompensationFailedError
	var cf *ConflictError
	var i *InputError
	var t *TestFailedError
	var r *RetryableError
	switch {
	case errors.As(err, &c):
		return c
	case errors.As(err, &cf):
		return cf
	case errors.As(err, &i):
		return i
	case errors.As(err, &t):
		return t
	case errors.As(err, &r):
		return r
	}
	return nil
}

// Name returns the errorType the state machine sees for err: the fault's type
// name, or "" for an error that is not a fault.
func Name(err error) string {
	switch asFault(err).(type) {
	case *RetryableError:
		return NameRetryable
	case *ConflictError:
		return NameConflict
	case *InputError:
		return NameInput
	case *TestFailedError:
		return NameTestFailed
	case *CompensationFailedError:
		return NameCompensationFailed
	}
	return ""
}

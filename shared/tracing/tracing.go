// Package tracing is the functions' OpenTelemetry tracing: one span per
// invocation (the step), a child span per AWS SDK call (aws.go) and per
// database operation (engine.go), each carrying the rotation's secret ARN
// and execution ARN as attributes: identifiers, never a value.
//
// In Lambda, spans go to X-Ray through the X-Ray daemon the runtime runs
// when active tracing is on (xray.go: the daemon's UDP segment protocol,
// a few hundred lines instead of an OTLP exporter and a collector layer,
// which cost more than the 10 MB a bootstrap may weigh: README "Tracing").
// The invocation's span is a child of the trace header Lambda hands the
// function, so the subsegments hang under the function's own segment and
// follow its sampling decision. Tests export to memory or stdout.
//
// Tracing is built in with the "otel" build tag, which make build sets
// unless TRACING=off: it costs 0.62-0.75 MB of a bootstrap, which every
// function can spend and stay under 10 MB (README "Binary sizes"). Without
// the tag, Handler, Engine and AWS change nothing.
package tracing

import (
	"context"
	"errors"
	"reflect"
	"strings"
)

// ScopeName is the instrumentation scope of the spans this package starts.
const ScopeName = "github.com/secretsaga/secretsaga/shared/tracing"

// Attributes every span of a rotation carries. X-Ray indexes them as
// annotations (secretsaga_secret_arn, ...), so a trace can be found by
// secret or by execution.
const (
	KeySecret    = "secretsaga.secret_arn"
	KeyExecution = "secretsaga.execution_arn"
	KeyStep      = "secretsaga.step"
)

// Database span attributes (OpenTelemetry's database semantic conventions;
// db.user is the login's name, which error messages name too, never its
// password).
const (
	KeyDBSystem      = "db.system.name"
	KeyServerAddress = "server.address"
	KeyServerPort    = "server.port"
	KeyDBUser        = "db.user"
	KeyDBOperation   = "db.operation.name"
)

// Environment variables.
const (
	// EnvExporter chooses where spans go: "xray" (the default when
	// EnvDaemon is set, as Lambda sets it with active tracing), "stdout"
	// (one JSON line per span on stderr, next to the function's log),
	// "off" (the default otherwise). A build without tracing (no "otel"
	// tag) fails its init when this asks for xray or stdout.
	EnvExporter = "SECRETSAGA_TRACES"
	// EnvDaemon is the X-Ray daemon's address, set by Lambda:
	// "host:port" or "tcp:host:port udp:host:port".
	EnvDaemon = "AWS_XRAY_DAEMON_ADDRESS"
	// EnvTraceHeader is the invocation's trace header, which aws-lambda-go
	// also puts in the context as "x-amzn-trace-id".
	EnvTraceHeader = "_X_AMZN_TRACE_ID"
)

// Enabled says whether this build traces (built with the "otel" tag).
const Enabled = enabled

// Identity is what a span says about the rotation it belongs to.
type Identity struct {
	Secret    string // the secret's ARN (or the id the input named)
	Execution string // the Step Functions execution ARN
}

type identityKey struct{}

// WithIdentity returns ctx whose spans (started by any instrumentation,
// under a provider New made) carry id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom is the identity WithIdentity put in ctx.
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// ErrorType is the name of err's outermost named type, as aws-lambda-go
// reports it (without the package and the pointer), looking through fmt's
// wrappers.
func ErrorType(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if n := t.Name(); n != "" && !strings.HasPrefix(n, "wrapError") && n != "errorString" {
			return n
		}
	}
	return "error"
}

//go:build !otel

package tracing

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	smithytracing "github.com/aws/smithy-go/tracing"

	"github.com/secretsaga/secretsaga/shared/target"
)

const enabled = false

// Setup, in a build without tracing, accepts the environment of a
// function with active tracing (Lambda sets AWS_XRAY_DAEMON_ADDRESS; its
// own segments are still recorded), and fails when SECRETSAGA_TRACES asks
// for spans this build cannot make, rather than deploy silently blind.
func Setup(getenv func(string) string, _ string) error {
	switch choice := strings.ToLower(strings.TrimSpace(getenv(EnvExporter))); choice {
	case "", "off":
		return nil
	default:
		return errors.New("tracing: " + EnvExporter + "=" + choice + ": this build has no tracing (built with make build TRACING=off; the default, TRACING=otel, has it)")
	}
}

// Handler returns h: nothing to trace.
func Handler[In, Out any](_ string, h func(context.Context, In) (Out, error), _ func(In) Identity) func(context.Context, In) (Out, error) {
	return h
}

// Engine returns e.
func Engine(e target.Engine) target.Engine { return e }

// SDK is nil: the client's default, the SDK's no-op tracer provider.
func SDK() smithytracing.TracerProvider { return nil }

// AWS leaves cfg as it is.
func AWS(*aws.Config) {}

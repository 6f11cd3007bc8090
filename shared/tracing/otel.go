//go:build otel

package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const enabled = true

func (id Identity) attributes() []attribute.KeyValue {
	var kv []attribute.KeyValue
	if id.Secret != "" {
		kv = append(kv, attribute.String(KeySecret, id.Secret))
	}
	if id.Execution != "" {
		kv = append(kv, attribute.String(KeyExecution, id.Execution))
	}
	return kv
}

// stamp puts the context's identity on every span as it starts, so the
// SDK's and the engines' spans carry it without knowing of rotations.
type stamp struct{}

func (stamp) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if kv := IdentityFrom(parent).attributes(); len(kv) > 0 {
		s.SetAttributes(kv...)
	}
}
func (stamp) OnEnd(sdktrace.ReadOnlySpan)      {}
func (stamp) Shutdown(context.Context) error   { return nil }
func (stamp) ForceFlush(context.Context) error { return nil }

// New returns a tracer provider for the function service that exports
// every sampled span to exp as it ends (synchronously: a Lambda
// environment may be frozen as soon as the handler returns, and a UDP
// datagram to the local daemon costs microseconds). Trace and span ids
// are X-Ray's (the trace id starts with the epoch second); a span whose
// parent came from a trace header follows its sampling decision.
func New(service string, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
	st := newStages()
	active.Store(st)
	return sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(stamp{}),
		sdktrace.WithSpanProcessor(st),
		sdktrace.WithSyncer(onlyCalls{exp}),
		sdktrace.WithIDGenerator(xray.NewIDGenerator()),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
}

// Setup makes the tracer provider getenv describes (EnvExporter) the
// global one, with X-Ray's propagator (with tracing off the global
// provider stays the no-op one, and instrumentation costs an interface
// call). A bad EnvExporter or EnvDaemon is an error that names the
// variable.
func Setup(getenv func(string) string, service string) error {
	exp, err := exporterFromEnv(getenv)
	if err != nil || exp == nil {
		return err
	}
	otel.SetTracerProvider(New(service, exp))
	otel.SetTextMapPropagator(xray.Propagator{})
	return nil
}

func exporterFromEnv(getenv func(string) string) (sdktrace.SpanExporter, error) {
	daemon := strings.TrimSpace(getenv(EnvDaemon))
	choice := strings.ToLower(strings.TrimSpace(getenv(EnvExporter)))
	if choice == "" {
		choice = "off"
		if daemon != "" {
			choice = "xray"
		}
	}
	switch choice {
	case "off":
		return nil, nil
	case "stdout":
		return NewJSONExporter(os.Stderr), nil
	case "xray":
		if daemon == "" {
			return nil, fmt.Errorf("tracing: %s=xray but %s is empty; turn on active tracing (Lambda sets it) or set %s=off", EnvExporter, EnvDaemon, EnvExporter)
		}
		addr, err := DaemonUDPAddress(daemon)
		if err != nil {
			return nil, err
		}
		return NewXRayExporter(addr)
	}
	return nil, fmt.Errorf("tracing: %s=%q: want xray, stdout or off", EnvExporter, choice)
}

// Handler wraps a Lambda handler h of the function step: each invocation
// runs under a span named step, the child of the invocation's trace
// header, carrying identity(in); the span ends and is exported before the
// handler returns. The error h returns is returned as it is, and recorded
// on the span by its type name (the errorType Step Functions matches) and
// message (messages name the secret and the step, never a value).
func Handler[In, Out any](step string, h func(context.Context, In) (Out, error), identity func(In) Identity) func(context.Context, In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		ctx = FromLambda(ctx)
		var id Identity
		if identity != nil {
			id = identity(in)
		}
		ctx = WithIdentity(ctx, id)
		ctx, span := otel.Tracer(ScopeName).Start(ctx, step,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String(KeyStep, step)))
		out, err := h(ctx, in)
		End(span, err)
		return out, err
	}
}

// End ends span, recording err (if any) as its status.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("error.type", ErrorType(err)))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// FromLambda returns ctx with the remote parent the invocation's trace
// header names (aws-lambda-go puts it in the context as
// "x-amzn-trace-id"; without it, the environment's _X_AMZN_TRACE_ID), so
// that the invocation's span is a child of the function's segment.
func FromLambda(ctx context.Context) context.Context {
	header, _ := ctx.Value("x-amzn-trace-id").(string)
	if header == "" {
		header = os.Getenv(EnvTraceHeader)
	}
	if header == "" {
		return ctx
	}
	return xray.Propagator{}.Extract(ctx, propagation.MapCarrier{"X-Amzn-Trace-Id": header})
}

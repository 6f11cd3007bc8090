//go:build otel

package tracing

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithytracing "github.com/aws/smithy-go/tracing"
	"github.com/aws/smithy-go/tracing/smithyoteltracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SDK is the tracer provider for an AWS SDK client's
// Options.TracerProvider: the SDK's own tracing (the AWS SDK team's
// smithyoteltracing adapter to OpenTelemetry's global provider;
// OpenTelemetry's otelaws middleware is deprecated). A call gets a client
// span ("Secrets Manager.GetSecretValue": rpc.service, rpc.method,
// aws.request_id, http.status_code, and the API error's code on
// failure). The SDK also opens a span for each stage of a call
// (serialize, sign, resolve the endpoint, the retry loop, each attempt,
// the HTTP request); stages folds what they learn (the request id, the
// HTTP status, the number of attempts) into the call's span, and
// onlyCalls drops them at export, so X-Ray gets one subsegment per call.
// Every client each main.go makes sets it.
func SDK() smithytracing.TracerProvider { return smithyoteltracing.Adapt(otel.GetTracerProvider()) }

// AWS puts the trace header on every AWS request (X-Amzn-Trace-Id, which
// X-Ray's propagator writes), as the X-Ray SDK does, so a call also
// appears in the service's side of the trace.
func AWS(cfg *aws.Config) {
	next := cfg.HTTPClient
	if next == nil {
		next = awshttp.NewBuildableClient() // the SDK's default
	}
	cfg.HTTPClient = headerClient{next: next}
}

// headerClient injects the trace header of the request's call into each
// request. The request's context holds the span of the SDK's HTTP stage,
// which onlyCalls drops; the header names the call's span instead, which
// X-Ray has.
type headerClient struct{ next aws.HTTPClient }

func (c headerClient) Do(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if st := active.Load(); st != nil {
		if call, ok := st.call(trace.SpanContextFromContext(ctx).SpanID()); ok {
			ctx = trace.ContextWithSpanContext(ctx, call)
		}
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(r.Header))
	return c.next.Do(r)
}

// active is the stages processor of the provider New made last (the
// global one, which Setup installs).
var active atomic.Pointer[stages]

// call is the span context of the call whose stage (or itself) is id.
func (p *stages) call(id trace.SpanID) (trace.SpanContext, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.calls[id]
	if !ok {
		return trace.SpanContext{}, false
	}
	return c.SpanContext(), true
}

// sdkScope is the instrumentation scope prefix of the AWS SDK's tracers
// (one per service package).
const sdkScope = "github.com/aws/aws-sdk-go-v2/"

// onlyCalls passes on every span but the AWS SDK's spans of a call's
// stages: of the SDK's spans it keeps those of calls (rpc.system aws-api).
type onlyCalls struct{ sdktrace.SpanExporter }

func (o onlyCalls) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	keep := spans[:0:0]
	for _, s := range spans {
		if strings.HasPrefix(s.InstrumentationScope().Name, sdkScope) && !isCall(s) {
			continue
		}
		keep = append(keep, s)
	}
	if len(keep) == 0 {
		return nil
	}
	return o.SpanExporter.ExportSpans(ctx, keep)
}

func isCall(s sdktrace.ReadOnlySpan) bool {
	if s.SpanKind() != trace.SpanKindClient {
		return false
	}
	for _, kv := range s.Attributes() {
		if kv.Key == "rpc.system" {
			return kv.Value.AsString() == "aws-api"
		}
	}
	return false
}

// stages is the span processor that folds what the AWS SDK's stage spans
// record into the span of their call: aws.request_id and
// http.status_code (the last attempt's), and aws.attempts.
type stages struct {
	mu    sync.Mutex
	calls map[trace.SpanID]sdktrace.ReadWriteSpan // open call spans, by their own id and their stages' ids
	tries map[trace.SpanID]int                    // attempts, by call span id
}

func newStages() *stages {
	return &stages{calls: map[trace.SpanID]sdktrace.ReadWriteSpan{}, tries: map[trace.SpanID]int{}}
}

func (p *stages) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	if !strings.HasPrefix(s.InstrumentationScope().Name, sdkScope) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if call, ok := p.calls[s.Parent().SpanID()]; ok && s.Parent().IsValid() {
		p.calls[s.SpanContext().SpanID()] = call // a stage, under a call or a stage of it
		if s.Name() == "Attempt" {
			p.tries[call.SpanContext().SpanID()]++
		}
		return
	}
	p.calls[s.SpanContext().SpanID()] = s // the call (smithyoteltracing sets rpc.system after Start)
}

func (p *stages) OnEnd(s sdktrace.ReadOnlySpan) {
	if !strings.HasPrefix(s.InstrumentationScope().Name, sdkScope) {
		return
	}
	id := s.SpanContext().SpanID()
	p.mu.Lock()
	defer p.mu.Unlock()
	call, ok := p.calls[id]
	delete(p.calls, id)
	if !ok {
		return
	}
	if call.SpanContext().SpanID() == id {
		delete(p.tries, id)
		return
	}
	for _, kv := range s.Attributes() {
		if kv.Key == "aws.request_id" || kv.Key == "http.status_code" {
			call.SetAttributes(kv)
		}
	}
	if n := p.tries[call.SpanContext().SpanID()]; n > 0 {
		call.SetAttributes(attribute.Int("aws.attempts", n))
	}
}

func (*stages) Shutdown(context.Context) error   { return nil }
func (*stages) ForceFlush(context.Context) error { return nil }

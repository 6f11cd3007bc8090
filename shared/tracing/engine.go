//go:build otel

package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/secretsaga/secretsaga/shared/target"
)

// Engine wraps e so each of its operations runs under a client span
// ("postgres SetPassword"): where (host, port), as whom, how it ended.
// Requests pass through untouched; no password reaches a span.
func Engine(e target.Engine) target.Engine { return traced{e} }

type traced struct{ target.Engine }

func (t traced) start(ctx context.Context, op string, c target.Credential, user string) (context.Context, trace.Span) {
	port := c.Port
	if port == 0 {
		port = t.DefaultPort()
	}
	if user == "" {
		user = c.Username
	}
	kv := []attribute.KeyValue{
		attribute.String(KeyDBSystem, t.Name()),
		attribute.String(KeyDBOperation, op),
		attribute.Int(KeyServerPort, port),
		attribute.String(KeyDBUser, user),
	}
	if c.Host != "" {
		kv = append(kv, attribute.String(KeyServerAddress, c.Host))
	}
	return otel.Tracer(ScopeName).Start(ctx, t.Name()+" "+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(kv...))
}

func (t traced) SetPassword(ctx context.Context, req target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	var c target.Credential
	if len(req.Logins) > 0 {
		c = req.Logins[0]
	}
	ctx, span := t.start(ctx, "SetPassword", c, req.Username)
	resp, err := t.Engine.SetPassword(ctx, req)
	if err == nil {
		span.SetAttributes(attribute.Int("secretsaga.logged_in_with", resp.LoggedInWith), attribute.Bool("secretsaga.already_set", resp.AlreadySet))
	}
	End(span, err)
	return resp, err
}

func (t traced) Verify(ctx context.Context, req target.VerifyRequest) error {
	ctx, span := t.start(ctx, "Verify", req.Credential, "")
	err := t.Engine.Verify(ctx, req)
	End(span, err)
	return err
}

func (t traced) EnsureUser(ctx context.Context, req target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	op := "EnsureUser"
	if req.CheckOnly {
		op = "CheckUser"
	}
	ctx, span := t.start(ctx, op, req.Master, req.Username)
	resp, err := t.Engine.EnsureUser(ctx, req)
	if err == nil {
		span.SetAttributes(attribute.Bool("secretsaga.created", resp.Created), attribute.Bool("secretsaga.exists", resp.Exists))
	}
	End(span, err)
	return resp, err
}

//go:build otel

package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

const (
	testSecret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-db-AbCdEf"
	testExec   = "arn:aws:states:eu-west-1:111122223333:execution:rotation:run-1"
	// A trace header as Lambda hands it to a sampled invocation.
	testHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
)

// fakeEngine is a target.Engine that records the context it was called
// with and answers err.
type fakeEngine struct {
	err error
	ctx context.Context
}

func (f *fakeEngine) Name() string                      { return "postgresql" }
func (f *fakeEngine) DefaultPort() int                  { return 5432 }
func (f *fakeEngine) Capabilities() target.Capabilities { return target.Capabilities{} }
func (f *fakeEngine) Verify(ctx context.Context, _ target.VerifyRequest) error {
	f.ctx = ctx
	return f.err
}
func (f *fakeEngine) SetPassword(ctx context.Context, _ target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	f.ctx = ctx
	return target.SetPasswordResponse{LoggedInWith: 1}, f.err
}
func (f *fakeEngine) EnsureUser(ctx context.Context, _ target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	f.ctx = ctx
	return target.EnsureUserResponse{Created: true}, f.err
}

type stepError struct{ msg string }

func (e *stepError) Error() string { return e.msg }

// install makes a provider exporting to memory the global one for the
// test.
func install(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := New("setsecret", exp)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })
	return exp
}

// TestHandlerSpans: the invocation's span is a child of Lambda's trace
// header, every span under it (the engine's) carries the rotation's
// identity, the handler's error is recorded by type name, and no password
// reaches any span.
func TestHandlerSpans(t *testing.T) {
	exp := install(t)
	password := secret.NewPassword("p4ss-w0rd-that-must-not-leak")
	eng := Engine(&fakeEngine{})
	type input struct{ Secret, Exec string }
	h := Handler("setsecret", func(ctx context.Context, in input) (string, error) {
		cred := target.Credential{Host: "db.internal", Username: "app", Password: password}
		if _, err := eng.SetPassword(ctx, target.SetPasswordRequest{Username: "app", New: password, Logins: []target.Credential{cred}}); err != nil {
			return "", err
		}
		if err := eng.Verify(ctx, target.VerifyRequest{Credential: cred}); err != nil {
			return "", err
		}
		return "", fmt.Errorf("set of %s: %w", in.Secret, &stepError{msg: "the database refused"})
	}, func(in input) Identity { return Identity{Secret: in.Secret, Execution: in.Exec} })

	ctx := lambdaCtx(testHeader)
	if _, err := h(ctx, input{Secret: testSecret, Exec: testExec}); err == nil {
		t.Fatal("the handler's error was lost")
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3 (SetPassword, Verify, setsecret)", len(spans))
	}
	root := spans[2]
	if root.Name != "setsecret" {
		t.Fatalf("last span %q, want the invocation's", root.Name)
	}
	if got := XRayTraceID(root.SpanContext.TraceID()); got != "1-5759e988-bd862e3fe1be46a994272793" {
		t.Errorf("trace id %s: not the header's Root", got)
	}
	if got := root.Parent.SpanID().String(); got != "53995c3f42cd8ad8" {
		t.Errorf("the invocation's parent is %s, want the header's Parent", got)
	}
	for _, s := range spans {
		a := attrs(s.Attributes)
		if a[KeySecret] != testSecret || a[KeyExecution] != testExec {
			t.Errorf("span %q: identity %q %q, want the rotation's", s.Name, a[KeySecret], a[KeyExecution])
		}
		if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("span %q is in another trace", s.Name)
		}
	}
	if a := attrs(root.Attributes); a["error.type"] != "stepError" || root.Status.Description == "" {
		t.Errorf("root error type %q status %q, want stepError and the message", a["error.type"], root.Status.Description)
	}
	if a := attrs(spans[0].Attributes); spans[0].Name != "postgresql SetPassword" || a[KeyServerAddress] != "db.internal" || a[KeyServerPort] != "5432" || a[KeyDBUser] != "app" {
		t.Errorf("engine span %q %v", spans[0].Name, a)
	}
	var buf bytes.Buffer
	je := NewJSONExporter(&buf)
	if err := je.ExportSpans(context.Background(), tracetest.SpanStubs(spans).Snapshots()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), password.Reveal()) {
		t.Fatal("a password reached a span")
	}
}

// TestUnsampledHeader: Sampled=0 in Lambda's header means nothing is
// exported (the function's segment is not recorded either).
func TestUnsampledHeader(t *testing.T) {
	exp := install(t)
	h := Handler("testsecret", func(ctx context.Context, _ int) (int, error) { return 0, nil }, nil)
	ctx := lambdaCtx(strings.Replace(testHeader, "Sampled=1", "Sampled=0", 1))
	if _, err := h(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans exported from an unsampled invocation", n)
	}
}

// lambdaCtx is a context as aws-lambda-go makes it for an invocation
// whose trace header is header.
func lambdaCtx(header string) context.Context {
	//lint:ignore SA1029 aws-lambda-go's own key, which FromLambda reads
	return context.WithValue(context.Background(), "x-amzn-trace-id", header)
}

func attrs(kv []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, a := range kv {
		m[a.Key] = a.Value.String()
	}
	return m
}

// TestXRayDaemonProtocol sends spans to a UDP listener standing for the
// daemon and checks each datagram as the developer guide describes it:
// the header line, then one document with the X-Ray trace id, the
// subsegment's type and parent, and the identity as annotations.
func TestXRayDaemonProtocol(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr, err := DaemonUDPAddress("tcp:127.0.0.1:2000 udp:" + pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	xe, err := NewXRayExporter(addr)
	if err != nil {
		t.Fatal(err)
	}
	tp := New("finishsecret", xe)
	defer tp.Shutdown(context.Background())
	ctx := WithIdentity(FromLambda(lambdaCtx(testHeader)), Identity{Secret: testSecret, Execution: testExec})
	ctx, root := tp.Tracer("t").Start(ctx, "finishsecret")
	_, child := tp.Tracer("t").Start(ctx, "postgresql Verify")
	child.SetAttributes(attribute.String(KeyDBSystem, "postgresql"), attribute.String(KeyServerAddress, "db"), attribute.Int(KeyServerPort, 5432), attribute.String(KeyDBUser, "app"))
	End(child, &stepError{msg: "refused"})
	root.End()

	docs := make([]Document, 0, 2)
	buf := make([]byte, 65536)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(docs) < 2 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(docs), err)
		}
		head, body, ok := bytes.Cut(buf[:n], []byte("\n"))
		if !ok || string(head) != `{"format": "json", "version": 1}` {
			t.Fatalf("datagram header %q", head)
		}
		var d Document
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("document: %v: %s", err, body)
		}
		docs = append(docs, d)
	}
	child0, root0 := docs[0], docs[1]
	idRE := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, d := range docs {
		if d.TraceID != "1-5759e988-bd862e3fe1be46a994272793" || !idRE.MatchString(d.ID) || d.Type != "subsegment" || d.EndTime < d.StartTime || d.StartTime < 1e9 {
			t.Errorf("document %+v", d)
		}
		if d.Annotations["secretsaga_secret_arn"] != testSecret || d.Annotations["secretsaga_execution_arn"] != testExec {
			t.Errorf("%s: annotations %v", d.Name, d.Annotations)
		}
	}
	if root0.ParentID != "53995c3f42cd8ad8" || child0.ParentID != root0.ID {
		t.Errorf("parents: root %s (want the header's), child %s (want %s)", root0.ParentID, child0.ParentID, root0.ID)
	}
	if child0.Namespace != "remote" || child0.SQL["url"] != "db:5432" || child0.SQL["user"] != "app" || !child0.Fault ||
		child0.Cause == nil || child0.Cause.Exceptions[0].Type != "stepError" {
		t.Errorf("database subsegment %+v", child0)
	}
}

func TestSegmentOfAnAWSCall(t *testing.T) {
	// The attributes the AWS SDK puts on a call's span (its operation
	// tracer: rpc.system, rpc.service, rpc.method; the request id and
	// the HTTP status; the API error's code and message on failure).
	s := tracetest.SpanStub{
		Name: "Secrets Manager.PutSecretValue", SpanKind: trace.SpanKindClient,
		Attributes: []attribute.KeyValue{
			attribute.String("rpc.system", "aws-api"), attribute.String("rpc.service", "Secrets Manager"),
			attribute.String("rpc.method", "PutSecretValue"), attribute.String("aws.request_id", "req-1"),
			attribute.Int("http.status_code", 400), attribute.String("api.error_code", "ResourceExistsException"),
			attribute.String("api.error_message", "a version with this token exists"), attribute.String(KeySecret, testSecret),
		},
		StartTime: time.Unix(1700000000, 0), EndTime: time.Unix(1700000001, 0),
	}
	d := Segment(s.Snapshot())
	if d.Namespace != "aws" || d.Name != "Secrets Manager" || d.AWS["operation"] != "PutSecretValue" || d.AWS["request_id"] != "req-1" ||
		!d.Error || d.Fault || d.Type != "" || d.Metadata != nil || d.Cause == nil || d.Cause.Exceptions[0].Type != "ResourceExistsException" {
		t.Errorf("%+v", d)
	}
}

// TestAWSCallsThroughTheSDK runs real SDK calls (against a test server)
// with AWS's instrumentation: one span per call reaches the exporter,
// not the SDK's spans of each stage, under the caller's span, with the
// identity, the service and operation, and the trace header on the
// request.
func TestAWSCallsThroughTheSDK(t *testing.T) {
	exp := install(t)
	prevProp := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(xray.Propagator{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prevProp) })
	var headers []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers = append(headers, r.Header.Get("X-Amzn-Trace-Id"))
		w.Header().Set("x-amzn-RequestId", "req-42")
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"ARN":"` + testSecret + `","Name":"app-db"}`))
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	AWS(&cfg)
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.TracerProvider = SDK() })
	h := Handler("finishsecret", func(ctx context.Context, _ int) (int, error) {
		_, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(testSecret)})
		return 0, err
	}, func(int) Identity { return Identity{Secret: testSecret, Execution: testExec} })
	ctx := lambdaCtx(testHeader)
	if _, err := h(ctx, 0); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("exported %v, want the call and the step", names)
	}
	call, step := spans[0], spans[1]
	d := Segment(call.Snapshot())
	if d.Namespace != "aws" || d.Name != "Secrets Manager" || d.AWS["operation"] != "DescribeSecret" || d.AWS["request_id"] != "req-42" || d.AWS["retries"] != int64(0) || d.HTTP["response"].(map[string]any)["status"] != int64(200) ||
		d.Annotations["secretsaga_secret_arn"] != testSecret || call.Parent.SpanID() != step.SpanContext.SpanID() {
		t.Errorf("call segment %+v", d)
	}
	// The header names the call's span, the one X-Ray gets, not the
	// SDK's HTTP stage that the request's context holds.
	if want := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=" + call.SpanContext.SpanID().String() + ";Sampled=1"; len(headers) != 1 || headers[0] != want {
		t.Errorf("trace headers sent: %q, want %q", headers, want)
	}
}

func TestDaemonAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:2000", "127.0.0.1:2000"},
		{"tcp:169.254.79.129:2000 udp:169.254.79.129:2000", "169.254.79.129:2000"},
		{"udp:10.0.0.1:2000 tcp:10.0.0.1:2001", "10.0.0.1:2000"},
		{"", ""},
		{"tcp:1.2.3.4:2000", ""},
	} {
		got, err := DaemonUDPAddress(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%q: %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestExporterFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    string // exporter type, "" for none
		wantErr string
	}{
		{env: nil, want: ""},
		{env: map[string]string{EnvDaemon: "127.0.0.1:2000"}, want: "*tracing.XRayExporter"},
		{env: map[string]string{EnvDaemon: "127.0.0.1:2000", EnvExporter: "off"}, want: ""},
		{env: map[string]string{EnvExporter: "stdout"}, want: "*tracing.JSONExporter"},
		{env: map[string]string{EnvExporter: "xray"}, wantErr: EnvDaemon},
		{env: map[string]string{EnvExporter: "jaeger"}, wantErr: "want xray, stdout or off"},
		{env: map[string]string{EnvDaemon: "tcp:1.2.3.4:2000"}, wantErr: EnvDaemon},
	} {
		exp, err := exporterFromEnv(func(k string) string { return tc.env[k] })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one naming %q", tc.env, err, tc.wantErr)
			}
			continue
		}
		got := ""
		if exp != nil {
			got = fmt.Sprintf("%T", exp)
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %s %v, want %s", tc.env, got, err, tc.want)
		}
	}
}

func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&stepError{}, "stepError"},
		{fmt.Errorf("wrapped: %w", &stepError{}), "stepError"},
		{errors.New("plain"), "error"},
	} {
		if got := ErrorType(tc.err); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}

var _ sdktrace.SpanExporter = (*XRayExporter)(nil)

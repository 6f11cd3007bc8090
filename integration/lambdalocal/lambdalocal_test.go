package lambdalocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

type ConflictError struct{ Secret string }

func (e *ConflictError) Error() string { return "conflict on " + e.Secret }

type valueError struct{}

func (valueError) Error() string { return "by value" }

type in struct {
	Name string `json:"name"`
}

type out struct {
	Greeting  string `json:"greeting"`
	RequestID string `json:"requestId"`
	ARN       string `json:"arn"`
	Deadline  bool   `json:"deadline"`
}

func start(t *testing.T) (*Server, string) {
	t.Helper()
	s := New()
	s.Register("hello", func(ctx context.Context, e in) (out, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		_, dl := ctx.Deadline()
		return out{Greeting: "hello " + e.Name, RequestID: lc.AwsRequestID, ARN: lc.InvokedFunctionArn, Deadline: dl}, nil
	}, 5*time.Second)
	s.Register("conflict", func(ctx context.Context, e in) (out, error) {
		return out{}, &ConflictError{Secret: e.Name}
	}, 0)
	s.Register("wrapped", func(ctx context.Context) error {
		return fmt.Errorf("wrapped: %w", &ConflictError{Secret: "x"})
	}, 0)
	s.Register("byvalue", func() error { return valueError{} }, 0)
	s.Register("panics", func(ctx context.Context, e in) (out, error) {
		panic("boom " + e.Name)
	}, 0)
	s.Register("slow", func(ctx context.Context) (string, error) {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		return "late", nil
	}, 100*time.Millisecond)
	s.Register("nothing", func() {}, 0)
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, url
}

type response struct {
	status int
	header http.Header
	body   string
}

func invoke(t *testing.T, url, fn, payload string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/2015-03-31/functions/"+fn+"/invocations", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

func wantFunctionError(t *testing.T, r response, errType, msg string) {
	t.Helper()
	if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "Unhandled" {
		t.Fatalf("status %d, X-Amz-Function-Error %q, want 200 Unhandled; body %s", r.status, r.header.Get("X-Amz-Function-Error"), r.body)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if len(e) != 2 || e["errorType"] != errType || !strings.Contains(fmt.Sprint(e["errorMessage"]), msg) {
		t.Fatalf("body %s, want errorType %q and a message containing %q (and nothing else)", r.body, errType, msg)
	}
}

func TestInvokeSuccess(t *testing.T) {
	s, url := start(t)
	for _, fn := range []string{
		"hello",
		"arn:aws:lambda:us-east-1:000000000000:function:hello",
		"arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST",
		"hello:live",
	} {
		r := invoke(t, url, fn, `{"name":"world"}`)
		if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "" || r.header.Get("X-Amz-Executed-Version") != "$LATEST" {
			t.Fatalf("%s: status %d headers %v body %s", fn, r.status, r.header, r.body)
		}
		var o out
		if err := json.Unmarshal([]byte(r.body), &o); err != nil {
			t.Fatal(err)
		}
		wantARN := "arn:aws:lambda:us-east-1:000000000000:function:hello"
		if strings.HasPrefix(fn, "arn:") {
			wantARN = fn // the ARN the caller invoked, qualifier included
		}
		if o.Greeting != "hello world" || o.RequestID == "" || !o.Deadline || o.ARN != wantARN {
			t.Fatalf("%s: got %+v", fn, o)
		}
		if o.RequestID != r.header.Get("X-Amzn-Requestid") {
			t.Fatalf("request id %q, header %q", o.RequestID, r.header.Get("X-Amzn-Requestid"))
		}
	}
	if r := invoke(t, url, "nothing", ``); r.status != 200 || r.body != "null" {
		t.Fatalf("no-result handler: %d %s", r.status, r.body)
	}
	if got := s.Invocations(); got["hello"] != 4 || got["nothing"] != 1 {
		t.Fatalf("invocations %v", got)
	}
}

func TestInvokeErrors(t *testing.T) {
	s, url := start(t)
	wantFunctionError(t, invoke(t, url, "conflict", `{"name":"db"}`), "ConflictError", "conflict on db")
	wantFunctionError(t, invoke(t, url, "wrapped", `{}`), "wrapError", "wrapped: conflict on x")
	wantFunctionError(t, invoke(t, url, "byvalue", `{}`), "valueError", "by value")
	r := invoke(t, url, "panics", `{"name":"now"}`)
	wantFunctionError(t, r, "Panic", "boom now")
	if strings.Contains(r.body, "stackTrace") || strings.Contains(r.body, ".go") {
		t.Fatalf("panic response leaks a stack: %s", r.body)
	}
	wantFunctionError(t, invoke(t, url, "slow", `{}`), "Sandbox.Timedout", "Task timed out after 0.10 seconds")
	// A payload the handler cannot decode is an error of the function too.
	wantFunctionError(t, invoke(t, url, "hello", `[1]`), "UnmarshalTypeError", "cannot unmarshal")
	// Errors counts every invocation that ended in a function error, as
	// Lambda's Errors metric does; a successful one is not counted.
	invoke(t, url, "hello", `{"name":"world"}`)
	want := map[string]int{"conflict": 1, "wrapped": 1, "byvalue": 1, "panics": 1, "slow": 1, "hello": 1}
	if got := s.Errors(); !maps.Equal(got, want) {
		t.Fatalf("errors %v, want %v", got, want)
	}
}

func TestInvokeUnknownFunction(t *testing.T) {
	s, url := start(t)
	r := invoke(t, url, "arn:aws:lambda:us-east-1:000000000000:function:nope", `{}`)
	if r.status != 404 || r.header.Get("X-Amzn-Errortype") != "ResourceNotFoundException" {
		t.Fatalf("status %d headers %v", r.status, r.header)
	}
	var e map[string]string
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e["Type"] != "User" || !strings.HasPrefix(e["Message"], "Function not found: ") {
		t.Fatalf("body %s (%v)", r.body, err)
	}
	if len(s.Invocations()) != 0 {
		t.Fatalf("invocations %v", s.Invocations())
	}
}

func TestInvokeAsyncAndDryRun(t *testing.T) {
	s := New()
	var mu sync.Mutex
	got := ""
	done := make(chan struct{})
	s.Register("async", func(e in) error {
		mu.Lock()
		got = e.Name
		mu.Unlock()
		close(done)
		return nil
	}, 0)
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := invoke(t, url, "async", `{}`, "X-Amz-Invocation-Type", "DryRun"); r.status != 204 {
		t.Fatalf("DryRun: %d", r.status)
	}
	if r := invoke(t, url, "async", `{"name":"later"}`, "X-Amz-Invocation-Type", "Event"); r.status != 202 {
		t.Fatalf("Event: %d %s", r.status, r.body)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("async invocation did not run")
	}
	mu.Lock()
	defer mu.Unlock()
	if got != "later" {
		t.Fatalf("got %q", got)
	}
}

func TestConcurrentInvocations(t *testing.T) {
	s, url := start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(url+"/2015-03-31/functions/hello/invocations", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"%d"}`, i)))
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var o out
			if err := json.NewDecoder(res.Body).Decode(&o); err != nil || o.Greeting != fmt.Sprintf("hello %d", i) {
				errs <- fmt.Errorf("%d: %+v %v", i, o, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.Invocations()["hello"]; n != 50 {
		t.Fatalf("invocations %d", n)
	}
}

func TestErrorType(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&ConflictError{}, "ConflictError"},
		{valueError{}, "valueError"},
		{errors.New("x"), "errorString"},
	} {
		if got := ErrorType(tt.err); got != tt.want {
			t.Errorf("ErrorType(%T) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestClose(t *testing.T) {
	s, url := start(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Post(url+"/2015-03-31/functions/hello/invocations", "application/json", strings.NewReader(`{}`)); err == nil {
		t.Fatal("invoke after Close succeeded")
	}
}

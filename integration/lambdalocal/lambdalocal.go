// Package lambdalocal is a local stand-in for AWS Lambda's Invoke API that
// runs Go handlers in this process, or the functions' built binaries
// behind the Lambda Runtime API (RegisterBinary).
//
// Each function is a handler of any signature that aws-lambda-go's
// lambda.NewHandler accepts, so it is the very handler the function's
// main package passes to lambda.Start. The server speaks the Invoke
// operation of the real API (POST /2015-03-31/functions/{FunctionName}/
// invocations), so the real SDK client, or the ASL runner of package
// sfnlocal, can call it:
//
//   - success: 200, the JSON result, X-Amz-Executed-Version: $LATEST;
//   - a returned error: 200, X-Amz-Function-Error: Unhandled and
//     {"errorType","errorMessage"}, errorType being the error's Go type name
//     without pointer or package (*faults.ConflictError → "ConflictError"),
//     exactly as aws-lambda-go reports it in Lambda;
//   - a panic: the same, with errorType "Panic" and the panic value as the
//     message (never a stack trace);
//   - running past the function's timeout: errorType "Sandbox.Timedout";
//   - an unknown function: 404 ResourceNotFoundException.
package lambdalocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"
)

const (
	region  = "us-east-1"
	account = "000000000000"

	// DefaultTimeout applies when Register is given a timeout <= 0 (Lambda's
	// own default is 3 s; the local stack's handlers call real stand-ins, so
	// this is more generous).
	DefaultTimeout = 60 * time.Second

	// maxPayload is Lambda's synchronous request payload limit.
	maxPayload = 6 << 20
)

// Server is a local Lambda Invoke endpoint. The zero value is not usable; call New.
type Server struct {
	mu          sync.Mutex
	funcs       map[string]*function
	invocations map[string]int
	errs        map[string]int // invocations that ended in a function error

	srv    *http.Server
	closed bool
	active map[net.Conn]bool // connections serving a request
	base   context.Context   // cancelled by Close: ends in-flight handlers' contexts
	cancel context.CancelFunc
	wg     sync.WaitGroup // in-flight invocations (sync and async); Add only under mu while !closed
}

type function struct {
	name    string
	handler any
	timeout time.Duration
	// shared is set when handler is itself a lambda.Handler. Its Invoke
	// returns bytes that alias a buffer it reuses on the next call, so
	// calls to it are serialised and the result copied.
	shared lambda.Handler
	mu     sync.Mutex
	// bin is set for a function that runs as its built binary
	// (RegisterBinary) instead of handler.
	bin *pool
}

// invoke runs the handler once. aws-lambda-go's handlers are built for one
// invocation at a time (the runtime's loop): a handler made by
// lambda.NewHandler returns a pooled buffer's bytes, so each invocation gets
// its own, and the result is copied before anyone else can reuse it.
func (f *function) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if f.shared != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		out, err := f.shared.Invoke(ctx, payload)
		return bytes.Clone(out), err
	}
	out, err := lambda.NewHandler(f.handler).Invoke(ctx, payload)
	return bytes.Clone(out), err
}

// New returns a server with no functions.
func New() *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		funcs:       map[string]*function{},
		invocations: map[string]int{},
		errs:        map[string]int{},
		active:      map[net.Conn]bool{},
		base:        ctx,
		cancel:      cancel,
	}
}

// Register adds (or replaces) a function. name is the function's name, such
// as "secretsaga-createsecret"; handler is anything lambda.NewHandler
// accepts; timeout is the function's configured timeout (<= 0: DefaultTimeout).
// Register may be called before or after Start.
func (s *Server) Register(name string, handler any, timeout time.Duration) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	f := &function{name: name, handler: handler, timeout: timeout}
	if h, ok := handler.(lambda.Handler); ok {
		f.shared = h
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.funcs[name] = f
}

// Start listens on a random loopback port and returns the endpoint's base
// URL, "http://127.0.0.1:PORT" (what an SDK client takes as BaseEndpoint).
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.closed {
		return "", errors.New("lambdalocal: already started or closed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("lambdalocal: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.invoke)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, "UnknownOperationException", "User",
			fmt.Sprintf("unknown operation %s %s", r.Method, r.URL.Path))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: s.trackConn}
	go func() { _ = s.srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the server: it refuses new invocations, cancels the contexts
// of those in flight, waits (at most 5 s) for them to answer, and closes
// every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	select {
	case <-done:
	case <-deadline.C: // a handler that ignores its context
	}
	s.mu.Lock()
	var pools []*pool
	for _, f := range s.funcs {
		if f.bin != nil {
			pools = append(pools, f.bin)
		}
	}
	s.mu.Unlock()
	for _, p := range pools {
		p.close() // the runtime processes of binary functions
	}
	if srv == nil {
		return nil
	}
	// Let the answers already being written reach their callers. (Not
	// http.Server.Shutdown: it waits up to 5 s for connections that were
	// opened but never used, which idle HTTP clients leave behind.)
	for until := time.Now().Add(2 * time.Second); s.activeConns() > 0 && time.Now().Before(until); {
		time.Sleep(2 * time.Millisecond)
	}
	return srv.Close()
}

func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateActive {
		s.active[c] = true
	} else {
		delete(s.active, c)
	}
}

func (s *Server) activeConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Invocations returns how many times each function was invoked (a copy).
func (s *Server) Invocations() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.invocations)
}

// Errors returns how many invocations of each function ended in a function
// error: a returned error, a panic, a timeout (Lambda's Errors metric; a
// copy).
func (s *Server) Errors() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errs)
}

// functionName turns the FunctionName path parameter (a name, a partial or
// full ARN, any of them with a ":qualifier") into the bare function name.
func functionName(raw string) string {
	name := raw
	if i := strings.Index(name, ":function:"); i >= 0 {
		name = name[i+len(":function:"):]
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i] // version or alias
	}
	return name
}

// errorResponse is the payload Lambda returns for a function error.
type errorResponse struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// ErrorType is the errorType aws-lambda-go reports for err: its dynamic
// type's name, without pointer and package.
func ErrorType(err error) string {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return ive.Type
	}
	t := reflect.TypeOf(err)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("name")
	name := functionName(raw)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeAPIError(w, http.StatusServiceUnavailable, "ServiceException", "Service", "the local Lambda endpoint is shutting down")
		return
	}
	f := s.funcs[name]
	if f != nil {
		s.invocations[name]++
		s.wg.Add(1) // Done by the synchronous path below, or by the async goroutine
	}
	s.mu.Unlock()
	async := false
	defer func() {
		if f != nil && !async {
			s.wg.Done()
		}
	}()
	if f == nil {
		writeAPIError(w, http.StatusNotFound, "ResourceNotFoundException", "User",
			fmt.Sprintf("Function not found: arn:aws:lambda:%s:%s:function:%s", region, account, name))
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "User", "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
		return
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestContentException", "User", "Could not parse request body into json")
		return
	}
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, account, name)
	if strings.HasPrefix(raw, "arn:") {
		arn = raw
	}
	requestID := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", requestID)

	switch r.Header.Get("X-Amz-Invocation-Type") {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		async = true
		go func() {
			defer s.wg.Done()
			s.run(f, payload, requestID, arn)
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}

	out, ferr := s.run(f, payload, requestID, arn)
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	w.Header().Set("Content-Type", "application/json")
	if ferr != nil {
		body, _ := json.Marshal(ferr)
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// run invokes f once with its timeout, turning errors, panics and timeouts
// into Lambda's error payload, and counts the errors.
func (s *Server) run(f *function, payload []byte, requestID, arn string) ([]byte, *errorResponse) {
	out, ferr := s.runOnce(f, payload, requestID, arn)
	if ferr != nil {
		s.mu.Lock()
		s.errs[f.name]++
		s.mu.Unlock()
	}
	return out, ferr
}

func (s *Server) runOnce(f *function, payload []byte, requestID, arn string) ([]byte, *errorResponse) {
	ctx, cancel := context.WithTimeout(s.base, f.timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       requestID,
		InvokedFunctionArn: arn,
	})

	type result struct {
		out []byte
		err *errorResponse
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				// A panic value may name the errorType the Lambda service
				// reports for it (a test's simulated crash reports a timeout).
				typ := "Panic"
				if n, ok := v.(interface{ ErrorType() string }); ok {
					typ = n.ErrorType()
				}
				done <- result{err: &errorResponse{ErrorType: typ, ErrorMessage: fmt.Sprintf("%v", v)}}
			}
		}()
		if f.bin != nil {
			out, fe := f.bin.invoke(ctx, payload, requestID)
			switch {
			case fe != nil:
				done <- result{err: fe}
			case out == nil && ctx.Err() != nil:
				// Timed out or shutting down: reported below.
			default:
				if len(bytes.TrimSpace(out)) == 0 {
					out = []byte("null")
				}
				done <- result{out: out}
			}
			return
		}
		out, err := f.invoke(ctx, payload)
		if err != nil {
			done <- result{err: &errorResponse{ErrorType: ErrorType(err), ErrorMessage: errorMessage(err)}}
			return
		}
		if len(bytes.TrimSpace(out)) == 0 {
			out = []byte("null")
		}
		done <- result{out: out}
	}()
	select {
	case res := <-done:
		return res.out, res.err
	case <-ctx.Done():
		// A handler that finished exactly at the deadline still wins.
		select {
		case res := <-done:
			return res.out, res.err
		default:
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &errorResponse{
				ErrorType:    "Sandbox.Timedout",
				ErrorMessage: fmt.Sprintf("%s %s Task timed out after %.2f seconds", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), requestID, f.timeout.Seconds()),
			}
		}
		return nil, &errorResponse{ErrorType: "Runtime.ExitError", ErrorMessage: "RequestId: " + requestID + " Error: the local Lambda endpoint is shutting down"}
	}
}

func errorMessage(err error) string {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return ive.Message
	}
	return err.Error()
}

// writeAPIError writes an error of the Lambda API itself (not of a function).
func writeAPIError(w http.ResponseWriter, status int, errType, kind, msg string) {
	w.Header().Set("X-Amzn-Errortype", errType)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"Type": kind, "Message": msg})
	_, _ = w.Write(body)
}

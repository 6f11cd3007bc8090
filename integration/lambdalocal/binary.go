package lambdalocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is a function that runs as its built bootstrap executable behind
// the Lambda Runtime API, as in Lambda's provided.al2023 runtime, instead of
// as a handler in this process. The runtime API is served by AWS's Lambda
// Runtime Interface Emulator (aws-lambda-rie, Go module
// github.com/aws/aws-lambda-runtime-interface-emulator): one RIE process per
// concurrent invocation, each running one bootstrap process, which, as in
// Lambda, serves invocation after invocation (warm) until it fails or times
// out.
type Binary struct {
	// Bootstrap is the path of the built function (GOOS/GOARCH of this
	// machine, -tags lambda.norpc, as the deployed one but for the
	// architecture).
	Bootstrap string
	// RIE is the path of the aws-lambda-rie executable.
	RIE string
	// Env is the function's whole environment, "NAME=value": what the CDK
	// app sets (shared/functions) plus what the Lambda runtime would (region,
	// credentials) and the local endpoints (AWS_ENDPOINT_URL_<SERVICE>).
	// Nothing of this process's environment is passed on.
	Env []string
	// MemoryMB is reported to the function (AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
	MemoryMB int
	// Output receives the processes' stdout and stderr: the function's log
	// lines (CloudWatch Logs in Lambda) and the RIE's. Nil discards them.
	Output io.Writer
	// Tracing is Lambda's active tracing (TracingConfig Active): every
	// invocation gets a sampled trace header of its own, Root and Parent
	// (the function segment's id) new, as the runtime API's
	// Lambda-Runtime-Trace-Id (which the RIE does not send: traceProxy).
	// Env should then name the X-Ray daemon (AWS_XRAY_DAEMON_ADDRESS), as
	// Lambda's does.
	Tracing bool
}

// TraceHeader is a new sampled X-Ray trace header, as Lambda makes one for
// an invocation that arrives without one: Root is "1-" + the epoch second
// in 8 hex digits + "-" + 24 random hex digits, Parent 16 random hex
// digits (AWS X-Ray developer guide, "Tracing header").
func TraceHeader() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%x;Parent=%x;Sampled=1", time.Now().Unix(), b[:12], b[12:])
}

// RegisterBinary adds (or replaces) a function named name that runs b.
// Its invocations answer as those of a handler registered with Register
// do: the result, or the function's error with the errorType the
// aws-lambda-go runtime reported (the Go type name, which the state
// machine's Retry and Catch match), or Sandbox.Timedout past timeout (the
// RIE is given the timeout in whole seconds, rounded up, and the bootstrap
// sees the deadline as in Lambda). A process that timed out or failed is
// killed and never reused.
func (s *Server) RegisterBinary(name string, b Binary, timeout time.Duration) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	f := &function{name: name, timeout: timeout, bin: &pool{name: name, b: b, timeout: timeout}}
	s.mu.Lock()
	old := s.funcs[name]
	s.funcs[name] = f
	s.mu.Unlock()
	if old != nil && old.bin != nil {
		old.bin.close()
	}
}

// pool holds one function's idle RIE processes.
type pool struct {
	name    string
	b       Binary
	timeout time.Duration

	mu      sync.Mutex
	idle    []*proc
	all     map[*proc]bool
	closed  bool
	started int // processes started, for tests
}

// proc is one RIE process and the bootstrap it runs.
type proc struct {
	cmd  *exec.Cmd
	url  string // the RIE's invoke endpoint
	done chan struct{}
	// api is the runtime API proxy of a traced function (nil otherwise).
	api *http.Server
}

// kill ends the RIE and the bootstrap it started (its process group).
func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
	if p.api != nil {
		_ = p.api.Close()
	}
}

// traceProxy serves the runtime API at apiAddr to a traced function's
// bootstrap, adding to each invocation it hands out (GET
// .../runtime/invocation/next) the Lambda-Runtime-Trace-Id header Lambda
// sends with active tracing. The RIE does not: its tracer is a no-op that
// renders no trace header, whatever X-Amzn-Trace-Id the invoke had.
func traceProxy(apiAddr string) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: apiAddr})
	rp.ModifyResponse = func(r *http.Response) error {
		if strings.HasSuffix(r.Request.URL.Path, "/runtime/invocation/next") && r.StatusCode == http.StatusOK && r.Header.Get("Lambda-Runtime-Trace-Id") == "" {
			r.Header.Set("Lambda-Runtime-Trace-Id", TraceHeader())
		}
		return nil
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// Started returns how many runtime processes the named binary function has
// started so far (0 for a handler or an unknown function).
func (s *Server) Started(name string) int {
	s.mu.Lock()
	f := s.funcs[name]
	s.mu.Unlock()
	if f == nil || f.bin == nil {
		return 0
	}
	f.bin.mu.Lock()
	defer f.bin.mu.Unlock()
	return f.bin.started
}

func (p *pool) get(ctx context.Context) (*proc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("closed")
	}
	if n := len(p.idle); n > 0 {
		pr := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		select {
		case <-pr.done: // died while idle
			p.drop(pr)
			return p.get(ctx)
		default:
			return pr, nil
		}
	}
	p.started++
	p.mu.Unlock()
	pr, err := p.start(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		go pr.kill()
		return nil, errors.New("closed")
	}
	if p.all == nil {
		p.all = map[*proc]bool{}
	}
	p.all[pr] = true
	return pr, nil
}

func (p *pool) put(pr *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		go pr.kill()
		return
	}
	p.idle = append(p.idle, pr)
}

// drop kills pr and forgets it.
func (p *pool) drop(pr *proc) {
	pr.kill()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.all, pr)
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	all := p.all
	p.all, p.idle = nil, nil
	p.mu.Unlock()
	for pr := range all {
		pr.kill()
	}
}

// freePort returns a loopback address with a port nobody listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs one RIE with the bootstrap and waits until it accepts
// invocations. The RIE listens on two ports (its invoke endpoint and the
// runtime API the bootstrap polls), both chosen here so that processes do
// not collide on the defaults.
func (p *pool) start(ctx context.Context) (*proc, error) {
	var lastErr error
	for range 3 { // a port taken between freePort and the RIE's listen
		invokeAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		apiAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		command := []string{p.b.Bootstrap}
		var api *http.Server
		if p.b.Tracing {
			// The bootstrap polls the proxy, which adds the trace header;
			// env(1) overrides the AWS_LAMBDA_RUNTIME_API the RIE sets.
			// It is found on PATH: not every system keeps it in /usr/bin.
			env, err := exec.LookPath("env")
			if err != nil {
				return nil, fmt.Errorf("lambdalocal: %s with tracing needs env(1) on PATH: %w", p.name, err)
			}
			srv, proxyAddr, err := traceProxy(apiAddr)
			if err != nil {
				return nil, err
			}
			api = srv
			command = []string{env, "AWS_LAMBDA_RUNTIME_API=" + proxyAddr, p.b.Bootstrap}
		}
		cmd := exec.Command(p.b.RIE, append([]string{"--runtime-interface-emulator-address", invokeAddr, "--runtime-api-address", apiAddr}, command...)...)
		cmd.Env = append([]string{
			"AWS_LAMBDA_FUNCTION_NAME=" + p.name,
			"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
			"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(math.Ceil(p.timeout.Seconds()))),
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(max(p.b.MemoryMB, 128)),
			"LOG_LEVEL=warn", // the RIE's own lines; the function's are unaffected
		}, p.b.Env...)
		out := p.b.Output
		if out == nil {
			out = io.Discard
		}
		cmd.Stdout, cmd.Stderr = out, out
		// Its own process group, so that a kill reaches the bootstrap too;
		// and it dies with this process.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			if api != nil {
				_ = api.Close()
			}
			return nil, fmt.Errorf("lambdalocal: start the runtime interface emulator for %s: %w", p.name, err)
		}
		pr := &proc{cmd: cmd, url: "http://" + invokeAddr + "/2015-03-31/functions/function/invocations", done: make(chan struct{}), api: api}
		go func() { _ = cmd.Wait(); close(pr.done) }()
		if lastErr = waitListening(ctx, invokeAddr, pr.done); lastErr == nil {
			return pr, nil
		}
		pr.kill()
	}
	return nil, fmt.Errorf("lambdalocal: the runtime interface emulator for %s did not start: %w", p.name, lastErr)
}

func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("it exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// rieTimedOut starts the body the RIE answers a timed-out invocation with
// ("Task timed out after N.00 seconds").
const rieTimedOut = "Task timed out after"

// invoke runs one invocation on an idle or a new process. ctx carries the
// function's timeout; past it the process is killed and the caller
// reports Sandbox.Timedout.
func (p *pool) invoke(ctx context.Context, payload []byte, requestID string) ([]byte, *errorResponse) {
	pr, err := p.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil // the caller reports the timeout or the shutdown
		}
		return nil, &errorResponse{ErrorType: "Runtime.Unknown", ErrorMessage: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pr.url, bytes.NewReader(payload))
	if err != nil {
		p.put(pr)
		return nil, &errorResponse{ErrorType: "Runtime.Unknown", ErrorMessage: err.Error()}
	}
	req.Header.Set("X-Amzn-RequestId", requestID)
	resp, err := rieClient.Do(req)
	if err != nil {
		go p.drop(pr) // mid-invocation: its state is unknown
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, &errorResponse{ErrorType: "Runtime.ExitError", ErrorMessage: "RequestId: " + requestID + " Error: the runtime exited: " + err.Error()}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		go p.drop(pr)
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, &errorResponse{ErrorType: "Runtime.ExitError", ErrorMessage: "RequestId: " + requestID + " Error: " + err.Error()}
	}
	switch {
	case resp.StatusCode == http.StatusOK && bytes.HasPrefix(body, []byte(rieTimedOut)):
		go p.drop(pr)
		return nil, &errorResponse{ErrorType: "Sandbox.Timedout",
			ErrorMessage: fmt.Sprintf("%s %s Task timed out after %.2f seconds", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), requestID, p.timeout.Seconds())}
	case resp.StatusCode != http.StatusOK:
		// The runtime failed outside the handler (init error, exit, crash).
		go p.drop(pr)
		if fe, ok := functionError(body); ok {
			return nil, fe
		}
		return nil, &errorResponse{ErrorType: "Runtime.ExitError", ErrorMessage: fmt.Sprintf("RequestId: %s Error: the runtime answered %d", requestID, resp.StatusCode)}
	}
	p.put(pr)
	if fe, ok := functionError(body); ok {
		return nil, fe
	}
	return body, nil
}

// rieClient talks to the RIE processes on loopback, without proxies.
var rieClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}

// functionError recognises the error document a runtime posts for a
// function error ({"errorMessage","errorType"} and, from some runtimes,
// "stackTrace"). The RIE answers it with 200 and no
// X-Amz-Function-Error header, unlike Lambda, so the body is all there is;
// no secretsaga handler returns a document of only these keys.
func functionError(body []byte) (*errorResponse, bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil || doc == nil {
		return nil, false
	}
	for k := range doc {
		if k != "errorMessage" && k != "errorType" && k != "stackTrace" {
			return nil, false
		}
	}
	var e errorResponse
	if _, ok := doc["errorType"]; !ok || json.Unmarshal(body, &e) != nil || strings.TrimSpace(e.ErrorType) == "" {
		return nil, false
	}
	return &e, true
}

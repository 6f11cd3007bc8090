// Package sfnlocal runs Amazon States Language definitions locally with the
// npm package aws-local-stepfunctions (integration/node_modules, installed by
// integration/install-deps.sh), every Task calling its Lambda function
// through a Lambda Invoke endpoint such as package lambdalocal's.
//
// Start launches one long-running node process (runner.mjs, embedded here)
// that serves any number of concurrent executions; Execute runs one
// execution to its end and returns its status, output and event history.
//
// What the runner adds to the library:
//   - a Lambda function's error reaches Retry and Catch under its errorType,
//     with Step Functions' Cause: the JSON {"errorMessage","errorType"};
//   - Retry intervals (and MaxDelaySeconds) are multiplied by
//     Request.RetryIntervalScale, so backoff and jitter keep their shape;
//   - $$.Execution.Id/Name and $$.StateMachine.Id/Name are set;
//   - features the library would silently ignore (JSONata, Assign,
//     Distributed Map readers/writers, .waitForTaskToken) and Task resources
//     other than Lambda fail the execution with a clear cause instead.
//
// Not supported by the library: $$.State.* and $$.Task.* context fields.
package sfnlocal

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

//go:embed runner.mjs
var runnerJS []byte

const (
	region  = "us-east-1"
	account = "000000000000"
	// StateMachineName is the state machine's name in the ARNs Execute makes.
	StateMachineName = "rotation"

	startTimeout = 30 * time.Second
)

// Options configure Start.
type Options struct {
	// Stderr receives the node process's stderr (default: discarded).
	Stderr io.Writer
	// NodeModules is the node_modules directory holding
	// aws-local-stepfunctions (default: <repo>/integration/node_modules).
	NodeModules string
}

// Runner is a running node process that executes state machines.
type Runner struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	dir    string
	url    string
	client *http.Client
	done   chan struct{} // closed when the process has exited
	stderr *tail

	closeOnce sync.Once
	closeErr  error
}

// Start starts the runner and waits (at most 30 s) until it listens.
func Start(ctx context.Context, o Options) (_ *Runner, err error) {
	nm := o.NodeModules
	if nm == "" {
		if nm, err = defaultNodeModules(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(nm, "aws-local-stepfunctions", "package.json")); err != nil {
		return nil, fmt.Errorf("sfnlocal: aws-local-stepfunctions is not installed in %s (run integration/install-deps.sh): %w", nm, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: node not found: %w", err)
	}
	dir, err := os.MkdirTemp("", "sfnlocal-")
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	script := filepath.Join(dir, "runner.mjs")
	if err := os.WriteFile(script, runnerJS, 0o600); err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}

	r := &Runner{dir: dir, done: make(chan struct{}), stderr: &tail{max: 8 << 10}}
	stderr := o.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	// Not exec.CommandContext: ctx bounds the start-up only, not the runner's life.
	cmd := exec.Command(node, script, nm)
	cmd.Dir = filepath.Dir(nm)
	// The runner removes dir once it has loaded the script.
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1", "SFNLOCAL_TMPDIR="+dir)
	cmd.Stderr = io.MultiWriter(r.stderr, lockedWriter(stderr))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	// The runner exits when its stdin closes, so it dies with this process.
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sfnlocal: start node: %w", err)
	}
	r.cmd = cmd

	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				first = false
				var hello struct{ Port int }
				if json.Unmarshal(sc.Bytes(), &hello) == nil && hello.Port > 0 {
					portc <- hello.Port
					continue
				}
			}
			_, _ = fmt.Fprintln(cmd.Stderr, sc.Text()) // stray stdout goes with stderr
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case port := <-portc:
		r.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	case <-r.done:
		r.cleanup()
		return nil, fmt.Errorf("sfnlocal: node exited during start-up (%v): %s", cmd.ProcessState, strings.TrimSpace(r.stderr.String()))
	case <-timer.C:
		_ = r.Close()
		return nil, fmt.Errorf("sfnlocal: runner did not start within %v: %s", startTimeout, strings.TrimSpace(r.stderr.String()))
	case <-ctx.Done():
		_ = r.Close()
		return nil, fmt.Errorf("sfnlocal: start: %w", ctx.Err())
	}
	r.client = &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		// Shorter than the runner's keep-alive, so that a request never
		// goes out on a connection the runner is closing.
		IdleConnTimeout: 30 * time.Second,
	}}
	return r, nil
}

// defaultNodeModules is <repo>/integration/node_modules, the repo being the
// nearest directory at or above the working directory holding go.mod.
func defaultNodeModules() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("sfnlocal: %w", err)
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return filepath.Join(dir, "integration", "node_modules"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("sfnlocal: no go.mod at or above the working directory; set Options.NodeModules")
		}
		dir = parent
	}
}

// Close stops the runner (executions in flight end with an error) and
// removes its temporary directory.
func (r *Runner) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		if r.client != nil {
			r.client.CloseIdleConnections()
		}
		_ = r.stdin.Close() // the runner exits on EOF
		select {
		case <-r.done:
		case <-time.After(2 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		r.cleanup()
	})
	return r.closeErr
}

func (r *Runner) cleanup() {
	if err := os.RemoveAll(r.dir); err != nil {
		r.closeErr = err
	}
}

// Request is one execution to run.
type Request struct {
	// Definition is the ASL JSON, placeholders already substituted.
	Definition []byte
	// Name is the execution's name (default: a random UUID).
	Name string
	// Input is marshalled to JSON; nil means {}.
	Input any
	// LambdaEndpoint is the base URL of the Lambda Invoke API the Tasks call.
	LambdaEndpoint string
	// RetryIntervalScale multiplies every Retry interval (0 means 1).
	RetryIntervalScale float64
	// ExecutionArn and StateMachineArn, when set, replace the default ARNs
	// (ExecutionArn(Name), StateMachineArn()): the local Step Functions API
	// names its own executions, and $$.Execution.Id (the rotation's lease
	// holder) must be the ARN it reports.
	ExecutionArn, StateMachineArn string
}

// Event is one entry of an execution's history. Type is the library's
// event type: ExecutionStarted, ExecutionSucceeded, ExecutionFailed,
// ExecutionAborted, ExecutionTimeout, StateEntered, StateExited,
// StateFailed, StateRetried, StateCaught, MapIterationStarted,
// MapIterationSucceeded, MapIterationFailed, ParallelBranchStarted,
// ParallelBranchSucceeded, ParallelBranchFailed.
type Event struct {
	Time time.Time
	Type string
	// State is the state's name (for Map and Parallel events, the Map or
	// Parallel state's); empty for execution events.
	State string
	// Error and Cause are set on StateFailed, ExecutionFailed, the
	// iteration/branch failures, and on StateRetried and StateCaught (the
	// failure being retried or caught).
	Error, Cause string
	// Attempt is the retry's number (1 for the first retry) on StateRetried.
	Attempt int
	// Next is the state that follows, on StateExited (when one was entered)
	// and on StateCaught (the catcher's Next).
	Next string
	// InputBytes (on StateEntered) and OutputBytes (on StateExited) are the
	// sizes of the state's input and output JSON, which Step Functions
	// caps at 256 KiB (MaxPayloadBytes).
	InputBytes, OutputBytes int
	// Iteration is 1 + the index of the Map iteration the event belongs
	// to (its items' position in the Map's input), 0 outside any: it tells
	// the concurrent iterations' events apart. Nested Maps report the
	// innermost index.
	Iteration int
}

// MaxPayloadBytes is Step Functions' limit on a state's input or output
// (and an execution's): 256 KiB of UTF-8.
const MaxPayloadBytes = 256 << 10

// Execution is the outcome of one execution.
type Execution struct {
	Arn, Name string
	// Status is SUCCEEDED, FAILED, ABORTED or TIMED_OUT.
	Status string
	// Error and Cause are the execution's failure (empty on success).
	// Error is "Runner.Error" when the runner could not run the definition
	// at all (invalid or unsupported definition, internal error).
	Error, Cause string
	// Output is the execution's output JSON (nil unless SUCCEEDED).
	Output   json.RawMessage
	Events   []Event
	Duration time.Duration
}

// ExecutionArn is the ARN Execute gives an execution named name.
func ExecutionArn(name string) string {
	return fmt.Sprintf("arn:aws:states:%s:%s:execution:%s:%s", region, account, StateMachineName, name)
}

// StateMachineArn is the ARN of the state machine executions belong to.
func StateMachineArn() string {
	return fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", region, account, StateMachineName)
}

type wireRequest struct {
	Definition         json.RawMessage `json:"definition"`
	Input              json.RawMessage `json:"input"`
	Name               string          `json:"name"`
	ExecutionArn       string          `json:"executionArn"`
	StateMachineArn    string          `json:"stateMachineArn"`
	LambdaEndpoint     string          `json:"lambdaEndpoint"`
	RetryIntervalScale float64         `json:"retryIntervalScale"`
}

type wireEvent struct {
	Time        int64  `json:"time"`
	Type        string `json:"type"`
	State       string `json:"state"`
	Error       string `json:"error"`
	Cause       string `json:"cause"`
	Attempt     int    `json:"attempt"`
	Next        string `json:"next"`
	InputBytes  int    `json:"inputBytes"`
	OutputBytes int    `json:"outputBytes"`
	Index       *int   `json:"index"`
}

type wireResponse struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  string          `json:"error"`
	Cause  string          `json:"cause"`
	Start  int64           `json:"start"`
	End    int64           `json:"end"`
	Events []wireEvent     `json:"events"`
}

// Execute runs one execution to its end. The returned error is about the
// runner (not running, ctx done, bad request); the execution's own failure
// is in Execution.Status/Error/Cause. Cancelling ctx aborts the execution.
func (r *Runner) Execute(ctx context.Context, req Request) (*Execution, error) {
	if r == nil || r.client == nil {
		return nil, errors.New("sfnlocal: runner not started")
	}
	if !json.Valid(req.Definition) {
		return nil, errors.New("sfnlocal: Definition is not valid JSON")
	}
	if req.Name == "" {
		req.Name = uuid.NewString()
	}
	input := json.RawMessage(`{}`)
	if req.Input != nil {
		b, err := json.Marshal(req.Input)
		if err != nil {
			return nil, fmt.Errorf("sfnlocal: marshal input: %w", err)
		}
		if !bytes.Equal(b, []byte("null")) {
			input = b
		}
	}
	scale := req.RetryIntervalScale
	if scale <= 0 {
		scale = 1
	}
	x := &Execution{Arn: cmp.Or(req.ExecutionArn, ExecutionArn(req.Name)), Name: req.Name}
	body, err := json.Marshal(wireRequest{
		Definition: req.Definition, Input: input, Name: req.Name,
		ExecutionArn: x.Arn, StateMachineArn: cmp.Or(req.StateMachineArn, StateMachineArn()),
		LambdaEndpoint: req.LambdaEndpoint, RetryIntervalScale: scale,
	})
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/execute", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	res, err := r.client.Do(hreq)
	if err != nil {
		select {
		case <-r.done:
			return nil, fmt.Errorf("sfnlocal: execution %s: the runner has exited: %w (%s)", req.Name, err, lastLines(r.stderr.String(), 5))
		default:
		}
		return nil, fmt.Errorf("sfnlocal: execution %s: %w", req.Name, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: execution %s: read response: %w", req.Name, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sfnlocal: execution %s: runner answered %s: %s", req.Name, res.Status, raw)
	}
	var w wireResponse
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("sfnlocal: execution %s: decode response: %w", req.Name, err)
	}
	x.Status, x.Error, x.Cause = w.Status, w.Error, w.Cause
	if w.Status == "SUCCEEDED" {
		x.Output = w.Output
	}
	x.Events = make([]Event, 0, len(w.Events))
	for _, e := range w.Events {
		ev := Event{
			Time: time.UnixMilli(e.Time), Type: e.Type, State: e.State,
			Error: e.Error, Cause: e.Cause, Attempt: e.Attempt, Next: e.Next,
			InputBytes: e.InputBytes, OutputBytes: e.OutputBytes,
		}
		if e.Index != nil {
			ev.Iteration = *e.Index + 1
		}
		x.Events = append(x.Events, ev)
	}
	if w.End >= w.Start && w.Start > 0 {
		x.Duration = time.Duration(w.End-w.Start) * time.Millisecond
	}
	return x, nil
}

// Transitions counts state transitions as Step Functions bills them: one
// per state entered (nested states of Map iterations and Parallel branches
// included) plus one per retry of a state. Starting the execution is not
// counted.
func (x *Execution) Transitions() int {
	n := 0
	for _, e := range x.Events {
		if e.Type == "StateEntered" || e.Type == "StateRetried" {
			n++
		}
	}
	return n
}

// Timeline renders the history, one line per event, times relative to the
// first event, columns aligned; for example:
//
//	(time)    (event type)        (state)       (detail)
//	+    0ms  ExecutionStarted
//	+    1ms  StateEntered        CreateSecret
//	+    3ms  StateFailed         CreateSecret  RetryableError
//	+   14ms  StateRetried        CreateSecret  attempt 1 after RetryableError
//	+   20ms  StateCaught         SetSecret     ConflictError -> Compensate
//	+   31ms  ExecutionFailed                   ConflictError
//
// Causes are left out (they can be long); they are in Events.
func (x *Execution) Timeline() string {
	if len(x.Events) == 0 {
		return ""
	}
	t0 := x.Events[0].Time
	width, typeWidth := 0, 0
	for _, e := range x.Events {
		width = max(width, len(e.State))
		typeWidth = max(typeWidth, len(e.Type))
	}
	var b strings.Builder
	for _, e := range x.Events {
		cols := []string{fmt.Sprintf("+%5dms", e.Time.Sub(t0).Milliseconds()), fmt.Sprintf("%-*s", typeWidth, e.Type)}
		var detail string
		switch e.Type {
		case "StateRetried":
			detail = fmt.Sprintf("attempt %d", e.Attempt)
			if e.Error != "" {
				detail += " after " + e.Error
			}
		case "StateCaught":
			detail = e.Error
			if e.Next != "" {
				detail = strings.TrimSpace(detail + " -> " + e.Next)
			}
		default:
			detail = e.Error
		}
		if e.State != "" || detail != "" {
			cols = append(cols, fmt.Sprintf("%-*s", width, e.State))
		}
		if detail != "" {
			cols = append(cols, detail)
		}
		b.WriteString(strings.TrimRight(strings.Join(cols, "  "), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Substitute replaces the ${Name} placeholders of an ASL definition with
// subs[Name], as CloudFormation's DefinitionSubstitutions (and CDK's
// definitionSubstitutions) do. Values are inserted JSON-escaped, since
// placeholders stand inside JSON strings. It fails, naming them, if any
// placeholder has no value, and if the result is not valid JSON. Unused
// substitutions are fine.
func Substitute(def []byte, subs map[string]string) ([]byte, error) {
	var missing []string
	out := placeholder.ReplaceAllFunc(def, func(m []byte) []byte {
		name := string(m[2 : len(m)-1])
		v, ok := subs[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		q, _ := json.Marshal(v)
		return q[1 : len(q)-1]
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		missing = slices.Compact(missing)
		return nil, fmt.Errorf("sfnlocal: no value for placeholder(s) %s", "${"+strings.Join(missing, "}, ${")+"}")
	}
	if !json.Valid(out) {
		return nil, errors.New("sfnlocal: the definition is not valid JSON after substitution")
	}
	return out, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockedWriter serialises writes to w: the stderr copier and the stdout
// forwarder both write to it.
func lockedWriter(w io.Writer) io.Writer {
	if w == io.Discard {
		return w
	}
	return &syncWriter{w: w}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

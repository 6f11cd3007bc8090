package sfnlocal

// api.go serves the AWS Step Functions API (awsJson1.0) in front of a
// Runner, so that the real aws-sdk-go-v2 sfn client (and secretctl) can start
// and watch executions of a local state machine.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// APIOptions configure NewAPI.
type APIOptions struct {
	// Region and AccountID go into the ARNs (default us-east-1 and
	// 000000000000).
	Region, AccountID string
	// LambdaEndpoint is the base URL of the Lambda Invoke API the Tasks call.
	LambdaEndpoint string
	// RetryIntervalScale multiplies every Retry interval (0 means 1).
	RetryIntervalScale float64
}

// API is a local Step Functions endpoint. Supported operations:
// StartExecution, DescribeExecution, ListExecutions, GetExecutionHistory,
// StopExecution, DescribeStateMachine and ListStateMachines.
//
// Executions run in the background through the Runner. The runner reports
// an execution's events only when it ends, so while an execution is RUNNING
// its history holds ExecutionStarted alone; the whole history appears at
// the end.
type API struct {
	r *Runner
	o APIOptions

	mu       sync.Mutex
	machines map[string]*machine   // by ARN
	execs    map[string]*execution // by ARN
	order    []*execution          // in start order

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	srv    *http.Server
	ln     net.Listener
}

type machine struct {
	name, arn  string
	definition []byte
	created    time.Time
	stateTypes map[string]string // state name → Type, nested states included
}

type execution struct {
	arn, name, machineArn string
	input                 string
	start, stop           time.Time
	status                string
	output                json.RawMessage
	errName, cause        string
	events                []Event
	cancel                context.CancelFunc
	done                  chan struct{}
}

// NewAPI returns an API that runs executions on r. Start it to serve.
func NewAPI(r *Runner, o APIOptions) *API {
	if o.Region == "" {
		o.Region = region
	}
	if o.AccountID == "" {
		o.AccountID = account
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &API{r: r, o: o, machines: map[string]*machine{}, execs: map[string]*execution{}, ctx: ctx, cancel: cancel}
}

// AddStateMachine registers a state machine (placeholders already
// substituted) and returns its ARN. Adding the same name again replaces the
// definition.
func (a *API) AddStateMachine(name string, definition []byte) string {
	arn := fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", a.o.Region, a.o.AccountID, name)
	m := &machine{name: name, arn: arn, definition: slices.Clone(definition), created: time.Now(), stateTypes: map[string]string{}}
	var def any
	if json.Unmarshal(definition, &def) == nil {
		collectStateTypes(def, m.stateTypes)
	}
	a.mu.Lock()
	a.machines[arn] = m
	a.mu.Unlock()
	return arn
}

// collectStateTypes finds every "States" object in an ASL document
// (Parallel branches and Map processors included) and records each state's
// Type.
func collectStateTypes(v any, into map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if states, ok := v["States"].(map[string]any); ok {
			for name, s := range states {
				if sm, ok := s.(map[string]any); ok {
					if t, ok := sm["Type"].(string); ok {
						into[name] = t
					}
				}
			}
		}
		for _, c := range v {
			collectStateTypes(c, into)
		}
	case []any:
		for _, c := range v {
			collectStateTypes(c, into)
		}
	}
}

// Start listens on a free local port and returns the endpoint's URL.
func (a *API) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sfnlocal: api: %w", err)
	}
	a.ln = ln
	a.srv = &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the server and aborts the executions still running.
func (a *API) Close() {
	a.cancel()
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.srv.Shutdown(ctx)
		cancel()
	}
	a.wg.Wait()
}

type apiError struct {
	status   int
	typ, msg string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func apiErr(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

// epochSeconds is a time as the awsJson protocols send it: seconds since
// the epoch, with a fraction.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), nil
}

func ts(t time.Time) *epochSeconds {
	if t.IsZero() {
		return nil
	}
	e := epochSeconds(t)
	return &e
}

var operations = map[string]func(*API, []byte) (any, *apiError){
	"StartExecution":       (*API).startExecution,
	"DescribeExecution":    (*API).describeExecution,
	"ListExecutions":       (*API).listExecutions,
	"GetExecutionHistory":  (*API).getExecutionHistory,
	"StopExecution":        (*API).stopExecution,
	"DescribeStateMachine": (*API).describeStateMachine,
	"ListStateMachines":    (*API).listStateMachines,
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeAPIError(w, &apiError{status: http.StatusMethodNotAllowed, typ: "UnknownOperationException", msg: "POST only"})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "AWSStepFunctions.")
	fn := operations[op]
	if !ok || fn == nil {
		writeAPIError(w, apiErr("UnknownOperationException", "unsupported operation %q", target))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeAPIError(w, apiErr("SerializationException", "read body: %v", err))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	out, aerr := fn(a, body)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	raw, err := json.Marshal(out)
	if err != nil {
		writeAPIError(w, &apiError{status: http.StatusInternalServerError, typ: "InternalFailure", msg: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", uuid.NewString())
	_, _ = w.Write(raw)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", uuid.NewString())
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func decodeInput(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return apiErr("SerializationException", "malformed request: %v", err)
	}
	return nil
}

// validName follows Step Functions' rules for execution names: 1 to 80
// characters, none of whitespace, brackets, wildcards or control characters.
func validName(name string) bool {
	if name == "" || len(name) > 80 {
		return false
	}
	for _, r := range name {
		if r <= 0x20 || r == 0x7f || strings.ContainsRune(`<>{}[]?*"#%\^|~`+"`$&,;:/", r) {
			return false
		}
	}
	return true
}

func (a *API) startExecution(body []byte) (any, *apiError) {
	var in struct {
		StateMachineArn string  `json:"stateMachineArn"`
		Name            string  `json:"name"`
		Input           *string `json:"input"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	input := "{}"
	if in.Input != nil {
		input = *in.Input
	}
	if !json.Valid([]byte(input)) {
		return nil, apiErr("InvalidExecutionInput", "the input is not valid JSON")
	}
	if in.Name == "" {
		in.Name = uuid.NewString()
	}
	if !validName(in.Name) {
		return nil, apiErr("InvalidName", "invalid execution name %q", in.Name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.machines[in.StateMachineArn]
	if m == nil {
		return nil, apiErr("StateMachineDoesNotExist", "state machine does not exist: %s", in.StateMachineArn)
	}
	arn := fmt.Sprintf("arn:aws:states:%s:%s:execution:%s:%s", a.o.Region, a.o.AccountID, m.name, in.Name)
	if x := a.execs[arn]; x != nil {
		// AWS API reference, StartExecution: "StartExecution is idempotent
		// for STANDARD workflows. For a STANDARD workflow, if you call
		// StartExecution with the same name and input as a running
		// execution, the call succeeds and return the same response as the
		// original request. If the execution is closed or if the input is
		// different, it returns a 400 ExecutionAlreadyExists error."
		switch {
		case x.status != "RUNNING":
			return nil, apiErr("ExecutionAlreadyExists", "Execution Already Exists: '%s' (it is %s)", arn, x.status)
		case !jsonEqual(x.input, input):
			return nil, apiErr("ExecutionAlreadyExists", "Execution Already Exists: '%s' (running with a different input)", arn)
		}
		return startOutput(x), nil
	}
	if err := a.ctx.Err(); err != nil {
		return nil, &apiError{status: http.StatusInternalServerError, typ: "ServiceUnavailable", msg: "the endpoint is closing"}
	}
	ctx, cancel := context.WithCancel(a.ctx)
	x := &execution{
		arn: arn, name: in.Name, machineArn: m.arn, input: input, start: time.Now(),
		status: "RUNNING", cancel: cancel, done: make(chan struct{}),
	}
	x.events = []Event{{Time: x.start, Type: "ExecutionStarted"}}
	a.execs[arn] = x
	a.order = append(a.order, x)
	a.wg.Add(1)
	go a.run(ctx, m, x)
	return startOutput(x), nil
}

func startOutput(x *execution) any {
	return struct {
		ExecutionArn string        `json:"executionArn"`
		StartDate    *epochSeconds `json:"startDate"`
	}{x.arn, ts(x.start)}
}

func jsonEqual(a, b string) bool {
	if a == b {
		return true
	}
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// run executes x to its end and records the outcome.
func (a *API) run(ctx context.Context, m *machine, x *execution) {
	defer a.wg.Done()
	defer close(x.done)
	defer x.cancel()
	res, err := a.execute(ctx, m, x)
	a.mu.Lock()
	defer a.mu.Unlock()
	x.stop = time.Now()
	switch {
	case x.status == "ABORTED":
		// StopExecution already recorded the end.
		return
	case err != nil:
		x.status, x.errName, x.cause = "FAILED", "Runner.Error", err.Error()
		x.events = append(x.events, Event{Time: x.stop, Type: "ExecutionFailed", Error: x.errName, Cause: x.cause})
		return
	}
	x.status, x.errName, x.cause, x.output = res.Status, res.Error, res.Cause, res.Output
	if len(res.Events) > 0 {
		x.events = res.Events
		if last := res.Events[len(res.Events)-1].Time; !last.IsZero() && !last.Before(x.start) {
			x.stop = last
		}
	}
}

// execute runs x on the runner under the API's own state machine and
// execution ARNs.
func (a *API) execute(ctx context.Context, m *machine, x *execution) (*Execution, error) {
	return a.r.Execute(ctx, Request{
		Definition: m.definition, Name: x.name, Input: json.RawMessage(x.input),
		LambdaEndpoint: a.o.LambdaEndpoint, RetryIntervalScale: a.o.RetryIntervalScale,
		ExecutionArn: x.arn, StateMachineArn: m.arn,
	})
}

func (a *API) lookup(arn string) (*execution, *apiError) {
	x := a.execs[arn]
	if x == nil {
		return nil, apiErr("ExecutionDoesNotExist", "execution does not exist: %s", arn)
	}
	return x, nil
}

type describeOutput struct {
	ExecutionArn    string        `json:"executionArn"`
	StateMachineArn string        `json:"stateMachineArn"`
	Name            string        `json:"name"`
	Status          string        `json:"status"`
	StartDate       *epochSeconds `json:"startDate"`
	StopDate        *epochSeconds `json:"stopDate,omitempty"`
	Input           string        `json:"input"`
	Output          *string       `json:"output,omitempty"`
	Error           string        `json:"error,omitempty"`
	Cause           string        `json:"cause,omitempty"`
}

func (a *API) describeExecution(body []byte) (any, *apiError) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	x, e := a.lookup(in.ExecutionArn)
	if e != nil {
		return nil, e
	}
	out := describeOutput{
		ExecutionArn: x.arn, StateMachineArn: x.machineArn, Name: x.name, Status: x.status,
		StartDate: ts(x.start), Input: x.input, Error: x.errName, Cause: x.cause,
	}
	if x.status != "RUNNING" {
		out.StopDate = ts(x.stop)
	}
	if x.output != nil {
		s := string(x.output)
		out.Output = &s
	}
	return out, nil
}

// page cuts items to maxResults starting at nextToken (an index).
func page(n int, maxResults int, nextToken string) (from, to int, next string, e *apiError) {
	if nextToken != "" {
		i, err := strconv.Atoi(nextToken)
		if err != nil || i < 0 || i > n {
			return 0, 0, "", apiErr("InvalidToken", "invalid nextToken")
		}
		from = i
	}
	if maxResults <= 0 || maxResults > 1000 {
		maxResults = 1000
	}
	to = min(n, from+maxResults)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

func (a *API) listExecutions(body []byte) (any, *apiError) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn"`
		StatusFilter    string `json:"statusFilter"`
		MaxResults      int    `json:"maxResults"`
		NextToken       string `json:"nextToken"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.machines[in.StateMachineArn] == nil {
		return nil, apiErr("StateMachineDoesNotExist", "state machine does not exist: %s", in.StateMachineArn)
	}
	type item struct {
		ExecutionArn    string        `json:"executionArn"`
		StateMachineArn string        `json:"stateMachineArn"`
		Name            string        `json:"name"`
		Status          string        `json:"status"`
		StartDate       *epochSeconds `json:"startDate"`
		StopDate        *epochSeconds `json:"stopDate,omitempty"`
	}
	var all []item
	for i := len(a.order) - 1; i >= 0; i-- { // newest first, as AWS lists them
		x := a.order[i]
		if x.machineArn != in.StateMachineArn || (in.StatusFilter != "" && x.status != in.StatusFilter) {
			continue
		}
		it := item{ExecutionArn: x.arn, StateMachineArn: x.machineArn, Name: x.name, Status: x.status, StartDate: ts(x.start)}
		if x.status != "RUNNING" {
			it.StopDate = ts(x.stop)
		}
		all = append(all, it)
	}
	from, to, next, e := page(len(all), in.MaxResults, in.NextToken)
	if e != nil {
		return nil, e
	}
	out := struct {
		Executions []item `json:"executions"`
		NextToken  string `json:"nextToken,omitempty"`
	}{Executions: all[from:to], NextToken: next}
	if out.Executions == nil {
		out.Executions = []item{}
	}
	return out, nil
}

// historyEvent is one HistoryEvent as Step Functions sends it.
type historyEvent struct {
	ID              int64          `json:"id"`
	PreviousEventID int64          `json:"previousEventId"`
	Timestamp       *epochSeconds  `json:"timestamp"`
	Type            string         `json:"type"`
	Details         map[string]any `json:"-"`
	detailsKey      string
}

func (h historyEvent) MarshalJSON() ([]byte, error) {
	m := map[string]any{"id": h.ID, "previousEventId": h.PreviousEventID, "timestamp": h.Timestamp, "type": h.Type}
	if h.detailsKey != "" && h.Details != nil {
		m[h.detailsKey] = h.Details
	}
	return json.Marshal(m)
}

// history maps the runner's events onto Step Functions' history event
// types: <Type>StateEntered/Exited for states, TaskScheduled/TaskFailed/
// TaskSucceeded around Task attempts, Map iteration events, and the
// execution's start and end.
func (a *API) history(x *execution) []historyEvent {
	m := a.machines[x.machineArn]
	stateType := func(name string) string {
		if m != nil && m.stateTypes[name] != "" {
			return m.stateTypes[name]
		}
		return "Task"
	}
	var out []historyEvent
	add := func(t time.Time, typ, key string, d map[string]any) {
		h := historyEvent{ID: int64(len(out) + 1), Timestamp: ts(t), Type: typ, Details: d, detailsKey: key}
		if h.Timestamp == nil {
			h.Timestamp = ts(x.start)
		}
		if len(out) > 0 {
			h.PreviousEventID = out[len(out)-1].ID
		}
		out = append(out, h)
	}
	for _, e := range x.events {
		st := stateType(e.State)
		switch e.Type {
		case "ExecutionStarted":
			add(e.Time, "ExecutionStarted", "executionStartedEventDetails", map[string]any{
				"input": x.input, "roleArn": fmt.Sprintf("arn:aws:iam::%s:role/sfnlocal", a.o.AccountID),
			})
		case "ExecutionSucceeded":
			d := map[string]any{}
			if x.output != nil {
				d["output"] = string(x.output)
			}
			add(e.Time, "ExecutionSucceeded", "executionSucceededEventDetails", d)
		case "ExecutionFailed":
			add(e.Time, "ExecutionFailed", "executionFailedEventDetails", map[string]any{"error": orDefault(e.Error, x.errName), "cause": orDefault(e.Cause, x.cause)})
		case "ExecutionAborted":
			add(e.Time, "ExecutionAborted", "executionAbortedEventDetails", map[string]any{"error": e.Error, "cause": e.Cause})
		case "ExecutionTimeout":
			add(e.Time, "ExecutionTimedOut", "executionTimedOutEventDetails", map[string]any{"error": orDefault(e.Error, "States.Timeout"), "cause": e.Cause})
		case "StateEntered":
			add(e.Time, st+"StateEntered", "stateEnteredEventDetails", map[string]any{"name": e.State})
			if st == "Task" {
				add(e.Time, "TaskScheduled", "taskScheduledEventDetails", map[string]any{"resourceType": "lambda", "resource": "invoke"})
			}
		case "StateRetried":
			if st == "Task" {
				add(e.Time, "TaskScheduled", "taskScheduledEventDetails", map[string]any{"resourceType": "lambda", "resource": "invoke"})
			}
		case "StateFailed":
			switch st {
			case "Task":
				add(e.Time, "TaskFailed", "taskFailedEventDetails", map[string]any{"resourceType": "lambda", "resource": "invoke", "error": e.Error, "cause": e.Cause})
			case "Map", "Parallel":
				add(e.Time, st+"StateFailed", "", nil)
			}
		case "StateExited":
			if st == "Task" {
				add(e.Time, "TaskSucceeded", "taskSucceededEventDetails", map[string]any{"resourceType": "lambda", "resource": "invoke"})
			}
			add(e.Time, st+"StateExited", "stateExitedEventDetails", map[string]any{"name": e.State})
		case "MapIterationStarted", "MapIterationSucceeded", "MapIterationFailed":
			add(e.Time, e.Type, "mapIterationStartedEventDetails", map[string]any{"name": e.State})
			out[len(out)-1].detailsKey = strings.ToLower(e.Type[:1]) + e.Type[1:] + "EventDetails"
		}
	}
	if x.status == "ABORTED" && (len(out) == 0 || out[len(out)-1].Type != "ExecutionAborted") {
		add(x.stop, "ExecutionAborted", "executionAbortedEventDetails", map[string]any{"error": x.errName, "cause": x.cause})
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (a *API) getExecutionHistory(body []byte) (any, *apiError) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
		MaxResults   int    `json:"maxResults"`
		NextToken    string `json:"nextToken"`
		ReverseOrder bool   `json:"reverseOrder"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	x, e := a.lookup(in.ExecutionArn)
	if e != nil {
		return nil, e
	}
	events := a.history(x)
	if in.ReverseOrder {
		slices.Reverse(events)
	}
	from, to, next, e := page(len(events), in.MaxResults, in.NextToken)
	if e != nil {
		return nil, e
	}
	out := struct {
		Events    []historyEvent `json:"events"`
		NextToken string         `json:"nextToken,omitempty"`
	}{Events: events[from:to], NextToken: next}
	if out.Events == nil {
		out.Events = []historyEvent{}
	}
	return out, nil
}

func (a *API) stopExecution(body []byte) (any, *apiError) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
		Error        string `json:"error"`
		Cause        string `json:"cause"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	a.mu.Lock()
	x, e := a.lookup(in.ExecutionArn)
	if e != nil {
		a.mu.Unlock()
		return nil, e
	}
	if x.status == "RUNNING" {
		x.status, x.errName, x.cause, x.stop = "ABORTED", in.Error, in.Cause, time.Now()
		x.events = append(x.events, Event{Time: x.stop, Type: "ExecutionAborted", Error: in.Error, Cause: in.Cause})
		x.cancel()
	}
	stop := x.stop
	a.mu.Unlock()
	return struct {
		StopDate *epochSeconds `json:"stopDate"`
	}{ts(stop)}, nil
}

func (a *API) describeStateMachine(body []byte) (any, *apiError) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.machines[in.StateMachineArn]
	if m == nil {
		return nil, apiErr("StateMachineDoesNotExist", "state machine does not exist: %s", in.StateMachineArn)
	}
	return map[string]any{
		"stateMachineArn": m.arn, "name": m.name, "status": "ACTIVE", "definition": string(m.definition),
		"roleArn": fmt.Sprintf("arn:aws:iam::%s:role/sfnlocal", a.o.AccountID), "type": "STANDARD",
		"creationDate": ts(m.created),
	}, nil
}

func (a *API) listStateMachines(body []byte) (any, *apiError) {
	var in struct {
		MaxResults int    `json:"maxResults"`
		NextToken  string `json:"nextToken"`
	}
	if e := decodeInput(body, &in); e != nil {
		return nil, e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []map[string]any
	for _, m := range a.machines {
		all = append(all, map[string]any{"stateMachineArn": m.arn, "name": m.name, "type": "STANDARD", "creationDate": ts(m.created)})
	}
	slices.SortFunc(all, func(x, y map[string]any) int { return strings.Compare(x["name"].(string), y["name"].(string)) })
	from, to, next, e := page(len(all), in.MaxResults, in.NextToken)
	if e != nil {
		return nil, e
	}
	out := map[string]any{"stateMachines": all[from:to]}
	if out["stateMachines"] == nil || to == from {
		out["stateMachines"] = []any{}
	}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

// Wait blocks until the execution arn has ended or ctx is done (tests).
func (a *API) Wait(ctx context.Context, arn string) error {
	a.mu.Lock()
	x := a.execs[arn]
	a.mu.Unlock()
	if x == nil {
		return fmt.Errorf("sfnlocal: no execution %s", arn)
	}
	select {
	case <-x.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

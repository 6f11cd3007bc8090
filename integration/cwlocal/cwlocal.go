// Package cwlocal is a local Amazon CloudWatch endpoint that answers
// DescribeAlarms over the real Smithy RPC v2 CBOR protocol (the one the
// aws-sdk-go-v2 cloudwatch client speaks), so tests and the demo can drive
// the bake's alarm watch through the real SDK client. It keeps metric alarms
// that a test sets and flips with SetAlarm and DeleteAlarm.
package cwlocal

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

const (
	// service is the Smithy service shape's name: the client's paths are
	// /service/<service>/operation/<operation>.
	service   = "GraniteServiceVersion20100801"
	namespace = "com.amazonaws.cloudwatch#"
	// maxRecords and defaultRecords are DescribeAlarms' MaxRecords bounds.
	maxRecords     = 100
	defaultRecords = 50
	maxNames       = 100
)

// Alarm states (CloudWatch's StateValue).
const (
	OK               = "OK"
	Alarm            = "ALARM"
	InsufficientData = "INSUFFICIENT_DATA"
)

type alarm struct {
	state, reason string
	updated       time.Time
}

// Server keeps metric alarms by name.
type Server struct {
	region, account string

	mu     sync.Mutex
	alarms map[string]alarm
	calls  int
	srv    *http.Server
}

// Start listens on a loopback port and returns the base URL.
func Start() (*Server, string, error) {
	s := &Server{region: "us-east-1", account: "000000000000", alarms: map[string]alarm{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, "http://" + ln.Addr().String(), nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetAlarm creates the metric alarm name or moves it to state (OK, ALARM or
// INSUFFICIENT_DATA); StateUpdatedTimestamp changes only when the state does.
func (s *Server) SetAlarm(name, state string) {
	switch state {
	case OK, Alarm, InsufficientData:
	default:
		panic("cwlocal: unknown alarm state " + state)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.alarms[name]
	if ok && a.state == state {
		return
	}
	s.alarms[name] = alarm{state: state, updated: time.Now(),
		reason: fmt.Sprintf("Set to %s by the test (cwlocal)", state)}
}

// DeleteAlarm removes the alarm name (no error if there is none).
func (s *Server) DeleteAlarm(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.alarms, name)
}

// Calls is the number of DescribeAlarms requests answered so far.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *Server) arn(name string) string {
	return fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:%s", s.region, s.account, name)
}

// apiError is an error as the protocol carries it: the status, a body with
// __type (the error shape's ID) and message, and, since CloudWatch is
// awsQueryCompatible, the query error code in X-Amzn-Query-Error.
type apiError struct {
	status          int
	shape, queryErr string
	message         string
}

func (e *apiError) Error() string { return e.shape + ": " + e.message }

func invalidParameter(format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, shape: "InvalidParameterValueException",
		queryErr: "InvalidParameterValue;Sender", message: fmt.Sprintf(format, a...)}
}

func writeCBOR(w http.ResponseWriter, status int, v cbor.Value) {
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	body := cbor.Encode(v)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func fail(w http.ResponseWriter, e *apiError) {
	if e.queryErr != "" {
		w.Header().Set("X-Amzn-Query-Error", e.queryErr)
	}
	writeCBOR(w, e.status, cbor.Map{"__type": cbor.String(namespace + e.shape), "message": cbor.String(e.message)})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.URL.Path, "/service/"+service+"/operation/")
	switch {
	case r.Method != http.MethodPost:
		fail(w, &apiError{status: http.StatusMethodNotAllowed, shape: "UnknownOperationException", message: "RPC v2 requests are POSTs"})
		return
	case !strings.EqualFold(r.Header.Get("Smithy-Protocol"), "rpc-v2-cbor"):
		fail(w, invalidParameter("the Smithy-Protocol header must be rpc-v2-cbor"))
		return
	case !ok || op == "":
		fail(w, &apiError{status: http.StatusNotFound, shape: "UnknownOperationException", message: "no such operation: " + r.URL.Path})
		return
	case op != "DescribeAlarms":
		fail(w, &apiError{status: http.StatusNotFound, shape: "UnknownOperationException", message: "cwlocal implements only DescribeAlarms, not " + op})
		return
	}
	in, err := readInput(r)
	if err != nil {
		fail(w, invalidParameter("%v", err))
		return
	}
	out, aerr := s.describeAlarms(in)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	writeCBOR(w, http.StatusOK, out)
}

// readInput decodes the request body: a CBOR map, or nothing for an empty
// input.
func readInput(r *http.Request) (cbor.Map, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return cbor.Map{}, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/cbor" {
		return nil, fmt.Errorf("Content-Type is %q, want application/cbor", ct)
	}
	v, err := cbor.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("the body is not CBOR: %v", err)
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return nil, fmt.Errorf("the body is a %T, not a CBOR map", v)
	}
	return m, nil
}

func str(m cbor.Map, key string) (string, error) {
	switch v := m[key].(type) {
	case nil, *cbor.Nil:
		return "", nil
	case cbor.String:
		return string(v), nil
	default:
		return "", fmt.Errorf("%s must be a string, not %T", key, v)
	}
}

func strs(m cbor.Map, key string) ([]string, bool, error) {
	switch v := m[key].(type) {
	case nil, *cbor.Nil:
		return nil, false, nil
	case cbor.List:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(cbor.String)
			if !ok {
				return nil, true, fmt.Errorf("%s must hold strings, not %T", key, e)
			}
			out = append(out, string(s))
		}
		return out, true, nil
	default:
		return nil, true, fmt.Errorf("%s must be a list, not %T", key, v)
	}
}

func (s *Server) describeAlarms(in cbor.Map) (cbor.Value, *apiError) {
	names, _, err := strs(in, "AlarmNames")
	if err != nil {
		return nil, invalidParameter("%v", err)
	}
	if len(names) > maxNames {
		return nil, invalidParameter("AlarmNames holds %d names; at most %d are allowed", len(names), maxNames)
	}
	types, typesGiven, err := strs(in, "AlarmTypes")
	if err != nil {
		return nil, invalidParameter("%v", err)
	}
	prefix, err := str(in, "AlarmNamePrefix")
	if err != nil {
		return nil, invalidParameter("%v", err)
	}
	if prefix != "" && len(names) > 0 {
		return nil, invalidParameter("AlarmNames and AlarmNamePrefix cannot both be given")
	}
	stateFilter, err := str(in, "StateValue")
	if err != nil {
		return nil, invalidParameter("%v", err)
	}
	limit := defaultRecords
	switch v := in["MaxRecords"].(type) {
	case nil:
	case cbor.Uint:
		if v < 1 || v > maxRecords {
			return nil, invalidParameter("MaxRecords must be 1 to %d", maxRecords)
		}
		limit = int(v)
	default:
		return nil, invalidParameter("MaxRecords must be an integer 1 to %d", maxRecords)
	}
	token, err := str(in, "NextToken")
	if err != nil {
		return nil, invalidParameter("%v", err)
	}
	start := 0
	if token != "" {
		if start, err = strconv.Atoi(strings.TrimPrefix(token, "cwlocal-")); err != nil || start < 0 || !strings.HasPrefix(token, "cwlocal-") {
			return nil, &apiError{status: http.StatusBadRequest, shape: "InvalidNextToken", queryErr: "InvalidNextToken;Sender", message: "the next token is not one this endpoint issued"}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	out := cbor.Map{}
	// Without AlarmTypes only metric alarms are described, as in CloudWatch.
	if typesGiven && !slices.Contains(types, "MetricAlarm") {
		return out, nil
	}
	var match []string
	for name, a := range s.alarms {
		switch {
		case len(names) > 0 && !slices.Contains(names, name),
			prefix != "" && !strings.HasPrefix(name, prefix),
			stateFilter != "" && a.state != stateFilter:
			continue
		}
		match = append(match, name)
	}
	slices.Sort(match)
	if start > len(match) {
		start = len(match)
	}
	page := match[start:]
	if len(page) > limit {
		page = page[:limit]
		out["NextToken"] = cbor.String("cwlocal-" + strconv.Itoa(start+limit))
	}
	list := cbor.List{}
	for _, name := range page {
		a := s.alarms[name]
		list = append(list, cbor.Map{
			"AlarmName":   cbor.String(name),
			"AlarmArn":    cbor.String(s.arn(name)),
			"StateValue":  cbor.String(a.state),
			"StateReason": cbor.String(a.reason),
			// Timestamps are tag 1 (epoch seconds) around a float, with
			// millisecond precision, as the protocol requires.
			"StateUpdatedTimestamp":      epoch(a.updated),
			"StateTransitionedTimestamp": epoch(a.updated),
			"ActionsEnabled":             cbor.Bool(true),
		})
	}
	out["MetricAlarms"] = list
	return out, nil
}

func epoch(t time.Time) cbor.Value {
	return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.UnixMilli()) / 1e3)}
}

//go:build otel

package tracing

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"unicode"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The X-Ray daemon protocol, as AWS X-Ray's developer guide states it
// ("Sending segment documents to the X-Ray daemon"): each UDP datagram is
// the header line {"format": "json", "version": 1}, a newline, and one
// segment document; a document is at most 64 kB ("AWS X-Ray segment
// documents"). A subsegment sent on its own carries "type": "subsegment"
// and the "parent_id" of the segment or subsegment it belongs to
// ("Sending trace data to AWS X-Ray": "Subsegments have a type of
// subsegment and a parent_id that identifies the parent segment").
const (
	daemonHeader   = `{"format": "json", "version": 1}` + "\n"
	maxDocumentLen = 64 * 1024
)

// DaemonUDPAddress is the UDP address in AWS_XRAY_DAEMON_ADDRESS, which
// is either "host:port" or, with separate TCP and UDP addresses,
// "tcp:host:port udp:host:port" (Lambda sets the second form).
func DaemonUDPAddress(v string) (string, error) {
	fields := strings.Fields(v)
	switch {
	case len(fields) == 1 && !strings.Contains(fields[0], "tcp:") && !strings.HasPrefix(fields[0], "udp:"):
		return fields[0], nil
	case len(fields) >= 1:
		for _, f := range fields {
			if a, ok := strings.CutPrefix(f, "udp:"); ok {
				return a, nil
			}
		}
	}
	return "", fmt.Errorf("tracing: %s=%q: want host:port or \"tcp:host:port udp:host:port\"", EnvDaemon, v)
}

// XRayExporter sends each span to the X-Ray daemon as a segment document:
// a span with a parent becomes a subsegment of it (the invocation's span
// a subsegment of the function's segment Lambda records), a span without
// one a segment.
type XRayExporter struct {
	mu   sync.Mutex
	conn net.Conn
}

// NewXRayExporter sends to the daemon at addr (host:port, UDP).
func NewXRayExporter(addr string) (*XRayExporter, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("tracing: the X-Ray daemon address %q: %w", addr, err)
	}
	return &XRayExporter{conn: conn}, nil
}

// ExportSpans implements sdktrace.SpanExporter. A document the daemon
// cannot take (over 64 kB) loses its metadata; a send that fails is
// reported, and tracing never fails the handler (the SDK only logs it).
func (x *XRayExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	var first error
	for _, s := range spans {
		b, err := json.Marshal(Segment(s))
		if err != nil {
			continue
		}
		if _, err := x.conn.Write(append([]byte(daemonHeader), b...)); err != nil && first == nil {
			first = fmt.Errorf("tracing: sending to the X-Ray daemon: %w", err)
		}
	}
	return first
}

// Shutdown implements sdktrace.SpanExporter.
func (x *XRayExporter) Shutdown(context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.conn.Close()
}

// XRayTraceID spells an OpenTelemetry trace id as X-Ray does:
// "1-" + the first 8 hex digits (the epoch second, as xray.IDGenerator
// makes them) + "-" + the other 24.
func XRayTraceID(id trace.TraceID) string {
	h := hex.EncodeToString(id[:])
	return "1-" + h[:8] + "-" + h[8:]
}

// Segment converts a span to its segment document. The rotation's
// identity attributes become annotations (X-Ray indexes them for
// filter expressions; their keys may hold only letters, digits and
// underscores); AWS SDK spans fill "aws", database spans "sql"; every
// other attribute goes to metadata.
func Segment(s sdktrace.ReadOnlySpan) Document {
	sc := s.SpanContext()
	d := Document{
		Name:      segmentName(s.Name()),
		ID:        sc.SpanID().String(),
		TraceID:   XRayTraceID(sc.TraceID()),
		StartTime: float64(s.StartTime().UnixNano()) / 1e9,
		EndTime:   float64(s.EndTime().UnixNano()) / 1e9,
	}
	if p := s.Parent(); p.IsValid() {
		d.Type, d.ParentID = "subsegment", p.SpanID().String()
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	str := func(k attribute.Key) string {
		v, ok := attrs[k]
		if !ok {
			return ""
		}
		delete(attrs, k)
		return v.String()
	}
	for _, k := range []attribute.Key{KeySecret, KeyExecution, KeyStep} {
		if v := str(k); v != "" {
			if d.Annotations == nil {
				d.Annotations = map[string]any{}
			}
			d.Annotations[annotationKey(string(k))] = v
		}
	}
	switch {
	case attrs["rpc.system"].String() == "aws-api":
		// The AWS SDK's call spans (aws.go).
		d.Namespace = "aws"
		str("rpc.system")
		if service := str("rpc.service"); service != "" {
			d.Name = segmentName(service)
		}
		d.AWS = map[string]any{"operation": str("rpc.method")}
		if v := str("aws.request_id"); v != "" {
			d.AWS["request_id"] = v
		}
		if n, ok := attrs["aws.attempts"]; ok && n.AsInt64() > 0 {
			d.AWS["retries"] = n.AsInt64() - 1
			delete(attrs, "aws.attempts")
		}
	case attrs[KeyDBSystem].Type() != attribute.EMPTY:
		d.Namespace = "remote"
		d.SQL = map[string]any{"database_type": str(KeyDBSystem)}
		if host := str(KeyServerAddress); host != "" {
			u := host
			if port, ok := attrs[KeyServerPort]; ok {
				u += ":" + port.String()
				delete(attrs, KeyServerPort)
			}
			d.SQL["url"] = u
		}
		if u := str(KeyDBUser); u != "" {
			d.SQL["user"] = u
		}
	}
	if code, ok := attrs["http.status_code"]; ok {
		d.HTTP = map[string]any{"response": map[string]any{"status": code.AsInt64()}}
		delete(attrs, "http.status_code")
		// X-Ray: error for a 4xx (the client's), fault for a 5xx.
		if c := code.AsInt64(); c >= 400 && c < 500 {
			d.Error = true
		} else if c >= 500 {
			d.Fault = true
		}
	}
	errType := str("error.type")
	if t := str("api.error_code"); t != "" {
		errType = t
	}
	if st := s.Status(); st.Code == codes.Error || errType != "" {
		if !d.Error {
			d.Fault = true
		}
		msg := st.Description
		if msg == "" {
			msg = str("api.error_message")
		}
		d.Cause = &Cause{Exceptions: []Exception{{ID: d.ID, Type: errType, Message: msg}}}
	}
	if len(attrs) > 0 {
		md := make(map[string]any, len(attrs))
		for k, v := range attrs {
			md[string(k)] = v.AsInterface()
		}
		d.Metadata = map[string]any{"default": md}
	}
	if b, err := json.Marshal(d); err == nil && len(b)+len(daemonHeader) > maxDocumentLen {
		d.Metadata = nil
	}
	return d
}

// segmentName keeps what X-Ray accepts in a name (letters, digits,
// whitespace and _ . : / % & # = + \ - @), at most 200 characters.
func segmentName(n string) string {
	var b strings.Builder
	for _, r := range n {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsSpace(r) || strings.ContainsRune(`_.:/%&#=+\-@`, r) {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
		if b.Len() >= 200 {
			break
		}
	}
	if b.Len() == 0 {
		return "span"
	}
	return b.String()
}

func annotationKey(k string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, k)
}

// JSONExporter writes each span's segment document as one line to w (the
// "stdout" choice: the function's log stream).
type JSONExporter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSONExporter writes to w.
func NewJSONExporter(w io.Writer) *JSONExporter { return &JSONExporter{w: w} }

// ExportSpans implements sdktrace.SpanExporter.
func (j *JSONExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	enc := json.NewEncoder(j.w)
	for _, s := range spans {
		if err := enc.Encode(map[string]any{"trace": Segment(s)}); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (j *JSONExporter) Shutdown(context.Context) error { return nil }

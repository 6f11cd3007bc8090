// Package eventslocal is a local Amazon EventBridge endpoint that accepts
// PutEvents over the real awsJson1.1 protocol and keeps the entries, so
// tests and the demo can assert the events the product publishes through the
// real SDK client.
package eventslocal

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Entry is one accepted event.
type Entry struct {
	Time         time.Time
	EventBusName string
	Source       string
	DetailType   string `json:"DetailType"`
	Detail       json.RawMessage
	Resources    []string
}

// Server captures events.
type Server struct {
	mu      sync.Mutex
	entries []Entry
	srv     *http.Server
	d       deliveries // rules and AWS service events (rules.go)
}

// Start listens on a loopback port and returns the base URL.
func Start() (*Server, string, error) {
	s := &Server{}
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

// Entries returns what was captured.
func (s *Server) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.entries...)
}

// Reset forgets captured entries.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = nil
}

func fail(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" {
		fail(w, http.StatusBadRequest, "UnknownOperationException", "only PutEvents is implemented")
		return
	}
	var in struct {
		Entries []struct {
			EventBusName, Source, DetailType, Detail string
			Resources                                []string
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "ValidationException", "body is not JSON")
		return
	}
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		fail(w, http.StatusBadRequest, "ValidationException", "Entries must hold 1 to 10 events")
		return
	}
	type result struct {
		EventId   string `json:",omitempty"`
		ErrorCode string `json:",omitempty"`
	}
	var out struct {
		FailedEntryCount int
		Entries          []result
	}
	var accepted []Entry
	s.mu.Lock()
	for _, e := range in.Entries {
		if e.Source == "" || e.DetailType == "" || !json.Valid([]byte(e.Detail)) {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, result{ErrorCode: "MalformedDetail"})
			continue
		}
		entry := Entry{Time: time.Now(), EventBusName: e.EventBusName, Source: e.Source,
			DetailType: e.DetailType, Detail: json.RawMessage(e.Detail), Resources: e.Resources}
		s.entries = append(s.entries, entry)
		accepted = append(accepted, entry)
		out.Entries = append(out.Entries, result{EventId: fmt.Sprintf("local-%d", len(s.entries))})
	}
	s.mu.Unlock()
	// Rules see published events too (after the lock: targets may publish).
	for _, e := range accepted {
		if e.EventBusName == "" {
			e.EventBusName = "default"
		}
		s.route(e)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

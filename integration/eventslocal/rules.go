package eventslocal

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// CloudTrail's delivery to EventBridge, as the EventBridge user guide
// ("AWS service events delivered via AWS CloudTrail") describes it: "All
// events that are delivered by CloudTrail have AWS API Call via CloudTrail as
// the value for detail-type", sent "to the default EventBridge event bus".
const CloudTrailDetailType = "AWS API Call via CloudTrail"

// RuleState is a rule's state. EventBridge's user guide ("Receiving
// read-only management events from AWS services"): a rule ENABLED "matches
// events against the rule, except for read-only AWS management events
// delivered through CloudTrail"; ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
// "matches all events against the rule, including read-only management events
// delivered through CloudTrail". GetSecretValue is read-only, so a rule that
// is to see reads needs the second state.
type RuleState string

const (
	Enabled                    RuleState = "ENABLED"
	EnabledWithAllCloudTrailME RuleState = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
)

// Rule routes the events its pattern matches to Target. Target gets the
// event as EventBridge hands it to a target: the JSON envelope (version, id,
// detail-type, source, account, time, region, resources, detail).
type Rule struct {
	Name    string
	Pattern string // an EventBridge event pattern (JSON); see Match for what is implemented
	State   RuleState
	Target  func(ctx context.Context, event json.RawMessage) error
}

type rule struct {
	Rule
	pattern map[string]any
}

// Envelope is an event as EventBridge delivers it to targets.
type Envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// TargetError is a target's failure, kept for tests to assert on (EventBridge
// would retry and then drop it or send it to a dead-letter queue).
type TargetError struct {
	Rule    string
	EventID string
	Err     error
}

type deliveries struct {
	mu       sync.Mutex
	rules    []*rule
	pending  sync.WaitGroup
	failures []TargetError
	service  []Entry
	account  string
	region   string
}

// PutRule adds a rule (or replaces the one of the same name).
func (s *Server) PutRule(r Rule) error {
	var p map[string]any
	if err := json.Unmarshal([]byte(r.Pattern), &p); err != nil {
		return fmt.Errorf("rule %s: event pattern is not a JSON object: %w", r.Name, err)
	}
	if r.State == "" {
		r.State = Enabled
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for i, old := range s.d.rules {
		if old.Name == r.Name {
			s.d.rules[i] = &rule{r, p}
			return nil
		}
	}
	s.d.rules = append(s.d.rules, &rule{r, p})
	return nil
}

// DeleteRule removes the named rule; events already handed to its target
// still run (Wait waits for them).
func (s *Server) DeleteRule(name string) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for i, r := range s.d.rules {
		if r.Name == name {
			s.d.rules = append(s.d.rules[:i:i], s.d.rules[i+1:]...)
			return
		}
	}
}

// Deliver puts an event an AWS service emits (such as CloudTrail's record of
// a Secrets Manager call) on the default bus: it is kept (ServiceEntries)
// and handed, asynchronously as EventBridge does, to every rule it matches.
func (s *Server) Deliver(e Entry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.EventBusName == "" {
		e.EventBusName = "default"
	}
	s.d.mu.Lock()
	s.d.service = append(s.d.service, e)
	s.d.mu.Unlock()
	s.route(e)
}

// ServiceEntries returns the events Deliver received.
func (s *Server) ServiceEntries() []Entry {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return append([]Entry(nil), s.d.service...)
}

// Wait blocks until every target invoked so far has returned, so a test can
// assert on what the targets did "within the same run".
func (s *Server) Wait() { s.d.pending.Wait() }

// TargetErrors returns the failures of targets so far.
func (s *Server) TargetErrors() []TargetError {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return append([]TargetError(nil), s.d.failures...)
}

// SetAccount names the account and region put in delivered envelopes
// (default 000000000000, us-east-1).
func (s *Server) SetAccount(account, region string) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.account, s.d.region = account, region
}

func (s *Server) route(e Entry) {
	s.d.mu.Lock()
	account, region := s.d.account, s.d.region
	rules := append([]*rule(nil), s.d.rules...)
	s.d.mu.Unlock()
	if account == "" {
		account = "000000000000"
	}
	if region == "" {
		region = "us-east-1"
	}
	env := Envelope{Version: "0", ID: uuid.NewString(), DetailType: e.DetailType, Source: e.Source, Account: account,
		Time: e.Time.UTC().Format(time.RFC3339), Region: region, Resources: e.Resources, Detail: e.Detail}
	if env.Resources == nil {
		env.Resources = []string{}
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return // Detail was checked to be valid JSON on the way in
	}
	var event map[string]any
	if err := json.Unmarshal(raw, &event); err != nil {
		return
	}
	readOnly := readOnlyManagementEvent(e, event)
	for _, r := range rules {
		if r.State != Enabled && r.State != EnabledWithAllCloudTrailME {
			continue
		}
		if readOnly && r.State != EnabledWithAllCloudTrailME {
			continue
		}
		if e.EventBusName != "default" || !Match(r.pattern, event) {
			continue
		}
		s.d.pending.Add(1)
		go func(r *rule) {
			defer s.d.pending.Done()
			if err := r.Target(context.Background(), raw); err != nil {
				s.d.mu.Lock()
				s.d.failures = append(s.d.failures, TargetError{Rule: r.Name, EventID: env.ID, Err: err})
				s.d.mu.Unlock()
			}
		}(r)
	}
}

// readOnlyManagementEvent: a CloudTrail API call event whose record says
// readOnly true.
func readOnlyManagementEvent(e Entry, event map[string]any) bool {
	if e.DetailType != CloudTrailDetailType {
		return false
	}
	d, _ := event["detail"].(map[string]any)
	ro, _ := d["readOnly"].(bool)
	return ro
}

// Match reports whether event matches an EventBridge event pattern. It
// implements the subset of the EventBridge user guide's "Event patterns" the
// project's rules use: a field's array of values matches when the event's
// value (or any element of the event's array) equals one of them; a nested
// object matches field by field; {"prefix": "..."}, {"exists": bool} and
// {"anything-but": [...] or "..."} (a present value that is none of them)
// inside the array. Every field in the pattern must match ("Each field
// specified in a pattern must match").
func Match(pattern map[string]any, event map[string]any) bool {
	for k, want := range pattern {
		got, present := event[k]
		switch w := want.(type) {
		case map[string]any:
			sub, ok := got.(map[string]any)
			if !ok || !Match(w, sub) {
				return false
			}
		case []any:
			if !matchValues(w, got, present) {
				return false
			}
		default:
			return false // a pattern's leaves are arrays
		}
	}
	return true
}

func matchValues(want []any, got any, present bool) bool {
	vals := []any{got}
	if arr, ok := got.([]any); ok {
		vals = arr
	}
	for _, w := range want {
		if m, ok := w.(map[string]any); ok {
			if ex, ok := m["exists"].(bool); ok {
				if ex == present {
					return true
				}
				continue
			}
			if but, ok := m["anything-but"]; ok {
				if present && anythingBut(but, vals) {
					return true
				}
				continue
			}
			if p, ok := m["prefix"].(string); ok {
				for _, v := range vals {
					if s, ok := v.(string); ok && strings.HasPrefix(s, p) {
						return true
					}
				}
			}
			continue
		}
		if !present {
			continue
		}
		for _, v := range vals {
			if v == w {
				return true
			}
		}
	}
	return false
}

// anythingBut: every value differs from every one of but (a value or a list).
func anythingBut(but any, vals []any) bool {
	excluded, ok := but.([]any)
	if !ok {
		excluded = []any{but}
	}
	for _, v := range vals {
		for _, x := range excluded {
			if v == x {
				return false
			}
		}
	}
	return true
}

package eventslocal

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
)

func TestMatch(t *testing.T) {
	event := map[string]any{"source": "aws.secretsmanager", "detail-type": CloudTrailDetailType,
		"detail": map[string]any{"eventName": "GetSecretValue", "eventSource": "secretsmanager.amazonaws.com",
			"requestParameters": map[string]any{"secretId": "arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf"}}}
	for _, c := range []struct {
		pattern string
		want    bool
	}{
		{`{"source":["aws.secretsmanager"]}`, true},
		{`{"source":["aws.s3","aws.secretsmanager"],"detail":{"eventName":["GetSecretValue","PutSecretValue"]}}`, true},
		{`{"source":["aws.s3"]}`, false},
		{`{"detail":{"eventName":["PutSecretValue"]}}`, false},
		{`{"detail":{"requestParameters":{"secretId":[{"prefix":"arn:aws:secretsmanager:"}]}}}`, true},
		{`{"detail":{"errorCode":[{"exists":true}]}}`, false},
		{`{"detail":{"errorCode":[{"exists":false}]}}`, true},
		{`{"detail":{"missing":{"x":["y"]}}}`, false},
		{`{"detail":{"eventName":[{"anything-but":["PutSecretValue"]}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":["GetSecretValue","PutSecretValue"]}]}}`, false},
		{`{"detail":{"eventName":[{"anything-but":"GetSecretValue"}]}}`, false},
		{`{"detail":{"errorCode":[{"anything-but":["x"]}]}}`, false},
	} {
		var p map[string]any
		if err := json.Unmarshal([]byte(c.pattern), &p); err != nil {
			t.Fatal(err)
		}
		if got := Match(p, event); got != c.want {
			t.Errorf("Match(%s) = %v, want %v", c.pattern, got, c.want)
		}
	}
}

// A read-only CloudTrail event reaches only rules in the state
// ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS; a change reaches both.
func TestRulesAndReadOnlyManagementEvents(t *testing.T) {
	s, _, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	got := map[string][]string{}
	target := func(name string) func(context.Context, json.RawMessage) error {
		return func(_ context.Context, raw json.RawMessage) error {
			var env Envelope
			if err := json.Unmarshal(raw, &env); err != nil {
				return err
			}
			var d struct{ EventName string }
			_ = json.Unmarshal(env.Detail, &d)
			mu.Lock()
			got[name] = append(got[name], d.EventName)
			mu.Unlock()
			return nil
		}
	}
	pattern := `{"source":["aws.secretsmanager"],"detail-type":["AWS API Call via CloudTrail"]}`
	if err := s.PutRule(Rule{Name: "changes", Pattern: pattern, Target: target("changes")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRule(Rule{Name: "all", Pattern: pattern, State: EnabledWithAllCloudTrailME, Target: target("all")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRule(Rule{Name: "bad", Pattern: `[1]`}); err == nil {
		t.Error("a pattern that is not an object was accepted")
	}
	s.Deliver(Entry{Source: "aws.secretsmanager", DetailType: CloudTrailDetailType, Detail: json.RawMessage(`{"eventName":"GetSecretValue","readOnly":true}`)})
	s.Deliver(Entry{Source: "aws.secretsmanager", DetailType: CloudTrailDetailType, Detail: json.RawMessage(`{"eventName":"PutSecretValue","readOnly":false}`)})
	s.Wait()
	if len(got["changes"]) != 1 || got["changes"][0] != "PutSecretValue" || len(got["all"]) != 2 {
		t.Errorf("targets got %v", got)
	}
	if len(s.ServiceEntries()) != 2 || len(s.Entries()) != 0 {
		t.Errorf("service entries %d, published %d", len(s.ServiceEntries()), len(s.Entries()))
	}
}

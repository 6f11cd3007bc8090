package accessrule

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The first pattern lists exactly Calls, and both are JSON objects.
func TestPatterns(t *testing.T) {
	var p struct {
		Detail struct{ EventName []string } `json:"detail"`
	}
	if err := json.Unmarshal([]byte(Patterns[0]), &p); err != nil || !slices.Equal(p.Detail.EventName, Calls) {
		t.Fatalf("pattern 0 names %v (%v), Calls %v", p.Detail.EventName, err, Calls)
	}
	var q struct {
		Detail struct {
			EventName []struct {
				AnythingBut []string `json:"anything-but"`
			} `json:"eventName"`
		} `json:"detail"`
	}
	if err := json.Unmarshal([]byte(Patterns[1]), &q); err != nil || len(q.Detail.EventName) != 1 || !slices.Equal(q.Detail.EventName[0].AnythingBut, Calls) {
		t.Fatalf("pattern 1 does not exclude exactly Calls: %s (%v)", Patterns[1], err)
	}
	for _, s := range Patterns {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil || !strings.Contains(s, `"aws.secretsmanager"`) {
			t.Errorf("pattern %s: %v", s, err)
		}
	}
}

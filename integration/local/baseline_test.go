package local

import (
	"reflect"
	"testing"
)

func TestJudge(t *testing.T) {
	working := &Baseline{secret: map[string]string{"v1": "AWSCURRENT a"}, target: map[string]string{"postgres u": "h1"}}
	neverWorked := &Baseline{Broken: []string{"invariant 2: AWSCURRENT (v1) does not authenticate"},
		secret: map[string]string{"v1": "AWSCURRENT a"}, target: map[string]string{"postgres u": "h1"}}
	same := &Baseline{secret: map[string]string{"v1": "AWSCURRENT a"}, target: map[string]string{"postgres u": "h1"}}
	targetChanged := &Baseline{secret: map[string]string{"v1": "AWSCURRENT a"}, target: map[string]string{"postgres u": "h2"}}
	newVersion := &Baseline{secret: map[string]string{"v1": "AWSPREVIOUS a", "v2": "AWSCURRENT b"}, target: map[string]string{"postgres u": "h1"}}
	inv2 := "invariant 2: AWSCURRENT (v1) does not authenticate"
	inv5 := "invariant 5: passwords found in logs"
	tests := []struct {
		name           string
		before, now    *Baseline
		bad            []string
		wantViolations int
		wantRefused    bool
	}{
		{"worked, still works", working, same, nil, 0, false},
		{"worked, broken by the product", working, targetChanged, []string{inv2}, 1, false},
		{"never worked, left alone", neverWorked, same, []string{inv2}, 0, true},
		{"never worked, left alone, but a leak", neverWorked, same, []string{inv2, inv5}, 1, true},
		{"never worked, target changed", neverWorked, targetChanged, []string{inv2}, 1, false},
		{"never worked, new version", neverWorked, newVersion, []string{inv2}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.before, tt.now, tt.bad)
			if len(v.Violations) != tt.wantViolations || v.RefusedUnchanged != tt.wantRefused {
				t.Fatalf("verdict = %+v, want %d violations, refused %v", v, tt.wantViolations, tt.wantRefused)
			}
		})
	}
	if got := neverWorked.Changes(newVersion); !reflect.DeepEqual(got, []string{"version v1", "version v2"}) {
		t.Fatalf("changes = %v", got)
	}
	if got := working.Changes(targetChanged); !reflect.DeepEqual(got, []string{"target user postgres u"}) {
		t.Fatalf("changes = %v", got)
	}
	// A refused secret that shares its login with the rotation that won:
	// the login changed, the secret did not.
	if got := working.SecretChanges(targetChanged); len(got) != 0 {
		t.Fatalf("secret changes = %v", got)
	}
	if got := working.SecretChanges(newVersion); !reflect.DeepEqual(got, []string{"version v1", "version v2"}) {
		t.Fatalf("secret changes = %v", got)
	}
}

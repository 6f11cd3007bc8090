package rotation_test

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// recordedActionsFile is written by the integration test
// TestRecordedActions: per function, the IAM actions of every AWS call the
// function made in a fixed set of rotations run through the state machine
// against the stand-ins (successes on every engine and strategy, a
// rollback at each step, conflict, abandon, refused starts, a dead
// rotation recovered, the repair after COMPENSATION_FAILED, a bake with
// alarms, fleets, native rotation). Regenerate it with
//
//	SECRETSAGA_UPDATE_ACTIONS=1 go test -tags integration -count=1 -run '^TestRecordedActions$' ./integration/
const recordedActionsFile = "testdata/recorded-actions.json"

const regenerateRecording = "SECRETSAGA_UPDATE_ACTIONS=1 go test -tags integration -count=1 -run '^TestRecordedActions$' ./integration/"

// grantExceptions are the actions a function role is granted although no
// recorded call needs them, each with its reason. Nothing else may be
// granted beyond the recording.
var grantExceptions = map[string]map[string]string{
	// Every function: what the Lambda service does on its behalf, not
	// calls of its code (so the recording cannot see them).
	"*": {
		"logs:CreateLogStream":     "the Lambda runtime writes the function's logs to its log group",
		"logs:PutLogEvents":        "the Lambda runtime writes the function's logs to its log group",
		"xray:PutTraceSegments":    "active tracing: the Lambda service sends the function's segments",
		"xray:PutTelemetryRecords": "active tracing: the Lambda service sends the function's segments",
	},
}

func readRecording(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(recordedActionsFile)
	if err != nil {
		t.Fatalf("%v: regenerate it with\n  %s", err, regenerateRecording)
	}
	var rec map[string][]string
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", recordedActionsFile, err)
	}
	return rec
}

// TestGrantsMatchRecording: each function role allows exactly the actions
// its calls needed in the recorded rotations (recordedActionsFile) plus
// grantExceptions, in every variant without customer managed keys (TestIAM
// checks the KMS actions those add). A grant beyond them fails (an unused
// grant: remove it), and so does a recorded call the role does not allow
// (the function would meet AccessDenied in AWS).
func TestGrantsMatchRecording(t *testing.T) {
	rec := readRecording(t)
	for name, s := range map[string]*synthesized{"defaults": defaults(t), "without the fleet": noFleet(t), "without the native rotation entry": noNative(t)} {
		t.Run(name, func(t *testing.T) {
			d := s.doc
			for fn, id := range d.functions(t) {
				recorded, ok := rec[fn]
				if !ok {
					t.Errorf("%s: not in %s: add a scenario that runs it to TestRecordedActions (integration/grants_test.go) and regenerate:\n  %s",
						fn, recordedActionsFile, regenerateRecording)
					continue
				}
				granted := map[string]bool{}
				for _, st := range d.statements(t, ref(d.Resources[id].Properties["Role"])) {
					for _, a := range st.actions() {
						granted[a] = true
					}
				}
				for _, msg := range grantProblems(fn, granted, recorded, grantExceptions) {
					t.Error(msg)
				}
			}
		})
	}
}

// grantProblems compares one role's granted actions with the function's
// recorded ones and its exceptions.
func grantProblems(fn string, granted map[string]bool, recorded []string, exceptions map[string]map[string]string) []string {
	var out []string
	exc := maps.Clone(exceptions["*"])
	maps.Copy(exc, exceptions[fn])
	for _, a := range slices.Sorted(maps.Keys(granted)) {
		if !slices.Contains(recorded, a) && exc[a] == "" {
			out = append(out, fn+": its role grants "+a+", which no call of the recorded rotations needs: remove the grant "+
				"(or, if a path the scenarios cannot reach needs it, add a scenario to TestRecordedActions or an entry with its reason to grantExceptions)")
		}
	}
	for _, a := range recorded {
		if !granted[a] {
			out = append(out, fn+": calls "+a+" in the recorded rotations ("+recordedActionsFile+"), but its role does not grant it: the call would be denied in AWS")
		}
	}
	for _, a := range slices.Sorted(maps.Keys(exceptions[fn])) {
		switch {
		case slices.Contains(recorded, a):
			out = append(out, fn+": "+a+" is recorded now: drop its entry from grantExceptions")
		case !granted[a]:
			out = append(out, fn+": grantExceptions names "+a+", which its role no longer grants: drop the entry")
		}
	}
	return out
}

// TestGrantProblems: the comparison itself, on made-up roles.
func TestGrantProblems(t *testing.T) {
	set := func(a ...string) map[string]bool {
		m := map[string]bool{}
		for _, x := range a {
			m[x] = true
		}
		return m
	}
	base := slices.Collect(maps.Keys(grantExceptions["*"]))
	exceptions := maps.Clone(grantExceptions)
	exceptions["acquirelease"] = map[string]string{"dynamodb:ConditionCheckItem": "a path no scenario reaches"}
	tests := []struct {
		name     string
		fn       string
		granted  map[string]bool
		recorded []string
		want     []string // substrings, one per problem, in order
	}{
		{"exact", "setsecret", set(append([]string{"secretsmanager:GetSecretValue"}, base...)...), []string{"secretsmanager:GetSecretValue"}, nil},
		{"grant beyond the recording", "setsecret", set(append([]string{"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"}, base...)...),
			[]string{"secretsmanager:GetSecretValue"}, []string{"grants secretsmanager:PutSecretValue, which no call"}},
		{"recorded call not granted", "setsecret", set(base...), []string{"secretsmanager:GetSecretValue"},
			[]string{"calls secretsmanager:GetSecretValue in the recorded rotations"}},
		{"exception still granted", "acquirelease", set(append([]string{"dynamodb:ConditionCheckItem"}, base...)...), nil, nil},
		{"exception now recorded", "acquirelease", set(append([]string{"dynamodb:ConditionCheckItem"}, base...)...), []string{"dynamodb:ConditionCheckItem"},
			[]string{"is recorded now"}},
		{"exception no longer granted", "acquirelease", set(base...), nil, []string{"no longer grants"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := grantProblems(tt.fn, tt.granted, tt.recorded, exceptions)
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d", got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %q, want it to say %q", got[i], tt.want[i])
				}
			}
		})
	}
}

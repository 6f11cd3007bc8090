package statemachines

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite fleet.asl.json from rotation.asl.json")

func TestFleetFileUpToDate(t *testing.T) {
	want, err := FleetDefinition()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("fleet.asl.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(Fleet, want) {
		t.Fatal("fleet.asl.json is stale: run go test ./statemachines -run TestFleetFileUpToDate -update")
	}
}

func TestFleetStructure(t *testing.T) {
	var m struct {
		States map[string]struct {
			Type          string
			ItemProcessor struct {
				States map[string]struct {
					Type     string
					Branches []struct {
						StartAt string
						States  map[string]json.RawMessage
					}
					Catch []struct{ ErrorEquals []string }
				}
			}
		}
	}
	if err := json.Unmarshal(Fleet, &m); err != nil {
		t.Fatal(err)
	}
	rotate := m.States["RotateEach"].ItemProcessor.States["Rotate"]
	if rotate.Type != "Parallel" || len(rotate.Branches) != 1 {
		t.Fatalf("Rotate is %q with %d branches, want a Parallel with the saga as its one branch", rotate.Type, len(rotate.Branches))
	}
	var rot struct{ States map[string]json.RawMessage }
	if err := json.Unmarshal(Rotation, &rot); err != nil {
		t.Fatal(err)
	}
	for name, def := range rot.States {
		got, ok := rotate.Branches[0].States[name]
		if !ok || !jsonEqual(t, got, def) {
			t.Errorf("the fleet's copy of rotation state %s differs from rotation.asl.json", name)
		}
	}
	if len(rotate.Catch) != 1 || !slices.Equal(rotate.Catch[0].ErrorEquals, []string{"States.ALL"}) {
		t.Error("one secret's failure must be caught (States.ALL) so it cannot stop the others")
	}
	want := append(Placeholders(Rotation), "FleetReportFunctionArn", "FleetSummaryFunctionArn", "ListSecretsFunctionArn")
	slices.Sort(want)
	if got := Placeholders(Fleet); !slices.Equal(got, want) {
		t.Errorf("placeholders %v, want %v", got, want)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

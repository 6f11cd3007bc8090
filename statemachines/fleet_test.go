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

// TestFleetPages: the fleet runs in pages, so that its state holds one page
// of ARNs and results, never the whole fleet (the 256 KiB payload limit):
// ListSecrets takes the cursor, the Map its page, Summarize adds to the
// running Totals, and NextPage carries only the input, the cursor and the
// Totals back to ListSecrets until a page has no Next.
func TestFleetPages(t *testing.T) {
	type state struct {
		Type, Next, Default, ItemsPath, OutputPath string
		ResultPath                                 *string
		Parameters                                 map[string]any
		Choices                                    []struct {
			Variable, StringEquals, Next string
		}
		ItemReader, ResultWriter json.RawMessage
	}
	var m struct{ States map[string]state }
	if err := json.Unmarshal(Fleet, &m); err != nil {
		t.Fatal(err)
	}
	st := m.States
	list := st["ListSecrets"]
	if list.Parameters["After.$"] != "$.After" || list.Parameters["PageSize.$"] != "$.PageSize" || list.Next != "RotateEach" {
		t.Errorf("ListSecrets takes %v, next %s: want the cursor $.After and $.PageSize, then RotateEach", list.Parameters, list.Next)
	}
	each := st["RotateEach"]
	if each.ItemsPath != "$.selection.SecretIds" || each.Next != "Summarize" || each.ItemReader != nil || each.ResultWriter != nil {
		t.Errorf("RotateEach: items %s, next %s: want the page's $.selection.SecretIds, then Summarize", each.ItemsPath, each.Next)
	}
	sum := st["Summarize"]
	if sum.Parameters["Totals.$"] != "$.Totals" || sum.Parameters["Results.$"] != "$.Results" || sum.ResultPath == nil || *sum.ResultPath != "$.Totals" || sum.Next != "MorePages" {
		t.Errorf("Summarize takes %v into %v, next %s: want the page's results added to $.Totals, then MorePages", sum.Parameters, sum.ResultPath, sum.Next)
	}
	more := st["MorePages"]
	if more.Type != "Choice" || len(more.Choices) != 1 || more.Choices[0].Variable != "$.selection.Next" || more.Choices[0].StringEquals != "" ||
		more.Choices[0].Next != "Done" || more.Default != "NextPage" {
		t.Errorf("MorePages %+v: want Done when $.selection.Next is empty, else NextPage", more)
	}
	next := st["NextPage"]
	want := map[string]any{"TagKey.$": "$.TagKey", "TagValue.$": "$.TagValue", "Limit.$": "$.Limit", "PageSize.$": "$.PageSize",
		"MaxConcurrency.$": "$.MaxConcurrency", "Verify.$": "$.Verify", "After.$": "$.selection.Next", "Totals.$": "$.Totals"}
	if next.Type != "Pass" || !jsonEqual(t, must(json.Marshal(next.Parameters)), must(json.Marshal(want))) || next.Next != "ListSecrets" {
		t.Errorf("NextPage %+v: want exactly %v (the page's ARNs and results dropped), then ListSecrets", next, want)
	}
	if done := st["Done"]; done.Type != "Succeed" || done.OutputPath != "$.Totals" {
		t.Errorf("Done %+v: want the Totals as the output", done)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

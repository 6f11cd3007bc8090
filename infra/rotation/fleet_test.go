package rotation_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFleetRunsInPages: the deployed fleet machine reads its secrets a page
// at a time (listsecrets' cursor, a Choice back to it while a page has a
// Next), not in one inline list that meets the 256 KiB payload limit above
// ~2,500 secrets; it needs no S3 (no ItemReader or ResultWriter, and its
// role no s3 action), and every failed child is reported (fleetreport).
func TestFleetRunsInPages(t *testing.T) {
	d := defaults(t).doc
	id := d.machines(t)["fleet"]
	var def struct {
		States map[string]struct {
			Type, Next, Default string
			Parameters          map[string]any
			Choices             []struct{ Variable, StringEquals, Next string }
			ItemReader          any
			ResultWriter        any
			ItemProcessor       struct {
				States map[string]struct {
					Catch []struct{ Next string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(d.Resources[id].Properties["DefinitionString"].(string)), &def); err != nil {
		t.Fatal(err)
	}
	st := def.States
	if st["ListSecrets"].Parameters["After.$"] != "$.After" {
		t.Errorf("ListSecrets takes no cursor: %v", st["ListSecrets"].Parameters)
	}
	more := st["MorePages"]
	if more.Type != "Choice" || len(more.Choices) != 1 || more.Choices[0].Variable != "$.selection.Next" || more.Default != "NextPage" ||
		st["NextPage"].Next != "ListSecrets" || st["NextPage"].Parameters["After.$"] != "$.selection.Next" {
		t.Errorf("no page loop: MorePages %+v, NextPage %+v", more, st["NextPage"])
	}
	if each := st["RotateEach"]; each.Type != "Map" || each.ItemReader != nil || each.ResultWriter != nil {
		t.Errorf("RotateEach %+v: want a Map over the page, no S3 reader or writer", each)
	}
	if c := st["RotateEach"].ItemProcessor.States["Rotate"].Catch; len(c) != 1 || c[0].Next != "ReportFailure" {
		t.Errorf("Rotate's Catch %+v: want ReportFailure", c)
	}
	role := ref(d.Resources[id].Properties["RoleArn"])
	for _, s := range d.statements(t, role) {
		for _, a := range s.actions() {
			if strings.HasPrefix(a, "s3:") {
				t.Errorf("the fleet role allows %s", a)
			}
		}
	}
}

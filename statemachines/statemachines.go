// Package statemachines embeds the Amazon States Language definitions so that
// the local executor, the tests and the CDK app all use the very same file.
package statemachines

import (
	_ "embed"
	"regexp"
	"slices"
)

// Rotation is statemachines/rotation.asl.json: the rotation saga. Its
// ${Name} placeholders are filled by CDK DefinitionSubstitutions (or by the
// local executor with the same names).
//
//go:embed rotation.asl.json
var Rotation []byte

// Ephemeral is statemachines/ephemeral.asl.json: a short-lived database
// login, issued from a template, waited out and revoked (shared/ephemeral).
//
//go:embed ephemeral.asl.json
var Ephemeral []byte

var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Placeholders returns the distinct ${Name} placeholders of a definition, sorted.
func Placeholders(def []byte) []string {
	var names []string
	for _, m := range placeholder.FindAllSubmatch(def, -1) {
		names = append(names, string(m[1]))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

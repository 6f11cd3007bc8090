package rotation_test

import (
	"testing"

	"github.com/secretsaga/secretsaga/infra/rotation"
)

// TestLedgerRetention: every function that writes the ledger gets the
// journal's retention in days (default 400, 0 when configured so), which it
// writes as each journal record's expiresAt, the table's TTL attribute
// (TestTable); no other function gets it.
func TestLedgerRetention(t *testing.T) {
	zero := 0
	for _, tc := range []struct {
		name string
		s    *synthesized
		want string
	}{
		{"defaults", defaults(t), "400"},
		{"kept forever", synth(t, "retention-0", rotation.RotationProps{LedgerRetentionDays: &zero}), "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, id := range tc.s.doc.functions(t) {
				env, _ := tc.s.doc.Resources[id].Properties["Environment"].(map[string]any)
				vars, _ := env["Variables"].(map[string]any)
				got, has := vars[rotation.EnvLedgerRetentionDays]
				writes := false
				for _, n := range ledgerFunctions {
					writes = writes || n == name
				}
				switch {
				case writes && got != tc.want:
					t.Errorf("%s: %s = %v, want %s", name, rotation.EnvLedgerRetentionDays, got, tc.want)
				case !writes && has:
					t.Errorf("%s: %s = %v, but it writes no ledger", name, rotation.EnvLedgerRetentionDays, got)
				}
			}
		})
	}
}

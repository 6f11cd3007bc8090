package main

import (
	"strings"
	"testing"
)

// TestProblems: what fails make soak. A request failed with a login
// refused, or a failed window probe, in a mode that must not fail is
// always a problem; requests that failed with no login refused (timeouts
// under load) only above one in 10,000; the naive mode never.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode ModeResult
		want string // a fragment of the one problem; "" for none
	}{
		{"clean", ModeResult{Mode: "client", Requests: 20_000}, ""},
		{"a refused login", ModeResult{Mode: "client", Requests: 20_000, Failed: 1, Refused: 1}, "1 of 20000 requests failed with a login refused"},
		{"a failed window probe", ModeResult{Mode: "client", Requests: 20_000, Probes: 4, ProbesFailed: 1}, "1 of 4 window probes failed"},
		{"two timeouts in 20,000", ModeResult{Mode: "client", Requests: 20_000, Failed: 2}, ""},
		{"three timeouts in 20,000", ModeResult{Mode: "client", Requests: 20_000, Failed: 3}, "3 of 20000 requests failed with no login refused"},
		{"a timeout in 5,000", ModeResult{Mode: "client", Requests: 5_000, Failed: 1}, "1 of 5000 requests failed with no login refused"},
		{"the naive mode fails freely", ModeResult{Mode: "naive", Requests: 20_000, Failed: 900, Refused: 800, Probes: 4, ProbesFailed: 4}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Cells: []CellResult{{Engine: "postgres", Strategy: "single user", Modes: []ModeResult{tc.mode}}}}
			got := r.Problems()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Fatalf("problems %q, want one with %q", got, tc.want)
			}
		})
	}
}

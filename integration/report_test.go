//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// The harness's summary: one row per scenario family, printed after the
// run (the README quotes it).
var report = struct {
	sync.Mutex
	rows  map[string]*row
	order []string
	arns  []string // every secret the run created, for the final leak scan
}{rows: map[string]*row{}}

type row struct {
	cells, passing, violations int
	// refused counts cells whose secret never worked (AWSCURRENT did not
	// log in before the scenario) and that the product left byte-for-byte
	// unchanged: refused, not broken.
	refused int
	elapsed time.Duration
}

// verdict is one cell's invariant check, filled in by the scenario.
type verdict struct {
	violations       int
	refusedUnchanged bool
}

// cell counts t as one cell of family; it passes if t does.
func cell(t *testing.T, family string) *verdict {
	t.Helper()
	start := time.Now()
	v := new(verdict)
	if recordingActions.Load() {
		return v // TestRecordedActions reruns cells that count on their own
	}
	t.Cleanup(func() {
		report.Lock()
		defer report.Unlock()
		r := report.rows[family]
		if r == nil {
			r = &row{}
			report.rows[family] = r
			report.order = append(report.order, family)
		}
		r.cells++
		if !t.Failed() {
			r.passing++
		}
		r.violations += v.violations
		if v.refusedUnchanged {
			r.refused++
		}
		r.elapsed += time.Since(start)
	})
	return v
}

func trackSecret(arn string) {
	report.Lock()
	defer report.Unlock()
	report.arns = append(report.arns, arn)
}

// finalLeakScan searches everything the whole run produced for every
// password any secret of the run ever held. It returns the number of hits.
func finalLeakScan(w io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report.Lock()
	arns := slices.Clone(report.arns)
	report.Unlock()
	secrets, passwords, leaks := env.LeakScan(ctx, arns)
	hits := 0
	for _, arn := range slices.Sorted(maps.Keys(leaks)) {
		hits += len(leaks[arn])
		fmt.Fprintf(w, "LEAK: a password of %s appears in %s\n", arn, strings.Join(leaks[arn], ", "))
	}
	fmt.Fprintf(w, "leak scan: %d passwords of %d secrets (masters included) searched in every log line, stdout and stderr line, event, ledger item and execution: %d hits\n", passwords, secrets, hits)
	return hits
}

func printReport(w io.Writer) {
	report.Lock()
	defer report.Unlock()
	if len(report.order) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario family\tcells\tpassing\tinvariant violations\trefused, unchanged\ttime\t")
	var total row
	for _, f := range report.order {
		r := report.rows[f]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%v\t\n", f, r.cells, r.passing, r.violations, r.refused, r.elapsed.Round(100*time.Millisecond))
		total.cells += r.cells
		total.passing += r.passing
		total.violations += r.violations
		total.refused += r.refused
		total.elapsed += r.elapsed
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%v\t\n", total.cells, total.passing, total.violations, total.refused, total.elapsed.Round(100*time.Millisecond))
	// "refused, unchanged": cells whose secret never worked (AWSCURRENT did
	// not log in before the scenario) and that the product left
	// byte-for-byte as it was, secret and target; not violations.
	_ = tw.Flush()
}

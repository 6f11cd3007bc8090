//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
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
	elapsed                    time.Duration
}

// cell counts t as one cell of family; it passes if t does.
// violations is filled in by the scenario's invariant check.
func cell(t *testing.T, family string) *int {
	t.Helper()
	start := time.Now()
	violations := new(int)
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
		r.violations += *violations
		r.elapsed += time.Since(start)
	})
	return violations
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
	passwords, leaks := env.LeakScan(ctx, arns)
	hits := 0
	for _, arn := range arns {
		if found := leaks[arn]; len(found) > 0 {
			hits += len(found)
			fmt.Fprintf(w, "LEAK: a password of %s appears in %s\n", arn, strings.Join(found, ", "))
		}
	}
	fmt.Fprintf(w, "leak scan: %d passwords of %d secrets searched in every log line, event, ledger item and execution: %d hits\n", passwords, len(arns), hits)
	return hits
}

func printReport(w io.Writer) {
	report.Lock()
	defer report.Unlock()
	if len(report.order) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario family\tcells\tpassing\tinvariant violations\ttime\t")
	var total row
	for _, f := range report.order {
		r := report.rows[f]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t\n", f, r.cells, r.passing, r.violations, r.elapsed.Round(100*time.Millisecond))
		total.cells += r.cells
		total.passing += r.passing
		total.violations += r.violations
		total.elapsed += r.elapsed
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%v\t\n", total.cells, total.passing, total.violations, total.elapsed.Round(100*time.Millisecond))
	_ = tw.Flush()
}

package access

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkHandleBatch: reads recorded per second by one invocation batch
// of 100 GetSecretValue events of one secret, the handler's own work (parse,
// judge, version from the journal, the two ledger writes) against in-memory
// fakes: the network calls are counted, not timed (README gives both).
func BenchmarkHandleBatch(b *testing.B) {
	const size = 100
	batch := make([]json.RawMessage, size)
	for i := range batch {
		batch[i] = event(func(r map[string]any) { r["eventID"] = fmt.Sprintf("ev-%d", i) })
	}
	var describes, journals, puts int
	for b.Loop() {
		r := newRig()
		r.svc.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		if err := r.svc.HandleBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		describes, journals, puts = r.sm.calls, r.store.journalReads, r.store.puts
	}
	b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "reads/s")
	b.ReportMetric(float64(describes), "DescribeSecret/batch")
	b.ReportMetric(float64(journals), "journalQueries/batch")
	b.ReportMetric(float64(puts), "accessPuts/batch")
}

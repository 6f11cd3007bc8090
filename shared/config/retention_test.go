package config

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

func TestLedgerRetention(t *testing.T) {
	for _, tt := range []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{value: "", want: 0},
		{value: "0", want: 0},
		{value: " 400 ", want: 400 * 24 * time.Hour},
		{value: "1", want: 24 * time.Hour},
		{value: "-1", wantErr: true},
		{value: "400d", wantErr: true},
		{value: "1.5", wantErr: true},
	} {
		got, err := LedgerRetention(func(k string) string {
			if k == EnvLedgerRetentionDays {
				return tt.value
			}
			return ""
		})
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), EnvLedgerRetentionDays) {
				t.Errorf("%q: error %v, want one naming %s", tt.value, err, EnvLedgerRetentionDays)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %v, %v; want %v", tt.value, got, err, tt.want)
		}
	}
}

// fakeDynamoDB answers GetItem with no item and TransactWriteItems with
// success, and keeps the transactions' bodies: enough for a lease to be
// taken through the real SDK client the function builds.
type fakeDynamoDB struct {
	mu           sync.Mutex
	transactions []string
}

func (f *fakeDynamoDB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810."); op {
	case "GetItem", "TransactWriteItems":
		if op == "TransactWriteItems" {
			f.mu.Lock()
			f.transactions = append(f.transactions, string(body))
			f.mu.Unlock()
		}
		_, _ = w.Write([]byte("{}"))
	default:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"unexpected ` + op + `"}`))
	}
}

// TestFromEnvWritesJournalTTL: a function deployed with
// LEDGER_RETENTION_DAYS gives the journal record it writes an expiresAt
// (the table's TTL attribute) that many days ahead, and the lease item
// none (losing the fencing counter would let an old token be issued again);
// without the variable no record gets one.
func TestFromEnvWritesJournalTTL(t *testing.T) {
	for _, tt := range []struct {
		days string
		want time.Duration
	}{{"400", 400 * 24 * time.Hour}, {"", 0}} {
		t.Run("days="+tt.days, func(t *testing.T) {
			db := &fakeDynamoDB{}
			srv := httptest.NewServer(db)
			defer srv.Close()
			t.Setenv("AWS_REGION", "us-east-1")
			t.Setenv("AWS_ACCESS_KEY_ID", "AK")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
			t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.URL)
			t.Setenv(EnvLedgerTable, "ledger")
			t.Setenv(EnvLedgerRetentionDays, tt.days)
			svc, err := FromEnv(context.Background(), "acquirelease")
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			if _, err := svc.Ledger.Acquire(context.Background(), ledger.AcquireRequest{
				Secret: "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf", Execution: "exec-1", Token: "token-1", Actor: "acquirelease",
			}); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			if len(db.transactions) != 1 {
				t.Fatalf("%d transactions, want 1", len(db.transactions))
			}
			var tx struct {
				TransactItems []struct {
					Put *struct {
						Item map[string]map[string]any
					}
				}
			}
			if err := json.Unmarshal([]byte(db.transactions[0]), &tx); err != nil {
				t.Fatal(err)
			}
			var journal, lease int
			for _, it := range tx.TransactItems {
				if it.Put == nil {
					continue
				}
				sk, _ := it.Put.Item["sk"]["S"].(string)
				exp, has := it.Put.Item["expiresAt"]
				switch {
				case strings.HasPrefix(sk, "J#"):
					journal++
					if tt.want == 0 {
						if has {
							t.Errorf("journal record %s has expiresAt %v without a retention", sk, exp)
						}
						continue
					}
					n, err := strconv.ParseInt(exp["N"].(string), 10, 64)
					if !has || err != nil {
						t.Fatalf("journal record %s: expiresAt %v", sk, exp)
					}
					if lo, hi := before.Add(tt.want).Unix(), after.Add(tt.want).Unix(); n < lo || n > hi {
						t.Errorf("journal record %s: expiresAt %d, want within [%d, %d] (now + %v)", sk, n, lo, hi, tt.want)
					}
				default:
					lease++
					if has {
						t.Errorf("item %s has expiresAt %v: only journal records expire", sk, exp)
					}
				}
			}
			if journal != 1 || lease != 1 {
				t.Errorf("transaction puts %d journal records and %d other items, want 1 and 1", journal, lease)
			}
		})
	}
}

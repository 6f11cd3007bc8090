//go:build integration

package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

// The read items against DynamoDB Local: one access per CloudTrail event
// however often it is delivered, a consumer's last read only moving forward,
// a TTL from the read, and the journal's queries never seeing them.
func TestReadsAgainstDynamoDBLocal(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	r := ledger.NewReads(db, "ledger", 24*time.Hour)
	at := time.Unix(1_800_000_000, 0).UTC()
	a := ledger.Access{Secret: "s1", EventID: "ev-1", EventName: "GetSecretValue", At: at.UnixMilli(),
		Principal: "arn:aws:sts::1:assumed-role/r/x", Consumer: "arn:aws:iam::1:role/r", VersionID: "v1", Verdict: "undeclared", AlertPending: true}
	got, wrote, err := r.Record(ctx, a)
	if err != nil || !wrote || got.ExpiresAt != at.Add(24*time.Hour).Unix() {
		t.Fatalf("first Record = %+v, %v, %v", got, wrote, err)
	}
	a.Verdict = "changed on redelivery"
	got, wrote, err = r.Record(ctx, a)
	if err != nil || wrote || got.Verdict != "undeclared" || !got.AlertPending {
		t.Fatalf("redelivered Record = %+v, %v, %v; want the stored item", got, wrote, err)
	}
	if err := r.AlertSent(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _, _ = r.Record(ctx, a); got.AlertPending {
		t.Error("AlertPending still set after AlertSent")
	}
	c := ledger.Consumer{Secret: "s1", Consumer: "arn:aws:iam::1:role/r", Principal: a.Principal, LastRead: at.UnixMilli(), VersionID: "v2", EventID: "ev-2"}
	if ok, err := r.Touch(ctx, c); err != nil || !ok {
		t.Fatalf("Touch = %v, %v", ok, err)
	}
	older := c
	older.LastRead, older.VersionID = at.Add(-time.Hour).UnixMilli(), "v1"
	if ok, err := r.Touch(ctx, older); err != nil || ok {
		t.Fatalf("an older read replaced a newer one: %v, %v", ok, err)
	}
	cs, err := r.Consumers(ctx, "s1")
	if err != nil || len(cs) != 1 || cs[0].VersionID != "v2" {
		t.Fatalf("Consumers = %+v, %v", cs, err)
	}
	as, err := r.Accesses(ctx, "s1")
	if err != nil || len(as) != 1 {
		t.Fatalf("Accesses = %+v, %v", as, err)
	}
	hist, err := ledger.New(db, "ledger", ledger.Options{}).History(ctx, "s1")
	if err != nil || len(hist) != 0 {
		t.Fatalf("the journal sees read items: %+v, %v", hist, err)
	}
}

// capacity adds up the capacity DynamoDB reports for each call.
type capacity struct {
	ledger.ReadsAPI
	write, read float64
	calls       int
}

func (c *capacity) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	in.ReturnConsumedCapacity = ddbtypes.ReturnConsumedCapacityTotal
	out, err := c.ReadsAPI.PutItem(ctx, in, o...)
	c.calls++
	if err == nil && out.ConsumedCapacity != nil {
		c.write += aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
	}
	return out, err
}

func (c *capacity) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	in.ReturnConsumedCapacity = ddbtypes.ReturnConsumedCapacityTotal
	out, err := c.ReadsAPI.Query(ctx, in, o...)
	c.calls++
	if err == nil && out.ConsumedCapacity != nil {
		c.read += aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
	}
	return out, err
}

// TestReadCost measures what the audit's ledger writes per read, as
// DynamoDB reports it (README: ledger cost per 1,000 reads): the access item
// and the consumer item of a read with real-length ARNs and ids, and the
// recent-journal query over a journal of three rotations.
func TestReadCost(t *testing.T) {
	db := startTable(t)
	ctx := context.Background()
	secretARN := "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/payments/db-AbCdEf"
	l := ledger.New(db, "ledger", ledger.Options{LeaseDuration: time.Minute})
	for i := range 3 {
		tok := fmt.Sprintf("%08d-aaaa-4aaa-8aaa-aaaaaaaaaaaa", i)
		lease, err := l.Acquire(ctx, ledger.AcquireRequest{Secret: secretARN, Execution: "arn:aws:states:eu-west-1:111122223333:execution:secretsaga-rotation:" + tok, Token: tok, PreviousVersion: "prev"})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []ledger.State{ledger.Created, ledger.SetStarted, ledger.SetDone, ledger.Tested, ledger.FinishStarted, ledger.FinishDone} {
			if err := l.Append(ctx, &lease, ledger.Record{State: st, Token: tok}, ledger.Change{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Append(ctx, &lease, ledger.Record{State: ledger.Finished, Token: tok}, ledger.Change{Release: true}); err != nil {
			t.Fatal(err)
		}
	}
	c := &capacity{ReadsAPI: db}
	r := ledger.NewReads(c, "ledger", 400*24*time.Hour)
	const n = 200
	start := time.Unix(1_800_000_000, 0)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		ev := fmt.Sprintf("%08d-1b2c-4d5e-8f90-123456789abc", i)
		if _, err := r.RecentJournal(ctx, secretARN, 32); err != nil {
			t.Fatal(err)
		}
		a := ledger.Access{Secret: secretARN, EventID: ev, EventName: "GetSecretValue", At: at.UnixMilli(),
			Principal: "arn:aws:sts::111122223333:assumed-role/payments-api-task-role/4f1c2b3a9d8e4f7a", Consumer: "arn:aws:iam::111122223333:role/payments-api-task-role",
			VersionID: "00000002-aaaa-4aaa-8aaa-aaaaaaaaaaaa", VersionStage: "AWSCURRENT", VersionSource: "journal", Verdict: "declared"}
		if _, _, err := r.Record(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Touch(ctx, ledger.Consumer{Secret: secretARN, Consumer: a.Consumer, Principal: a.Principal, LastRead: a.At, VersionID: a.VersionID, EventID: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if c.write == 0 {
		t.Skip("DynamoDB Local reported no consumed capacity")
	}
	t.Logf("per 1,000 reads: %.0f write units, %.0f read units (eventually consistent journal query), %d calls", c.write*1000/n, c.read*1000/n, c.calls*1000/n)
}

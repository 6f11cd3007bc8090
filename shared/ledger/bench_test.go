package ledger

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
)

func benchRecord() Record {
	return Record{PK: "SECRET#arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf", SK: "J#000000000042#0007",
		Secret: "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf", Fencing: 42, Seq: 7, State: SetDone,
		At: 1764000000000, Actor: "setsecret", Execution: "arn:aws:states:us-east-1:000000000000:execution:rotation:x",
		Token: "6f1c2e0a-1b2c-4d5e-8f90-123456789abc", PreviousVersion: "0a1b2c3d-1b2c-4d5e-8f90-123456789abc"}
}

func BenchmarkEncodeRecord(b *testing.B) {
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := attributevalue.MarshalMap(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	item, err := attributevalue.MarshalMap(benchRecord())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecord(item); err != nil {
			b.Fatal(err)
		}
	}
}

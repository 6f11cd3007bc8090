package ledger

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func lease() Lease {
	return Lease{PK: "SECRET#arn:s", SK: leaseSK, Secret: "arn:s", Fencing: 3, Seq: 2, Holder: "arn:x", State: Created, Token: "t"}
}

func TestDecodeLease(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Lease)
		ok   bool
	}{
		{"valid", func(*Lease) {}, true},
		{"zero fencing", func(l *Lease) { l.Fencing = 0 }, false},
		{"zero seq", func(l *Lease) { l.Seq = 0 }, false},
		{"wrong sk", func(l *Lease) { l.SK = "J#1" }, false},
		{"secret mismatch", func(l *Lease) { l.Secret = "arn:other" }, false},
		{"no state", func(l *Lease) { l.State = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lease()
			tt.mod(&l)
			item, err := attributevalue.MarshalMap(l)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeLease(item)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			var de *DecodeError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("error type %T", err)
			}
			if tt.ok && got != l {
				t.Fatalf("round trip: %+v != %+v", got, l)
			}
		})
	}
	if _, err := DecodeLease(map[string]types.AttributeValue{"fencing": &types.AttributeValueMemberS{Value: "x"}}); err == nil {
		t.Fatal("a string fencing decoded")
	}
}

func TestRecordKeyOrder(t *testing.T) {
	// Rotations sort by fencing, records by seq, as strings.
	if !(journalSK(9, 2) < journalSK(10, 1) && journalSK(10, 9) < journalSK(10, 10)) {
		t.Fatal("journal keys do not sort by (fencing, seq)")
	}
}

// FuzzDecode feeds the decoders items built from arbitrary attribute values:
// they must never panic, and whatever they accept must satisfy the checks
// the rest of the code relies on.
func FuzzDecode(f *testing.F) {
	f.Add("SECRET#a", "LEASE", "a", "3", "2", "CREATED", true)
	f.Add("SECRET#a", "J#000000000003#0002", "a", "3", "2", "SET_STARTED", false)
	f.Add("x", "", "", "-1", "1e400", "", true)
	f.Fuzz(func(t *testing.T, pk, sk, secret, fencing, seq, state string, numeric bool) {
		item := map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk},
			"secret": &types.AttributeValueMemberS{Value: secret}, "state": &types.AttributeValueMemberS{Value: state},
		}
		if numeric {
			item["fencing"] = &types.AttributeValueMemberN{Value: fencing}
			item["seq"] = &types.AttributeValueMemberN{Value: seq}
		} else {
			item["fencing"] = &types.AttributeValueMemberS{Value: fencing}
			item["seq"] = &types.AttributeValueMemberB{Value: []byte(seq)}
		}
		if l, err := DecodeLease(item); err == nil {
			if l.Fencing < 1 || l.Seq < 1 || "SECRET#"+l.Secret != l.PK || l.State == "" {
				t.Fatalf("accepted an invalid lease: %+v", l)
			}
		}
		if r, err := DecodeRecord(item); err == nil {
			if r.SK != journalSK(r.Fencing, r.Seq) || r.State == "" {
				t.Fatalf("accepted an invalid record: %+v", r)
			}
		}
	})
}

package ledger

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DecodeError says an item in the table is not one the ledger wrote.
type DecodeError struct{ Reason string }

func (e *DecodeError) Error() string { return "ledger item: " + e.Reason }

// DecodeLease parses a lease item, checking the invariants the rest of the
// code relies on (so a hand-edited or corrupt item is an error, not a panic
// or a silently wrong lease).
func DecodeLease(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	if err := attributevalue.UnmarshalMap(item, &l); err != nil {
		return Lease{}, &DecodeError{Reason: "lease does not decode: " + err.Error()}
	}
	switch {
	case !strings.HasPrefix(l.PK, "SECRET#") || l.SK != leaseSK:
		return Lease{}, &DecodeError{Reason: "not a lease item (pk/sk)"}
	case l.Fencing < 1:
		return Lease{}, &DecodeError{Reason: fmt.Sprintf("lease fencing %d is not positive", l.Fencing)}
	case l.Seq < 1:
		return Lease{}, &DecodeError{Reason: fmt.Sprintf("lease seq %d is not positive", l.Seq)}
	case l.Secret == "" || "SECRET#"+l.Secret != l.PK:
		return Lease{}, &DecodeError{Reason: "lease secret does not match its key"}
	case l.State == "":
		return Lease{}, &DecodeError{Reason: "lease has no state"}
	}
	return l, nil
}

// DecodeRecord parses a journal item.
func DecodeRecord(item map[string]types.AttributeValue) (Record, error) {
	var r Record
	if err := attributevalue.UnmarshalMap(item, &r); err != nil {
		return Record{}, &DecodeError{Reason: "journal record does not decode: " + err.Error()}
	}
	switch {
	case !strings.HasPrefix(r.PK, "SECRET#") || !strings.HasPrefix(r.SK, "J#"):
		return Record{}, &DecodeError{Reason: "not a journal item (pk/sk)"}
	case r.SK != journalSK(r.Fencing, r.Seq):
		return Record{}, &DecodeError{Reason: "journal key does not match its fencing and seq"}
	case r.State == "":
		return Record{}, &DecodeError{Reason: "journal record has no state"}
	}
	return r, nil
}

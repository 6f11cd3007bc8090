package ledger

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Clone records a database user that secretsaga created as the
// alternating-users strategy's other user (<user>_clone, or <user> when the
// secret started on a user whose name ends in _clone). It is written in
// the same transaction as the write-ahead SET_STARTED, before the target is
// touched, and never removed: it is how a later rotation tells a user
// secretsaga created from one that someone else did (DESIGN.md invariant 6:
// no rotation changes a login that secretsaga was neither given nor
// created).
type Clone struct {
	PK string `dynamodbav:"pk"` // "CLONE#" + the created user's Login.Key()
	SK string `dynamodbav:"sk"`
	// Login is the created user (Login.String()); CloneOf the user it was
	// created like, on the same server.
	Login   string `dynamodbav:"login"`
	CloneOf string `dynamodbav:"cloneOf"`
	// Secret and Execution are the rotation that created it.
	Secret    string `dynamodbav:"secret"`
	Execution string `dynamodbav:"executionArn"`
	At        int64  `dynamodbav:"at"`
}

const cloneSK = "CLONE"

func clonePK(login Login) string { return "CLONE#" + login.Key() }

// NewClone is the record of user created like cloneOf on login's server.
func NewClone(login Login, cloneOf string) *Clone {
	return &Clone{PK: clonePK(login), SK: cloneSK, Login: login.String(), CloneOf: cloneOf}
}

// Clone reads the record of login, if secretsaga created it.
func (l *Ledger) Clone(ctx context.Context, login Login) (Clone, bool, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &l.table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: clonePK(login)},
			"sk": &types.AttributeValueMemberS{Value: cloneSK},
		},
	})
	if err != nil {
		return Clone{}, false, fmt.Errorf("read clone record: %w", err)
	}
	if out.Item == nil {
		return Clone{}, false, nil
	}
	var c Clone
	if err := attributevalue.UnmarshalMap(out.Item, &c); err != nil {
		return Clone{}, false, &DecodeError{Reason: "clone record does not decode: " + err.Error()}
	}
	return c, true, nil
}

// clonePut is the write of ch.Clone in an Append of lease.
func (l *Ledger) clonePut(lease Lease, c *Clone) ([]types.TransactWriteItem, error) {
	if c == nil {
		return nil, nil
	}
	rec := *c
	rec.SK = cloneSK
	rec.Secret, rec.Execution, rec.At = lease.Secret, lease.Holder, l.now().UnixMilli()
	item, err := attributevalue.MarshalMap(rec)
	if err != nil {
		return nil, err
	}
	// Unconditional: a retried write-ahead writes the same record again.
	return []types.TransactWriteItem{{Put: &types.Put{TableName: &l.table, Item: item}}}, nil
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// fakeDB is an in-memory table with the DynamoDB semantics the ledger
// relies on: strongly consistent GetItem, all-or-nothing
// TransactWriteItems whose condition expressions (the few the ledger
// writes: `a = :v`, `attribute_not_exists(a)`, joined by AND, alternatives
// joined by OR) are checked
// against the items before any write, and Query by partition key and sort
// key prefix in sort key order.
type fakeDB struct {
	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue // pk \x00 sk → item
	// beforeWrite, if set, runs once before the next TransactWriteItems:
	// a concurrent writer between the ledger's read and its write.
	beforeWrite func()
	writes      int
	fail        error // every call fails with it
	failWrite   error // every TransactWriteItems fails with it
	attempts    int   // TransactWriteItems calls
	gets        int   // GetItem calls
}

func newFakeDB() *fakeDB { return &fakeDB{items: map[string]map[string]types.AttributeValue{}} }

func key(item map[string]types.AttributeValue) string {
	return item["pk"].(*types.AttributeValueMemberS).Value + "\x00" + item["sk"].(*types.AttributeValueMemberS).Value
}

func (f *fakeDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.gets++
	if !aws.ToBool(in.ConsistentRead) {
		return nil, errors.New("fake: the ledger must read its lease consistently")
	}
	return &dynamodb.GetItemOutput{Item: f.items[key(in.Key)]}, nil
}

// holds evaluates cond against item (nil: no such item): clauses joined
// by AND, or alternatives of those joined by OR (no parentheses).
func holds(cond string, values map[string]types.AttributeValue, item map[string]types.AttributeValue) bool {
	for _, alt := range strings.Split(cond, " OR ") {
		if holdsAll(alt, values, item) {
			return true
		}
	}
	return false
}

func holdsAll(cond string, values map[string]types.AttributeValue, item map[string]types.AttributeValue) bool {
	for _, clause := range strings.Split(cond, " AND ") {
		clause = strings.TrimSpace(clause)
		if name, ok := strings.CutPrefix(clause, "attribute_not_exists("); ok {
			if _, exists := item[strings.TrimSuffix(name, ")")]; exists {
				return false
			}
			continue
		}
		name, placeholder, ok := strings.Cut(clause, " = ")
		if !ok {
			panic("fake: condition not understood: " + clause)
		}
		v, exists := item[name]
		if !exists || !reflect.DeepEqual(v, values[placeholder]) {
			return false
		}
	}
	return true
}

func (f *fakeDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.mu.Lock()
	hook := f.beforeWrite
	f.beforeWrite = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		return nil, f.fail
	}
	if f.failWrite != nil {
		return nil, f.failWrite
	}
	reasons := make([]types.CancellationReason, len(in.TransactItems))
	cancelled := false
	seen := map[string]bool{}
	for i, ti := range in.TransactItems {
		var k string
		var cond *string
		var values map[string]types.AttributeValue
		switch {
		case ti.Put != nil:
			k, cond, values = key(ti.Put.Item), ti.Put.ConditionExpression, ti.Put.ExpressionAttributeValues
		case ti.ConditionCheck != nil:
			k, cond, values = key(ti.ConditionCheck.Key), ti.ConditionCheck.ConditionExpression, ti.ConditionCheck.ExpressionAttributeValues
		default:
			return nil, errors.New("fake: only Put and ConditionCheck are supported")
		}
		if seen[k] {
			// As DynamoDB: one transaction may not name an item twice.
			return nil, errors.New("fake: ValidationException: transaction request cannot include multiple operations on one item")
		}
		seen[k] = true
		reasons[i].Code = aws.String("None")
		if cond != nil && !holds(*cond, values, f.items[k]) {
			reasons[i].Code, cancelled = aws.String("ConditionalCheckFailed"), true
		}
	}
	if cancelled {
		return nil, &types.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: reasons}
	}
	for _, ti := range in.TransactItems {
		if ti.Put != nil {
			f.items[key(ti.Put.Item)] = ti.Put.Item
		}
	}
	f.writes++
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

func (f *fakeDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	if in.IndexName != nil {
		return f.queryIndex(in)
	}
	if aws.ToString(in.KeyConditionExpression) != "pk = :pk AND begins_with(sk, :j)" {
		return nil, fmt.Errorf("fake: key condition %q not understood", aws.ToString(in.KeyConditionExpression))
	}
	pk := in.ExpressionAttributeValues[":pk"].(*types.AttributeValueMemberS).Value
	prefix := in.ExpressionAttributeValues[":j"].(*types.AttributeValueMemberS).Value
	var keys []string
	for k := range f.items {
		if p, sk, _ := strings.Cut(k, "\x00"); p == pk && strings.HasPrefix(sk, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := &dynamodb.QueryOutput{}
	for _, k := range keys {
		out.Items = append(out.Items, f.items[k])
	}
	return out, nil
}

// queryIndex is a Query of the sparse repair index: the items that have
// the index's key attribute with the value asked for (an item without it
// is not in the index).
func (f *fakeDB) queryIndex(in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
	if aws.ToString(in.IndexName) != RepairIndex || aws.ToString(in.KeyConditionExpression) != RepairQueueAttr+" = :q" {
		return nil, fmt.Errorf("fake: index query %q on %q not understood", aws.ToString(in.KeyConditionExpression), aws.ToString(in.IndexName))
	}
	if aws.ToBool(in.ConsistentRead) {
		return nil, errors.New("fake: a global secondary index has no consistent reads")
	}
	var keys []string
	for k, it := range f.items {
		if reflect.DeepEqual(it[RepairQueueAttr], in.ExpressionAttributeValues[":q"]) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := &dynamodb.QueryOutput{}
	for _, k := range keys {
		out.Items = append(out.Items, f.items[k])
	}
	return out, nil
}

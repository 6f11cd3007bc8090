package faultinject

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

func TestRules(t *testing.T) {
	errX := errors.New("x")
	tests := []struct {
		name       string
		rule       Rule
		wantErr    []bool // per call
		wantEffect []bool
	}{
		{"before first", Rule{Call: "c", Nth: 1, Phase: Before, Err: errX}, []bool{true, false}, []bool{false, true}},
		{"after second", Rule{Call: "c", Nth: 2, Phase: After, Err: errX}, []bool{false, true, false}, []bool{true, true, true}},
		{"other function", Rule{Function: "g", Call: "c", Nth: 1, Err: errX}, []bool{false}, []bool{true}},
		{"every call twice", Rule{Call: "c", Times: 2, Err: errX}, []bool{true, true, false}, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in Injector
			in.Add(tt.rule)
			ctx := WithFunction(context.Background(), "f")
			for i := range tt.wantErr {
				effect := false
				err := in.Do(ctx, "c", func() error { effect = true; return nil })
				if (err != nil) != tt.wantErr[i] || effect != tt.wantEffect[i] {
					t.Fatalf("call %d: err=%v effect=%v", i, err, effect)
				}
				if err != nil && !errors.Is(err, errX) {
					t.Fatalf("injected error does not wrap the rule's: %v", err)
				}
			}
			if got := len(in.Calls()); got != len(tt.wantErr) {
				t.Fatalf("recorded %d calls", got)
			}
		})
	}
}

func TestCrashAndHook(t *testing.T) {
	var in Injector
	hooked := 0
	in.Add(Rule{Call: "c", Nth: 1, Phase: Crash, Hook: func(context.Context) error { hooked++; return nil }})
	in.Add(Rule{Call: "d", Nth: 1, Phase: Before, Hook: func(context.Context) error { hooked++; return nil }})
	ctx := WithFunction(context.Background(), "f")
	effect := false
	func() {
		defer func() {
			c, ok := recover().(CrashError)
			if !ok || c.ErrorType() != "Sandbox.Timedout" || c.Call != "c" {
				t.Errorf("recovered %v, want a CrashError", c)
			}
		}()
		_ = in.Do(ctx, "c", func() error { effect = true; return nil })
		t.Error("Do returned after a crash")
	}()
	if !effect {
		t.Error("a crash must strike after the effect")
	}
	// A hook without an error lets the call proceed.
	if err := in.Do(ctx, "d", func() error { return nil }); err != nil {
		t.Errorf("hook-only rule: %v", err)
	}
	if hooked != 2 || in.Fired() != 2 {
		t.Errorf("hooked %d, fired %d; want 2, 2", hooked, in.Fired())
	}
}

// answer200 is an HTTP client that answers every request with an empty
// JSON object, so an SDK call runs its whole middleware stack offline.
type answer200 struct{}

func (answer200) Do(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

// TestAPIOptionRecordsTransactionItems: the SDK middleware names a call by
// service and operation, attributes it to the context's function or else
// to the client's, records a transaction's item kinds, and observers see
// every call across Resets until stopped.
func TestAPIOptionRecordsTransactionItems(t *testing.T) {
	var in Injector
	var seen []Call
	stop := in.Observe(func(c Call) { seen = append(seen, c) })
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://localhost:1"), HTTPClient: answer200{},
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		APIOptions:  []func(*middleware.Stack) error{in.APIOptionAs("repair")},
	})
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}}
	tx := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String("t"), Item: key}},
		{Update: &types.Update{TableName: aws.String("t"), Key: key, UpdateExpression: aws.String("SET a = :a")}},
		{Delete: &types.Delete{TableName: aws.String("t"), Key: key}},
		{ConditionCheck: &types.ConditionCheck{TableName: aws.String("t"), Key: key, ConditionExpression: aws.String("attribute_exists(pk)")}},
	}}
	if _, err := db.TransactWriteItems(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	in.Reset()
	if _, err := db.GetItem(WithFunction(context.Background(), "f"), &dynamodb.GetItemInput{TableName: aws.String("t"), Key: key}); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("t"), Key: key}); err != nil {
		t.Fatal(err)
	}
	want := []Call{
		{Function: "repair", Name: "DynamoDB.TransactWriteItems", Items: []string{"Put", "Update", "Delete", "ConditionCheck"}},
		{Function: "f", Name: "DynamoDB.GetItem"},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("observed %+v\nwant %+v", seen, want)
	}
	if got := in.Calls(); len(got) != 2 || got[1].Function != "repair" {
		t.Errorf("calls since the Reset %+v, want f's GetItem and one by repair", got)
	}
}

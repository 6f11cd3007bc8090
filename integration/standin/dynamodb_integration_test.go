//go:build integration

package standin_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/secretsaga/secretsaga/integration/standin"
)

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}
}

func startDynamoDB(t *testing.T) *dynamodb.Client {
	t.Helper()
	ctx := context.Background()
	d, err := standin.StartDynamoDB(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("DynamoDB Local at %s ready in %v", d.Endpoint, d.Started)
	client, err := d.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}

	_, err = client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("ledger"),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("ledger")}, 30*time.Second); err != nil {
		t.Fatalf("table not active: %v", err)
	}
	return client
}

func TestDynamoDBLocal(t *testing.T) {
	ctx := context.Background()
	client := startDynamoDB(t)

	t.Run("conditional PutItem", func(t *testing.T) {
		item := key("secret#a", "lease")
		item["fencing"] = &types.AttributeValueMemberN{Value: "7"}
		put := &dynamodb.PutItemInput{
			TableName:           aws.String("ledger"),
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}
		if _, err := client.PutItem(ctx, put); err != nil {
			t.Fatalf("first PutItem: %v", err)
		}
		_, err := client.PutItem(ctx, put)
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			t.Fatalf("second PutItem: got %T %v, want *types.ConditionalCheckFailedException", err, err)
		}
		if ccf.Item != nil {
			t.Errorf("Item without ReturnValuesOnConditionCheckFailure: %v", ccf.Item)
		}

		put.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		_, err = client.PutItem(ctx, put)
		if !errors.As(err, &ccf) {
			t.Fatalf("PutItem ALL_OLD: got %T %v, want *types.ConditionalCheckFailedException", err, err)
		}
		if n, ok := ccf.Item["fencing"].(*types.AttributeValueMemberN); !ok || n.Value != "7" {
			t.Errorf("ConditionalCheckFailedException.Item = %v, want the old item with fencing 7", ccf.Item)
		}
	})

	t.Run("TransactWriteItems cancellation reasons", func(t *testing.T) {
		for _, rv := range []types.ReturnValuesOnConditionCheckFailure{"", types.ReturnValuesOnConditionCheckFailureAllOld} {
			t.Run("ReturnValues="+string(rv), func(t *testing.T) {
				pk := "secret#tx" + string(rv)
				lease := key(pk, "lease")
				lease["fencing"] = &types.AttributeValueMemberN{Value: "3"}
				if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("ledger"), Item: lease}); err != nil {
					t.Fatal(err)
				}
				journal := key(pk, "rotation#1")
				journal["state"] = str("SET")
				_, err := client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
					TransactItems: []types.TransactWriteItem{
						{Put: &types.Put{
							TableName:           aws.String("ledger"),
							Item:                journal,
							ConditionExpression: aws.String("attribute_not_exists(pk)"),
						}},
						{ConditionCheck: &types.ConditionCheck{
							TableName:                           aws.String("ledger"),
							Key:                                 key(pk, "lease"),
							ConditionExpression:                 aws.String("fencing = :mine"),
							ExpressionAttributeValues:           map[string]types.AttributeValue{":mine": &types.AttributeValueMemberN{Value: "2"}},
							ReturnValuesOnConditionCheckFailure: rv,
						}},
						{Update: &types.Update{
							TableName:                 aws.String("ledger"),
							Key:                       key(pk, "audit"),
							UpdateExpression:          aws.String("SET #n = if_not_exists(#n, :zero) + :one"),
							ExpressionAttributeNames:  map[string]string{"#n": "n"},
							ExpressionAttributeValues: map[string]types.AttributeValue{":zero": &types.AttributeValueMemberN{Value: "0"}, ":one": &types.AttributeValueMemberN{Value: "1"}},
						}},
					},
				})
				var tce *types.TransactionCanceledException
				if !errors.As(err, &tce) {
					t.Fatalf("got %T %v, want *types.TransactionCanceledException", err, err)
				}
				want := []string{"None", "ConditionalCheckFailed", "None"}
				if len(tce.CancellationReasons) != len(want) {
					t.Fatalf("CancellationReasons = %+v, want %d", tce.CancellationReasons, len(want))
				}
				for i, r := range tce.CancellationReasons {
					if aws.ToString(r.Code) != want[i] {
						t.Errorf("reason[%d].Code = %q, want %q (message %q)", i, aws.ToString(r.Code), want[i], aws.ToString(r.Message))
					}
				}
				item := tce.CancellationReasons[1].Item
				if rv == types.ReturnValuesOnConditionCheckFailureAllOld {
					var got struct {
						Pk      string `dynamodbav:"pk"`
						Fencing int    `dynamodbav:"fencing"`
					}
					if err := attributevalue.UnmarshalMap(item, &got); err != nil || got.Pk != pk || got.Fencing != 3 {
						t.Errorf("reason[1].Item = %v (%+v, %v), want the lease with fencing 3", item, got, err)
					}
				} else if item != nil {
					t.Errorf("reason[1].Item without ReturnValuesOnConditionCheckFailure: %v", item)
				}
				t.Logf("message: %s", tce.ErrorMessage())

				// Nothing of the cancelled transaction was written.
				for _, sk := range []string{"rotation#1", "audit"} {
					out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("ledger"), Key: key(pk, sk), ConsistentRead: aws.Bool(true)})
					if err != nil {
						t.Fatal(err)
					}
					if out.Item != nil {
						t.Errorf("%s written by a cancelled transaction: %v", sk, out.Item)
					}
				}
			})
		}
	})

	t.Run("UpdateItem if_not_exists counter ALL_NEW", func(t *testing.T) {
		for want := 1; want <= 3; want++ {
			out, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                 aws.String("ledger"),
				Key:                       key("secret#c", "lease"),
				UpdateExpression:          aws.String("SET fencing = if_not_exists(fencing, :zero) + :one"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":zero": &types.AttributeValueMemberN{Value: "0"}, ":one": &types.AttributeValueMemberN{Value: "1"}},
				ReturnValues:              types.ReturnValueAllNew,
			})
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Pk, Sk  string
				Fencing int `dynamodbav:"fencing"`
			}
			if err := attributevalue.UnmarshalMap(out.Attributes, &got); err != nil {
				t.Fatal(err)
			}
			if got.Fencing != want || got.Pk != "secret#c" || got.Sk != "lease" {
				t.Fatalf("ALL_NEW attributes = %+v, want fencing %d", got, want)
			}
		}
	})
}

// make bench's long run raises DynamoDB Local's CPU priority for every
// thread of the JVM (nice runs before it starts one); the tests' runs
// leave it at the default. Only root may raise a priority.
func TestDynamoDBLocalPriority(t *testing.T) {
	for _, tt := range []struct {
		name    string
		longRun string
		want    int
	}{
		{"tests: default priority", "", 0},
		{"make bench's long run: raised", "1", -10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want < 0 && os.Geteuid() != 0 {
				t.Skip("raising a priority needs root")
			}
			t.Setenv(standin.EnvDynamoDBLongRun, tt.longRun)
			d, err := standin.StartDynamoDB(context.Background(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, err := d.Nice()
			if err != nil || got != tt.want {
				t.Fatalf("Nice() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

package main

import (
	"reflect"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/infra/rotation"
)

func TestPropsFromContext(t *testing.T) {
	t.Setenv("CDK_DEFAULT_ACCOUNT", "")
	for _, tc := range []struct {
		name    string
		context map[string]any
		want    rotation.RotationProps
		stack   string
		wantErr bool
	}{
		{name: "empty", stack: "SecretSaga"},
		{
			name: "strings, as given with -c",
			context: map[string]any{
				"stackName":             "Payments",
				"rotationGroup":         "payments",
				"alarmEmail":            "ops@example.com",
				"secretKmsKeyArns":      "arn:aws:kms:eu-west-1:111122223333:key/a, arn:aws:kms:eu-west-1:111122223333:key/b",
				"schedules":             `[{"name":"orders","secretId":"orders/db","expression":"rate(30 days)"}]`,
				"verify":                "true",
				"reservedConcurrency":   "0",
				"fleetEnabled":          "false",
				"nativeRotationEnabled": "false",
				"bakeAlarmNames":        "api-5xx, api-latency",
				"repairSchedule":        "rate(5 minutes)",
				"repairBackoff":         "30m",
				"repairMaxBackoff":      "12h",
				"repairAlertAfter":      "72h",
				"ledgerRetentionDays":   "30",
			},
			stack: "Payments",
			want: rotation.RotationProps{
				RotationGroup:              "payments",
				AlarmEmail:                 "ops@example.com",
				SecretKmsKeyArns:           []string{"arn:aws:kms:eu-west-1:111122223333:key/a", "arn:aws:kms:eu-west-1:111122223333:key/b"},
				Schedules:                  []rotation.ScheduleProps{{Name: "orders", SecretId: "orders/db", Expression: "rate(30 days)"}},
				VerifyEnabled:              true,
				DisableReservedConcurrency: true,
				FleetEnabled:               jsii.Bool(false),
				NativeRotationEnabled:      jsii.Bool(false),
				BakeAlarmNames:             []string{"api-5xx", "api-latency"},
				Repair:                     rotation.RepairProps{Schedule: "rate(5 minutes)", Backoff: "30m", MaxBackoff: "12h", AlertAfter: "72h"},
				LedgerRetentionDays:        intPtr(30),
			},
		},
		{
			name: "JSON values, as in cdk.json",
			context: map[string]any{
				"secretKmsKeyArns": []any{"arn:aws:kms:eu-west-1:111122223333:key/a"},
				"schedules":        []any{map[string]any{"name": "orders", "secretArn": "arn:x", "expression": "rate(7 days)", "verify": true}},
				"verify":           false,
				"bakeAlarmNames":   []any{"api-5xx"},
			},
			stack: "SecretSaga",
			want: rotation.RotationProps{
				SecretKmsKeyArns: []string{"arn:aws:kms:eu-west-1:111122223333:key/a"},
				Schedules:        []rotation.ScheduleProps{{Name: "orders", SecretArn: "arn:x", Expression: "rate(7 days)", Verify: jsii.Bool(true)}},
				BakeAlarmNames:   []string{"api-5xx"},
			},
		},
		{
			name: "VPC ids, as given with -c",
			context: map[string]any{
				"vpcId":               "vpc-0123456789abcdef0",
				"vpcSubnetIds":        "subnet-0123456789abcdef0, subnet-0fedcba9876543210",
				"vpcSecurityGroupIds": "sg-0a1b2c3d4e5f60718",
			},
			stack: "SecretSaga",
			want: rotation.RotationProps{
				VpcId:               "vpc-0123456789abcdef0",
				VpcSubnetIds:        []string{"subnet-0123456789abcdef0", "subnet-0fedcba9876543210"},
				VpcSecurityGroupIds: []string{"sg-0a1b2c3d4e5f60718"},
			},
		},
		{
			name: "VPC ids, JSON lists as in cdk.json",
			context: map[string]any{
				"vpcId":        "vpc-0123456789abcdef0",
				"vpcSubnetIds": []any{"subnet-0123456789abcdef0"},
			},
			stack: "SecretSaga",
			want: rotation.RotationProps{
				VpcId:        "vpc-0123456789abcdef0",
				VpcSubnetIds: []string{"subnet-0123456789abcdef0"},
			},
		},
		{name: "vpcId without subnets", context: map[string]any{"vpcId": "vpc-0123456789abcdef0"}, wantErr: true},
		{name: "subnets without vpcId", context: map[string]any{"vpcSubnetIds": "subnet-0123456789abcdef0"}, wantErr: true},
		{name: "a name as vpcId", context: map[string]any{"vpcId": "prod", "vpcSubnetIds": "subnet-0123456789abcdef0"}, wantErr: true},
		{name: "vpcSecurityGroupIds not a list of strings", context: map[string]any{"vpcId": "vpc-0123456789abcdef0", "vpcSubnetIds": "subnet-0123456789abcdef0", "vpcSecurityGroupIds": `[1]`}, wantErr: true},
		{name: "misspelt schedule field", context: map[string]any{"schedules": `[{"name":"x","secret":"y","expression":"rate(1 day)"}]`}, wantErr: true},
		{name: "bakeAlarmNames not a list of strings", context: map[string]any{"bakeAlarmNames": `[1]`}, wantErr: true},
		{name: "bad verify", context: map[string]any{"verify": "sometimes"}, wantErr: true},
		{name: "bad fleetEnabled", context: map[string]any{"fleetEnabled": "maybe"}, wantErr: true},
		{name: "bad repairBackoff", context: map[string]any{"repairBackoff": "an hour"}, wantErr: true},
		{name: "negative repairAlertAfter", context: map[string]any{"repairAlertAfter": "-1h"}, wantErr: true},
		{name: "bad nativeRotationEnabled", context: map[string]any{"nativeRotationEnabled": "perhaps"}, wantErr: true},
		{name: "negative ledgerRetentionDays", context: map[string]any{"ledgerRetentionDays": "-1"}, wantErr: true},
		{name: "ledgerRetentionDays not a number", context: map[string]any{"ledgerRetentionDays": "a year"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := map[string]any{}
			for k, v := range tc.context {
				ctx[k] = v
			}
			app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx})
			p, stack, err := propsFromContext(app)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stack != tc.stack {
				t.Errorf("stack %q, want %q", stack, tc.stack)
			}
			if !reflect.DeepEqual(p.Rotation, tc.want) {
				t.Errorf("props\n got %+v\nwant %+v", p.Rotation, tc.want)
			}
		})
	}
}

func intPtr(n int) *int { return &n }

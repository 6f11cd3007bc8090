package rotation_test

import (
	"slices"
	"strings"
	"testing"
)

// TestOperationalAlarms: Errors and Throttles of every function
// (nativerotation's included), DynamoDB throttling of the ledger's
// operations and the dead-letter queue each raise an alarm (Sum, or the
// queue's Maximum, over 5 minutes ≥ 1) whose action is the alert topic,
// which CloudWatch may publish to for this account's alarms only.
func TestOperationalAlarms(t *testing.T) {
	for name, s := range map[string]*synthesized{"defaults": defaults(t), "without the fleet": noFleet(t)} {
		t.Run(name, func(t *testing.T) {
			d := s.doc
			topicID, _ := d.one(t, "AWS::SNS::Topic")
			tableID, _ := d.one(t, "AWS::DynamoDB::Table")
			queueID, _ := d.one(t, "AWS::SQS::Queue")
			fnName := map[string]string{} // logical id → handler
			for n, id := range d.functions(t) {
				fnName[id] = n
			}
			seen := map[string]bool{}
			for id, r := range d.ofType("AWS::CloudWatch::Alarm") {
				p := r.Properties
				if p["Namespace"] == "AWS/States" {
					continue // checkAlerts
				}
				if p["Threshold"] != 1.0 || p["EvaluationPeriods"] != 1.0 || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" ||
					p["TreatMissingData"] != "notBreaching" {
					t.Errorf("alarm %s: %s", id, jsonString(p))
				}
				if jsonString(p["AlarmActions"]) != jsonString([]any{map[string]any{"Ref": topicID}}) {
					t.Errorf("alarm %s actions %s", id, jsonString(p["AlarmActions"]))
				}
				switch p["Namespace"] {
				case "AWS/Lambda":
					dims := list(p["Dimensions"])
					fn := ""
					if len(dims) == 1 {
						fn = fnName[ref(dims[0].(map[string]any)["Value"])]
					}
					if fn == "" || p["Statistic"] != "Sum" || p["Period"] != 300.0 {
						t.Errorf("alarm %s: %s", id, jsonString(p))
					}
					seen[fn+" "+p["MetricName"].(string)] = true
					if p["MetricName"] == "Invocations" && !strings.Contains(jsonString(p["AlarmDescription"]), "fleet failed") {
						t.Errorf("alarm %s on Invocations: %s", id, jsonString(p))
					}
				case "AWS/SQS":
					if p["MetricName"] != "ApproximateNumberOfMessagesVisible" || !strings.Contains(jsonString(p["Dimensions"]), queueID) {
						t.Errorf("alarm %s: %s", id, jsonString(p))
					}
					seen["dead letters"] = true
				case nil: // a metric math expression: the ledger's throttles
					j := jsonString(p["Metrics"])
					for _, op := range []string{"GetItem", "Query", "TransactWriteItems"} {
						if !strings.Contains(j, `"Value":"`+op+`"`) {
							t.Errorf("alarm %s: no ThrottledRequests for %s: %s", id, op, j)
						}
					}
					if !strings.Contains(j, `"MetricName":"ThrottledRequests"`) || !strings.Contains(j, tableID) {
						t.Errorf("alarm %s: %s", id, j)
					}
					seen["ledger throttles"] = true
				default:
					t.Errorf("alarm %s: namespace %v", id, p["Namespace"])
				}
			}
			want := []string{"dead letters", "ledger throttles"}
			for _, n := range fnName {
				want = append(want, n+" Errors", n+" Throttles")
			}
			// A failed fleet child: fleetreport's invocations.
			if _, fleet := d.functions(t)["fleetreport"]; fleet {
				want = append(want, "fleetreport Invocations")
			}
			var got []string
			for k := range seen {
				got = append(got, k)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("alarms on\n %v\nwant\n %v", got, want)
			}
			if !seen[nativeFunction+" Errors"] && name == "defaults" {
				t.Error("no alarm on nativerotation's errors")
			}

			// CloudWatch may publish, for this account's alarms only.
			_, policy := d.one(t, "AWS::SNS::TopicPolicy")
			cw := 0
			for _, st := range list(policy.Properties["PolicyDocument"].(map[string]any)["Statement"]) {
				j := jsonString(st)
				if !strings.Contains(j, "cloudwatch.amazonaws.com") {
					continue
				}
				cw++
				if !strings.Contains(j, `"aws:SourceAccount"`) || !strings.Contains(j, `":alarm:*"`) || !strings.Contains(j, `"sns:Publish"`) {
					t.Errorf("topic policy statement for CloudWatch %s", j)
				}
			}
			if cw != 1 {
				t.Errorf("%d topic policy statements for CloudWatch, want 1", cw)
			}
		})
	}
}

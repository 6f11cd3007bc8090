package rotation_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/infra/rotation"
)

// TestOperationalAlarms: the alarms page only on what needs a person or
// points at a defect. Per function: Throttles, and Errors, which for the
// functions that return the error taxonomy is a metric math expression,
// Lambda Errors minus the function's log lines of an expected error (a
// metric filter on its own log group for the Retryable, Conflict, Input and
// TestFailed errorTypes, not CompensationFailedError), so a rollback pages
// no one; the fleet's functions count every error. Also DynamoDB
// throttling of the ledger's operations, the dead-letter queue, and the
// rotation machine's executions that failed outside its Fail states
// (ExecutionFailed minus FailStateEntered in its log). No alarm on failed
// fleet children (their Fleet Rotation Failed event reaches the topic).
// Each is ≥ 1 over 5 minutes (Sum, or the queue's Maximum) whose action is
// the alert topic, which CloudWatch may publish to for this account's
// alarms only.
func TestOperationalAlarms(t *testing.T) {
	for name, s := range map[string]*synthesized{"defaults": defaults(t), "without the fleet": noFleet(t)} {
		t.Run(name, func(t *testing.T) {
			d := s.doc
			topicID, _ := d.one(t, "AWS::SNS::Topic")
			tableID, _ := d.one(t, "AWS::DynamoDB::Table")
			queueID, _ := d.one(t, "AWS::SQS::Queue")
			fns := d.functions(t)
			fnName := map[string]string{} // logical id → handler
			for n, id := range fns {
				fnName[id] = n
			}
			taxonomy := map[string]bool{}
			for _, h := range rotation.Handlers {
				taxonomy[h.Name] = h.Ledger || h.Native
			}
			// The metric filters, by metric name: their log group and pattern.
			filters := map[string]resource{}
			for _, r := range d.ofType("AWS::Logs::MetricFilter") {
				mt := list(r.Properties["MetricTransformations"])
				if len(mt) != 1 {
					t.Fatalf("metric filter %s", jsonString(r.Properties))
				}
				m := mt[0].(map[string]any)
				if m["MetricNamespace"] != "secretsaga/default" || m["MetricValue"] != "1" {
					t.Errorf("metric filter %s", jsonString(r.Properties))
				}
				filters[m["MetricName"].(string)] = r
			}
			// The rotation machine's log group: its destination's ARN.
			cfg := d.Resources[d.machines(t)["rotation"]].Properties["LoggingConfiguration"].(map[string]any)
			rotationLogs := jsonString(list(cfg["Destinations"])[0].(map[string]any)["CloudWatchLogsLogGroup"].(map[string]any)["LogGroupArn"])
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
					if p["MetricName"] == "Errors" && taxonomy[fn] {
						t.Errorf("alarm %s: every Errors of %s, whose rollbacks are errors by design", id, fn)
					}
					seen[fn+" "+p["MetricName"].(string)] = true
				case "AWS/SQS":
					if p["MetricName"] != "ApproximateNumberOfMessagesVisible" || !strings.Contains(jsonString(p["Dimensions"]), queueID) {
						t.Errorf("alarm %s: %s", id, jsonString(p))
					}
					seen["dead letters"] = true
				case nil: // metric math
					metrics := list(p["Metrics"])
					byID := map[string]map[string]any{}
					expr := ""
					for _, m := range metrics {
						m := m.(map[string]any)
						byID[m["Id"].(string)] = m
						if e, ok := m["Expression"].(string); ok && m["ReturnData"] != false {
							expr = e
						}
					}
					stat := func(mid string) (ns, name, dims string) {
						ms, _ := byID[mid]["MetricStat"].(map[string]any)
						if ms == nil || ms["Stat"] != "Sum" || ms["Period"] != 300.0 {
							t.Errorf("alarm %s: metric %s: %s", id, mid, jsonString(byID[mid]))
							return "", "", ""
						}
						mm := ms["Metric"].(map[string]any)
						ns, _ = mm["Namespace"].(string)
						name, _ = mm["MetricName"].(string)
						return ns, name, jsonString(mm["Dimensions"])
					}
					switch expr {
					case "FILL(errors, 0) - FILL(expected, 0)":
						ns, name, dims := stat("errors")
						fn := ""
						for n, fid := range fns {
							if strings.Contains(dims, `"Ref":"`+fid+`"`) {
								fn = n
							}
						}
						if ns != "AWS/Lambda" || name != "Errors" || fn == "" || !taxonomy[fn] {
							t.Errorf("alarm %s: errors %s %s %s", id, ns, name, dims)
							continue
						}
						ens, ename, _ := stat("expected")
						f, ok := filters[ename]
						if ens != "secretsaga/default" || !ok {
							t.Errorf("alarm %s: expected errors %s %s: no such metric filter", id, ens, ename)
							continue
						}
						// The filter reads the function's own log group.
						fnLogs := jsonString(d.Resources[fns[fn]].Properties["LoggingConfig"].(map[string]any)["LogGroup"])
						if jsonString(f.Properties["LogGroupName"]) != fnLogs {
							t.Errorf("%s's expected-errors filter reads %s, not its log group %s", fn, jsonString(f.Properties["LogGroupName"]), fnLogs)
						}
						pat := f.Properties["FilterPattern"].(string)
						for _, e := range []string{"RetryableError", "ConflictError", "InputError", "TestFailedError"} {
							if !strings.Contains(pat, `$.errorType = "`+e+`"`) {
								t.Errorf("%s's expected-errors pattern %s leaves out %s", fn, pat, e)
							}
						}
						if strings.Contains(pat, "CompensationFailed") || strings.Count(pat, "$.errorType") != 4 || strings.Count(pat, "||") != 3 {
							t.Errorf("%s's expected-errors pattern %s", fn, pat)
						}
						seen[fn+" Errors"] = true
					case "FILL(failed, 0) - FILL(failStates, 0)":
						for mid, want := range map[string]string{"failed": `{ $.type = "ExecutionFailed" }`, "failStates": `{ $.type = "FailStateEntered" }`} {
							_, name, _ := stat(mid)
							f, ok := filters[name]
							if !ok || f.Properties["FilterPattern"] != want {
								t.Errorf("alarm %s: %s counts %s: %s", id, mid, name, jsonString(f.Properties))
								continue
							}
							if lg := ref(f.Properties["LogGroupName"]); lg == "" || !strings.Contains(rotationLogs, `"`+lg+`"`) {
								t.Errorf("alarm %s: %s reads %s, not the rotation machine's log group %s", id, mid, jsonString(f.Properties["LogGroupName"]), rotationLogs)
							}
						}
						seen["rotation executions failed outside a Fail state"] = true
					default: // the ledger's throttles
						j := jsonString(metrics)
						for _, op := range []string{"GetItem", "Query", "TransactWriteItems"} {
							if !strings.Contains(j, `"Value":"`+op+`"`) {
								t.Errorf("alarm %s: no ThrottledRequests for %s: %s", id, op, j)
							}
						}
						if !strings.Contains(j, `"MetricName":"ThrottledRequests"`) || !strings.Contains(j, tableID) {
							t.Errorf("alarm %s: %s", id, j)
						}
						seen["ledger throttles"] = true
					}
				default:
					t.Errorf("alarm %s: namespace %v", id, p["Namespace"])
				}
			}
			want := []string{"dead letters", "ledger throttles", "rotation executions failed outside a Fail state"}
			for n := range fns {
				want = append(want, n+" Errors", n+" Throttles")
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

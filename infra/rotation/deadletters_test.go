package rotation_test

import (
	"strings"
	"testing"
)

// TestScheduleDeadLetters: every schedule (the repair's and the configured
// rotations') has a retry policy and sends what it could not deliver to one
// dead-letter queue, encrypted at rest and TLS only, which each schedule's
// role may send to (sqs:SendMessage on that queue, nothing more).
func TestScheduleDeadLetters(t *testing.T) {
	for name, s := range map[string]*synthesized{"defaults": defaults(t), "configured": configured(t)} {
		t.Run(name, func(t *testing.T) {
			d := s.doc
			qID, q := d.one(t, "AWS::SQS::Queue")
			if q.Properties["SqsManagedSseEnabled"] != true || q.Properties["MessageRetentionPeriod"] != 1209600.0 {
				t.Errorf("queue %s", jsonString(q.Properties))
			}
			_, qp := d.one(t, "AWS::SQS::QueuePolicy")
			if p := jsonString(qp.Properties); !strings.Contains(p, `"aws:SecureTransport":"false"`) || !strings.Contains(p, `"Effect":"Deny"`) || !strings.Contains(p, qID) {
				t.Errorf("queue policy %s, want TLS enforced on %s", p, qID)
			}
			queueArn := jsonString([]any{map[string]any{"Fn::GetAtt": []any{qID, "Arn"}}})
			schedules := d.ofType("AWS::Scheduler::Schedule")
			if want := map[string]int{"defaults": 1, "configured": 3}[name]; len(schedules) != want {
				t.Fatalf("%d schedules, want %d", len(schedules), want)
			}
			for id, r := range schedules {
				tg := r.Properties["Target"].(map[string]any)
				if jsonString(tg["DeadLetterConfig"]) != jsonString(map[string]any{"Arn": map[string]any{"Fn::GetAtt": []any{qID, "Arn"}}}) {
					t.Errorf("schedule %s: DeadLetterConfig %s", id, jsonString(tg["DeadLetterConfig"]))
				}
				rp, _ := tg["RetryPolicy"].(map[string]any)
				if rp["MaximumRetryAttempts"] == nil || rp["MaximumEventAgeInSeconds"] == nil {
					t.Errorf("schedule %s: RetryPolicy %s", id, jsonString(rp))
				}
				send := 0
				for _, st := range d.statements(t, ref(tg["RoleArn"])) {
					for _, a := range st.actions() {
						if strings.HasPrefix(a, "sqs:") {
							send++
							if a != "sqs:SendMessage" || jsonString(st.resources()) != queueArn {
								t.Errorf("schedule %s role: %s on %s", id, a, jsonString(st.resources()))
							}
						}
					}
				}
				if send != 1 {
					t.Errorf("schedule %s role: %d sqs actions, want sqs:SendMessage", id, send)
				}
			}
		})
	}
}

package access

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
)

// event builds an EventBridge envelope around a CloudTrail record in the
// emulator's (and AWS's) shape; edit changes the record first.
func event(edit func(rec map[string]any)) []byte {
	rec := map[string]any{
		"eventVersion": "1.08", "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue",
		"eventTime": "2026-12-03T01:02:03Z", "eventID": "6b1b1b1b-0000-4000-8000-000000000001", "awsRegion": "us-east-1",
		"readOnly": true, "eventType": "AwsApiCall", "responseElements": nil,
		"userIdentity": map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/app-reader/i-123",
			"accountId": "111122223333", "accessKeyId": "ASIAEXAMPLE",
			"sessionContext": map[string]any{"sessionIssuer": map[string]any{"type": "Role", "arn": "arn:aws:iam::111122223333:role/app-reader"}}},
		"requestParameters": map[string]any{"secretId": "app/db"},
	}
	if edit != nil {
		edit(rec)
	}
	raw, _ := json.Marshal(map[string]any{"version": "0", "id": "e", "detail-type": "AWS API Call via CloudTrail",
		"source": "aws.secretsmanager", "account": "111122223333", "time": "2026-12-03T01:02:03Z", "region": "us-east-1",
		"resources": []string{}, "detail": rec})
	return raw
}

func TestParse(t *testing.T) {
	params := func(p map[string]any) func(map[string]any) {
		return func(r map[string]any) { r["requestParameters"] = p }
	}
	for _, c := range []struct {
		name    string
		raw     []byte
		ignored string // substring of the reason; "" = accepted
		check   func(Call) bool
	}{
		{"read of AWSCURRENT by a role session", event(nil), "", func(c Call) bool {
			return c.Read() && c.Consumer == "arn:aws:iam::111122223333:role/app-reader" && c.SecretIDs[0] == "app/db" && !c.Denied() && c.Time.Hour() == 1
		}},
		{"session without sessionContext: the role from the ARN", event(func(r map[string]any) {
			r["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s"}
		}), "", func(c Call) bool { return c.Consumer == "arn:aws:iam::1:role/r" }},
		{"IAM user is its own consumer", event(func(r map[string]any) {
			r["userIdentity"] = map[string]any{"type": "IAMUser", "arn": "arn:aws:iam::1:user/bob"}
		}), "", func(c Call) bool { return c.Consumer == "arn:aws:iam::1:user/bob" }},
		{"named version", event(params(map[string]any{"secretId": "s", "versionId": "v1"})), "", func(c Call) bool { return c.VersionID == "v1" }},
		{"denied", event(func(r map[string]any) { r["errorCode"] = "AccessDenied" }), "", func(c Call) bool { return c.Denied() }},
		{"batch read names its secrets", event(func(r map[string]any) {
			r["eventName"] = "BatchGetSecretValue"
			r["requestParameters"] = map[string]any{"secretIdList": []string{"a", "", "b"}}
		}), "", func(c Call) bool { return c.Read() && len(c.SecretIDs) == 2 }},
		{"finish moves AWSCURRENT", event(func(r map[string]any) {
			r["eventName"] = "UpdateSecretVersionStage"
			r["requestParameters"] = map[string]any{"secretId": "s", "versionStage": "AWSCURRENT", "moveToVersionId": "v2", "removeFromVersionId": "v1"}
		}), "", func(c Call) bool { return c.MovesCurrent() && !c.Read() }},
		{"AWSPENDING put does not move AWSCURRENT", event(func(r map[string]any) {
			r["eventName"] = "PutSecretValue"
			r["requestParameters"] = map[string]any{"secretId": "s", "versionStages": []string{"AWSPENDING"}}
		}), "", func(c Call) bool { return !c.MovesCurrent() }},
		{"put without stages moves AWSCURRENT", event(func(r map[string]any) {
			r["eventName"] = "PutSecretValue"
		}), "", func(c Call) bool { return c.MovesCurrent() }},
		{"failed finish moves nothing", event(func(r map[string]any) {
			r["eventName"] = "UpdateSecretVersionStage"
			r["errorCode"] = "InvalidParameterException"
			r["requestParameters"] = map[string]any{"secretId": "s", "versionStage": "AWSCURRENT", "moveToVersionId": "v2"}
		}), "", func(c Call) bool { return !c.MovesCurrent() }},
		{"not JSON", []byte("{"), "not a JSON object", nil},
		{"empty", nil, "not a JSON object", nil},
		{"JSON array", []byte("[]"), "not a JSON object", nil},
		{"foreign source", []byte(`{"source":"aws.s3","detail-type":"AWS API Call via CloudTrail","detail":{}}`), "foreign event", nil},
		{"product's own event", []byte(`{"source":"secretsaga","detail-type":"Rotation Succeeded","detail":{}}`), "foreign event", nil},
		{"detail not an object", []byte(`{"source":"aws.secretsmanager","detail-type":"AWS API Call via CloudTrail","detail":"x"}`), "not a CloudTrail record", nil},
		{"foreign eventSource", event(func(r map[string]any) { r["eventSource"] = "kms.amazonaws.com" }), "foreign eventSource", nil},
		{"no eventID", event(func(r map[string]any) { delete(r, "eventID") }), "no eventID", nil},
		{"bad time", event(func(r map[string]any) { r["eventTime"] = "yesterday" }), "RFC 3339", nil},
		{"no caller", event(func(r map[string]any) { r["userIdentity"] = map[string]any{"type": "AWSService"} }), "names no caller", nil},
		{"secretId of the wrong type", event(params(map[string]any{"secretId": 7})), "not a CloudTrail record", nil},
		{"too large", []byte(`{"x":"` + strings.Repeat("a", maxEvent) + `"}`), "larger than", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.raw)
			if c.ignored != "" {
				var in *faults.InputError
				if !errors.As(err, &in) || !strings.Contains(err.Error(), c.ignored) {
					t.Fatalf("err = %v, want an InputError saying %q", err, c.ignored)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(got) {
				t.Errorf("call = %+v", got)
			}
		})
	}
}

// Whatever arrives, Parse returns a call or an InputError, never panics,
// and an accepted call has what the audit relies on.
func FuzzParse(f *testing.F) {
	f.Add(event(nil))
	f.Add(event(func(r map[string]any) { r["errorCode"] = "AccessDenied" }))
	f.Add([]byte(`{"source":"aws.secretsmanager","detail-type":"AWS API Call via CloudTrail","detail":{"eventSource":"secretsmanager.amazonaws.com"}}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Parse(raw)
		if err != nil {
			var in *faults.InputError
			if !errors.As(err, &in) {
				t.Fatalf("error %v is not an InputError", err)
			}
			return
		}
		if c.EventID == "" || c.EventName == "" || c.Principal == "" || c.Consumer == "" || c.Time.IsZero() {
			t.Fatalf("accepted an incomplete call: %+v", c)
		}
	})
}

func TestReaders(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/app-reader"
	session := "arn:aws:sts::111122223333:assumed-role/app-reader/i-1"
	for _, c := range []struct {
		tag  string
		want bool
	}{
		{"app-reader", true},
		{"other, app-reader", true},
		{"app-*", true},
		{"app", false},
		{"arn:aws:iam::*:role/app-*", true},
		{"arn:aws:iam::999:role/app-reader", false},
		{"arn:aws:sts::111122223333:assumed-role/app-reader/*", true},
		{"", false},
		{"*", true},
	} {
		if got := ParseReaders(c.tag).Match(session, role); got != c.want {
			t.Errorf("readers %q: Match = %v, want %v", c.tag, got, c.want)
		}
	}
	if !wildcard("a*b*c", "axxbyyc") || wildcard("a*b", "ac") || !wildcard("??", "ab") || wildcard("?", "") {
		t.Error("wildcard")
	}
}

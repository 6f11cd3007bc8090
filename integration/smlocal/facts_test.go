package smlocal

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// rawCall posts one awsJson1.1 request without the SDK (which would fill
// ClientRequestToken and drop absent members) and decodes the answer.
func rawCall(t *testing.T, url, op, body string) (int, map[string]any) {
	t.Helper()
	code, _, m := rawRequest(t, url, "secretsmanager."+op, body)
	return code, m
}

// rawRequest is rawCall with the X-Amz-Target header as given (none when
// empty) and the response headers.
func rawRequest(t *testing.T, url, target, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: response is not JSON: %q", target, raw)
	}
	return resp.StatusCode, resp.Header, m
}

// Facts recorded from AWS (issue 12) that the SDK-level tests cannot see:
// which members a response has at all.
func TestRecordedResponseShapes(t *testing.T) {
	t.Parallel()
	s := newServer(Options{})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	if code, m := rawCall(t, srv.URL, "CreateSecret", `{"Name":"shape","SecretString":"v","ClientRequestToken":"`+tokA+`"}`); code != 200 {
		t.Fatalf("create: %v", m)
	}
	_, m := rawCall(t, srv.URL, "DescribeSecret", `{"SecretId":"shape"}`)
	// Recorded: "DescribeSecret of a secret whose rotation was never
	// configured has no RotationEnabled field at all".
	if _, ok := m["RotationEnabled"]; ok {
		t.Errorf("DescribeSecret has RotationEnabled before rotation was configured: %v", m)
	}
	// Recorded: "DescribeSecret returns Tags: [] when a secret has none".
	if tags, ok := m["Tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("Tags = %#v, want []", m["Tags"])
	}
	for _, absent := range []string{"RotationLambdaARN", "RotationRules", "LastRotatedDate", "NextRotationDate"} {
		if _, ok := m[absent]; ok {
			t.Errorf("DescribeSecret has %s before rotation was configured", absent)
		}
	}
	if code, m := rawCall(t, srv.URL, "CancelRotateSecret", `{"SecretId":"shape"}`); code != 200 {
		t.Fatalf("cancel: %v", m)
	}
	if _, m := rawCall(t, srv.URL, "DescribeSecret", `{"SecretId":"shape"}`); m["RotationEnabled"] != false {
		t.Errorf("after CancelRotateSecret RotationEnabled = %#v, want false", m["RotationEnabled"])
	}
}

// Recorded: a raw request (no SDK to fill the idempotency token) without
// ClientRequestToken that would create a version is refused with
// InvalidRequestException "You must provide a ClientRequestToken value. We
// recommend a UUID-type value." (also verified against AWS for
// RotateSecret by LocalStack's AWS-validated tests, localstack#8308).
func TestRawRequestWithoutToken(t *testing.T) {
	t.Parallel()
	s := newServer(Options{LambdaEndpoint: "http://127.0.0.1:1"})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	if code, m := rawCall(t, srv.URL, "CreateSecret", `{"Name":"tok","SecretString":"v","ClientRequestToken":"`+tokA+`"}`); code != 200 {
		t.Fatalf("create: %v", m)
	}
	for _, tc := range []struct {
		op, body string
		wantOK   bool
	}{
		{"CreateSecret", `{"Name":"new","SecretString":"v"}`, false},
		{"CreateSecret", `{"Name":"novalue"}`, true}, // no version is created
		{"UpdateSecret", `{"SecretId":"tok","SecretString":"v2"}`, false},
		{"UpdateSecret", `{"SecretId":"tok","Description":"metadata only"}`, true},
		{"PutSecretValue", `{"SecretId":"tok","SecretString":"v2"}`, false},
		{"RotateSecret", `{"SecretId":"tok","RotationLambdaARN":"` + fnARN + `"}`, false},
	} {
		code, m := rawCall(t, srv.URL, tc.op, tc.body)
		if tc.wantOK {
			if code != 200 {
				t.Errorf("%s %s: %d %v", tc.op, tc.body, code, m)
			}
			continue
		}
		if code != 400 || m["__type"] != "InvalidRequestException" || m["message"] != "You must provide a ClientRequestToken value. We recommend a UUID-type value." {
			t.Errorf("%s %s: %d %v", tc.op, tc.body, code, m)
		}
	}
	if got := stagesOfServer(s, "tok"); len(got) != 1 {
		t.Fatalf("refused requests created versions: %v", got)
	}
	if _, ok := s.secrets["new"]; ok {
		t.Fatal("refused CreateSecret created the secret")
	}
}

func stagesOfServer(s *Server, name string) map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.secrets[name].stageMap()
}

// Recorded: "An invalid secret name, on every operation: ValidationException
// "Invalid name. Must be a valid name containing alphanumeric characters,
// or any of the following: -/_+=.@!"".
func TestInvalidNameEveryOperation(t *testing.T) {
	t.Parallel()
	s := newServer(Options{LambdaEndpoint: "http://127.0.0.1:1"})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	const bad = `"bad name"`
	tok := `"ClientRequestToken":"` + tokA + `"`
	for op, body := range map[string]string{
		"CreateSecret":             `{"Name":` + bad + `,"SecretString":"v",` + tok + `}`,
		"DescribeSecret":           `{"SecretId":` + bad + `}`,
		"GetSecretValue":           `{"SecretId":` + bad + `}`,
		"PutSecretValue":           `{"SecretId":` + bad + `,"SecretString":"v",` + tok + `}`,
		"UpdateSecret":             `{"SecretId":` + bad + `,"Description":"d"}`,
		"UpdateSecretVersionStage": `{"SecretId":` + bad + `,"VersionStage":"X","MoveToVersionId":"` + tokA + `"}`,
		"ListSecretVersionIds":     `{"SecretId":` + bad + `}`,
		"TagResource":              `{"SecretId":` + bad + `,"Tags":[]}`,
		"UntagResource":            `{"SecretId":` + bad + `,"TagKeys":[]}`,
		"DeleteSecret":             `{"SecretId":` + bad + `,"ForceDeleteWithoutRecovery":true}`,
		"RestoreSecret":            `{"SecretId":` + bad + `}`,
		"RotateSecret":             `{"SecretId":` + bad + `,` + tok + `,"RotationLambdaARN":"` + fnARN + `"}`,
		"CancelRotateSecret":       `{"SecretId":` + bad + `}`,
	} {
		code, m := rawCall(t, srv.URL, op, body)
		if code != 400 || m["__type"] != "ValidationException" || m["message"] != "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!" {
			t.Errorf("%s: %d %v", op, code, m)
		}
	}
}

func TestRecordedBehaviour(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 5, 6, 17, 45, 12, 0, time.UTC)
	_, c := start(t, Options{Now: func() time.Time { return clock }})

	t.Run("PutSecretValue without VersionStages drops AWSPENDING from the old current", func(t *testing.T) {
		t.Parallel()
		// Recorded: the old version is left with ["AWSPREVIOUS"] only when
		// the AWSCURRENT version also carried AWSPENDING.
		createSecret(t, c, "put-stages")
		if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("put-stages"), VersionStage: aws.String("AWSPENDING"), MoveToVersionId: aws.String(tokA)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("put-stages"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)}); err != nil {
			t.Fatal(err)
		}
		got := describe(t, c, "put-stages").VersionIdsToStages
		if !slices.Equal(got[tokA], []string{"AWSPREVIOUS"}) || !slices.Equal(got[tokB], []string{"AWSCURRENT"}) {
			t.Fatalf("stages = %v", got)
		}
	})

	t.Run("tags of a secret scheduled for deletion", func(t *testing.T) {
		t.Parallel()
		// Recorded: InvalidRequestException ("...marked for deletion").
		createSecret(t, c, "tag-deleted")
		if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("tag-deleted")}); err != nil {
			t.Fatal(err)
		}
		_, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tag-deleted"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
		if code(err) != "InvalidRequestException" || !strings.Contains(err.Error(), "marked for deletion") {
			t.Fatalf("TagResource = %v", err)
		}
		_, err = c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("tag-deleted"), TagKeys: []string{"k"}})
		if code(err) != "InvalidRequestException" {
			t.Fatalf("UntagResource = %v", err)
		}
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("tag-deleted")})
		if err != nil || len(d.Tags) != 0 {
			t.Fatalf("tags after refused TagResource = %v, %v", d, err)
		}
	})

	t.Run("forced delete of a secret that does not exist", func(t *testing.T) {
		t.Parallel()
		// Recorded: 200 with Name, ARN and DeletionDate.
		for _, id := range []string{"never-was", "arn:aws:secretsmanager:us-east-1:000000000000:secret:never-was-AbCdEf"} {
			out, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(id), ForceDeleteWithoutRecovery: aws.Bool(true)})
			if err != nil || !strings.HasPrefix(aws.ToString(out.Name), "never-was") || !strings.Contains(aws.ToString(out.ARN), ":secret:never-was") || !aws.ToTime(out.DeletionDate).Equal(clock) {
				t.Fatalf("DeleteSecret(%s) = %+v, %v", id, out, err)
			}
		}
		// With a recovery window, a missing secret is still not found.
		_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("never-was")})
		checkErr(t, err, kindNotFound)
	})

	t.Run("description filter matches any word", func(t *testing.T) {
		t.Parallel()
		// Recorded: the description filter matches word by word; the
		// reference: "description: Prefix match, not case-sensitive."
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("desc/one"), Description: aws.String("Payments database master")}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			value string
			want  bool
		}{{"Payments", true}, {"datab", true}, {"MASTER", true}, {"base", false}, {"!datab", false}, {"!ledger", true}} {
			l, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{
				{Key: types.FilterNameStringTypeName, Values: []string{"desc/"}},
				{Key: types.FilterNameStringTypeDescription, Values: []string{tc.value}}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(l.SecretList) == 1; got != tc.want {
				t.Errorf("description %q matched = %v, want %v", tc.value, got, tc.want)
			}
		}
	})

	t.Run("ListSecretVersionIds KmsKeyIds and LastAccessedDate", func(t *testing.T) {
		t.Parallel()
		// Recorded: KmsKeyIds ["DefaultEncryptionKey"] without a customer
		// key, and LastAccessedDate on versions that were read, which AWS
		// rounds to the day.
		createSecret(t, c, "kms")
		if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("kms"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("kms")}); err != nil {
			t.Fatal(err)
		}
		l, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("kms")})
		if err != nil {
			t.Fatal(err)
		}
		day := time.Date(2030, 5, 6, 0, 0, 0, 0, time.UTC)
		for _, v := range l.Versions {
			if !slices.Equal(v.KmsKeyIds, []string{"DefaultEncryptionKey"}) {
				t.Errorf("%s: KmsKeyIds = %v", *v.VersionId, v.KmsKeyIds)
			}
			read := *v.VersionId == tokB
			if (v.LastAccessedDate != nil) != read || (read && !v.LastAccessedDate.Equal(day)) {
				t.Errorf("%s: LastAccessedDate = %v", *v.VersionId, v.LastAccessedDate)
			}
		}
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("kms-cmk"), KmsKeyId: aws.String("alias/mine"), SecretString: aws.String("v"), ClientRequestToken: aws.String(tokA)}); err != nil {
			t.Fatal(err)
		}
		l, err = c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("kms-cmk")})
		if err != nil || !slices.Equal(l.Versions[0].KmsKeyIds, []string{"alias/mine"}) {
			t.Fatalf("customer key: %+v, %v", l, err)
		}
	})
}

// The empty version RotateSecret creates is what the rotation function's
// createSecret fills: PutSecretValue with the event's ClientRequestToken
// (AWS's template: put_secret_value(SecretId=arn, ClientRequestToken=token,
// SecretString=..., VersionStages=['AWSPENDING'])). Idempotency then holds
// for the filled version: "If a version with this value already exists and
// that version's SecretString and SecretBinary values are the same as those
// in the request, then the request is ignored"; a different value is
// ResourceExistsException.
func TestPutFillsEmptyVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fn := &templateFunction{failAt: "createSecret"} // leaves the version empty
	s, c := rotationStack(t, fn, Options{})
	createSecret(t, c, "fill")
	if _, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("fill"), ClientRequestToken: aws.String(tokR), RotationLambdaARN: aws.String(fnARN)}); err != nil {
		t.Fatal(err)
	}
	s.WaitRotations()
	put := func(val string) (*secretsmanager.PutSecretValueOutput, error) {
		return c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("fill"), ClientRequestToken: aws.String(tokR), SecretString: aws.String(val), VersionStages: []string{"AWSPENDING"}})
	}
	out, err := put("new")
	if err != nil || *out.VersionId != tokR || !slices.Equal(out.VersionStages, []string{"AWSPENDING"}) {
		t.Fatalf("fill = %+v, %v", out, err)
	}
	g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fill"), VersionId: aws.String(tokR), VersionStage: aws.String("AWSPENDING")})
	if err != nil || *g.SecretString != "new" {
		t.Fatalf("read filled version = %+v, %v", g, err)
	}
	if _, err := put("new"); err != nil {
		t.Fatalf("retried fill: %v", err)
	}
	_, err = put("other")
	checkErr(t, err, kindExists)
	if got := describe(t, c, "fill").VersionIdsToStages; !slices.Equal(got[tokA], []string{"AWSCURRENT"}) || !slices.Equal(got[tokR], []string{"AWSPENDING"}) {
		t.Fatalf("stages = %v", got)
	}
}

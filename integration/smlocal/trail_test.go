package smlocal

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

type trailSink struct {
	mu   sync.Mutex
	recs []Record
	raw  []string
}

func (t *trailSink) add(r TrailRecord) {
	var rec Record
	if err := json.Unmarshal(r.Detail, &rec); err != nil {
		panic(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recs = append(t.recs, rec)
	t.raw = append(t.raw, string(r.Detail))
}

func (t *trailSink) last(op string) (Record, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.recs) - 1; i >= 0; i-- {
		if t.recs[i].EventName == op {
			return t.recs[i], t.raw[i]
		}
	}
	return Record{}, ""
}

// clientAs is an SDK client signing with access key id key.
func clientAs(url, key string) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(key, "secret-key", "")},
		func(o *secretsmanager.Options) { o.BaseEndpoint = &url })
}

const (
	readerRole = "arn:aws:iam::111122223333:role/app-reader"
	adminUser  = "arn:aws:iam::111122223333:user/admin"
	value      = `{"password":"TrailValue-DoNotLeak-1"}`
)

// The record of each call, field by field (trail.go names each field's
// source in the CloudTrail user guide).
func TestTrailRecords(t *testing.T) {
	sink := &trailSink{}
	s, url, err := Start(Options{Region: "eu-west-1", AccountID: "111122223333", Trail: sink.add,
		Principals: map[string]string{"AKIDREADER": readerRole, "AKIDADMIN": adminUser}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	admin, reader, stranger := clientAs(url, "AKIDADMIN"), clientAs(url, "AKIDREADER"), clientAs(url, "AKIDOTHER")
	created, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String(value), ClientRequestToken: aws.String(tokA)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSCURRENT")}); err != nil {
		t.Fatal(err)
	}
	rec, raw := sink.last("GetSecretValue")
	checks := []struct {
		name      string
		got, want any
	}{
		{"eventVersion", rec.EventVersion, "1.08"},
		{"eventSource", rec.EventSource, "secretsmanager.amazonaws.com"},
		{"awsRegion", rec.AWSRegion, "eu-west-1"},
		{"eventType", rec.EventType, "AwsApiCall"},
		{"readOnly", rec.ReadOnly, true},
		{"userIdentity.type", rec.UserIdentity.Type, "AssumedRole"},
		{"userIdentity.arn", rec.UserIdentity.ARN, "arn:aws:sts::111122223333:assumed-role/app-reader/AKIDREADER"},
		{"userIdentity.accountId", rec.UserIdentity.AccountID, "111122223333"},
		{"userIdentity.accessKeyId", rec.UserIdentity.AccessKeyID, "AKIDREADER"},
		{"sessionIssuer.arn", rec.UserIdentity.SessionContext.SessionIssuer.ARN, readerRole},
		{"principalId", strings.HasPrefix(rec.UserIdentity.PrincipalID, "AROA") && strings.HasSuffix(rec.UserIdentity.PrincipalID, ":AKIDREADER"), true},
		{"requestParameters.secretId", rec.RequestParameters["secretId"], "app/db"},
		{"requestParameters.versionStage", rec.RequestParameters["versionStage"], "AWSCURRENT"},
		{"responseElements", rec.ResponseElements == nil, true},
		{"errorCode", rec.ErrorCode, ""},
		{"eventID", len(rec.EventID), 36},
		{"requestID", len(rec.RequestID), 36},
		{"recipientAccountId", rec.RecipientAccountID, "111122223333"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(raw, `"responseElements":null`) {
		t.Errorf("responseElements of a read is not null: %s", raw)
	}

	// A write names the secret in its response elements, never the value.
	if _, err := admin.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: created.ARN, SecretString: aws.String(value), ClientRequestToken: aws.String(tokB)}); err != nil {
		t.Fatal(err)
	}
	rec, _ = sink.last("PutSecretValue")
	if rec.ReadOnly || rec.ResponseElements["arn"] != *created.ARN || rec.UserIdentity.Type != "IAMUser" || rec.UserIdentity.UserName != "admin" ||
		rec.RequestParameters["clientRequestToken"] != tokB {
		t.Errorf("PutSecretValue record = %+v", rec)
	}
	// An unknown key is the default principal.
	if _, err := stranger.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")}); err != nil {
		t.Fatal(err)
	}
	if rec, _ = sink.last("DescribeSecret"); rec.UserIdentity.ARN != "arn:aws:iam::111122223333:user/smlocal-default" {
		t.Errorf("unknown key's principal = %s", rec.UserIdentity.ARN)
	}
	// A failed call carries errorCode and errorMessage.
	_, err = reader.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v", err)
	}
	if rec, _ = sink.last("GetSecretValue"); rec.ErrorCode != "ResourceNotFoundException" || rec.ErrorMessage == "" {
		t.Errorf("failed call's record = %+v", rec)
	}
	pw, err := admin.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{})
	if err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, r := range sink.raw {
		if strings.Contains(r, "TrailValue-DoNotLeak") || strings.Contains(r, *pw.RandomPassword) || strings.Contains(r, "secretString") {
			t.Errorf("a record holds a secret value: %s", r)
		}
	}
}

// A resource policy's explicit Deny refuses the named principal (and every
// session of a named role) with AccessDeniedException, and CloudTrail records
// the denied call with errorCode AccessDenied; other principals still read.
func TestResourcePolicyDeny(t *testing.T) {
	sink := &trailSink{}
	s, url, err := Start(Options{AccountID: "111122223333", Trail: sink.add,
		Principals: map[string]string{"AKIDREADER": readerRole, "AKIDADMIN": adminUser}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	admin, reader := clientAs(url, "AKIDADMIN"), clientAs(url, "AKIDREADER")
	if _, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("denied"), SecretString: aws.String(value), ClientRequestToken: aws.String(tokA)}); err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"` + readerRole + `"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
	if _, err := admin.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("denied"), ResourcePolicy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	got, err := admin.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String("denied")})
	if err != nil || aws.ToString(got.ResourcePolicy) != policy {
		t.Fatalf("GetResourcePolicy = %v, %v", got, err)
	}
	_, err = reader.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("denied")})
	if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") || !strings.Contains(err.Error(), "with an explicit deny in a resource-based policy") {
		t.Fatalf("denied read: err = %v", err)
	}
	rec, _ := sink.last("GetSecretValue")
	if rec.ErrorCode != "AccessDenied" || !strings.Contains(rec.ErrorMessage, "assumed-role/app-reader/AKIDREADER") || rec.ResponseElements != nil {
		t.Errorf("denied record = %+v", rec)
	}
	// Not denied: another principal, another action of the denied one.
	if _, err := admin.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("denied")}); err != nil {
		t.Errorf("admin read: %v", err)
	}
	if _, err := reader.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("denied")}); err != nil {
		t.Errorf("reader describe: %v", err)
	}
	if _, err := admin.DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String("denied")}); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("denied")}); err != nil {
		t.Errorf("read after DeleteResourcePolicy: %v", err)
	}
	_, err = admin.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("denied"), ResourcePolicy: aws.String("not json")})
	var mal *types.MalformedPolicyDocumentException
	if !errors.As(err, &mal) {
		t.Errorf("malformed policy: err = %v", err)
	}
}

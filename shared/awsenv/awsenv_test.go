package awsenv

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	base := map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TOK"}
	cfg, err := FromEnv(env(base))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || cfg.Region != "eu-west-1" || creds.AccessKeyID != "AKID" || creds.SecretAccessKey != "SK" || creds.SessionToken != "TOK" {
		t.Fatalf("region %q, credentials %v, %v", cfg.Region, creds.AccessKeyID, err)
	}
	for name, tt := range map[string]struct {
		unset string
		want  error
	}{
		"no region": {"AWS_REGION", ErrNoRegion},
		"no key":    {"AWS_ACCESS_KEY_ID", ErrNoCredentials},
		"no secret": {"AWS_SECRET_ACCESS_KEY", ErrNoCredentials},
	} {
		m := map[string]string{}
		for k, v := range base {
			if k != tt.unset {
				m[k] = v
			}
		}
		if _, err := FromEnv(env(m)); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
	m := map[string]string{"AWS_DEFAULT_REGION": "us-west-2", "AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"}
	if cfg, err := FromEnv(env(m)); err != nil || cfg.Region != "us-west-2" {
		t.Errorf("AWS_DEFAULT_REGION: %q, %v", cfg.Region, err)
	}
}

// A client goes to the endpoint its AWS_ENDPOINT_URL_<SERVICE> names, as
// with the SDK's default configuration (the local stack relies on it),
// and not when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true.
func TestServiceEndpoints(t *testing.T) {
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits[r.Header.Get("X-Amz-Target")]++
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	if got := ServiceVariable("Secrets Manager"); got != "AWS_ENDPOINT_URL_SECRETS_MANAGER" {
		t.Errorf("ServiceVariable = %s", got)
	}
	m := map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL, "AWS_ENDPOINT_URL_DYNAMODB": srv.URL}
	cfg, err := FromEnv(env(m))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	ctx := context.Background()
	if _, err := secretsmanager.NewFromConfig(cfg).GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true }).
		GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}}}); err != nil {
		t.Fatal(err)
	}
	if hits["secretsmanager.GetRandomPassword"] != 1 || hits["DynamoDB_20120810.GetItem"] != 1 {
		t.Fatalf("requests %v", hits)
	}
	m["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
	cfg, _ = FromEnv(env(m))
	if src, ok := cfg.ConfigSources[0].(endpoints); !ok {
		t.Fatal("no endpoint source")
	} else if u, found, _ := src.GetServiceBaseEndpoint(ctx, "Secrets Manager"); found || u != "" {
		t.Errorf("ignored endpoints still resolve: %q", u)
	}
}

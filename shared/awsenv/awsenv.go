// Package awsenv builds the AWS SDK configuration a Lambda function runs
// with from its environment alone: the region (AWS_REGION, which Lambda
// sets, or AWS_DEFAULT_REGION), the credentials Lambda puts in
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and the
// endpoint overrides AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL (the
// local stack runs the built functions with them) unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true: what the SDK's default
// configuration reads from these variables, with the SDK's names.
//
// Why not config.LoadDefaultConfig: its credential chain (shared files and
// profiles, SSO, STS web identity and assume-role, the console login, ECS
// and EC2 metadata) links the STS, SSO, SSO OIDC and sign-in clients and
// the IMDS client, about 1.7 MB of every bootstrap (README "Binary
// sizes"), and in Lambda the chain stops at its first link anyway, the
// environment. The functions run nowhere else; the demo and the tests use
// shared/config with a configuration of their own.
package awsenv

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/logging"

	"github.com/secretsaga/secretsaga/shared/tracing"
)

// ErrNoCredentials: the environment holds no access key (it is not a
// Lambda function's).
var ErrNoCredentials = errors.New("awsenv: no AWS credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")

// ErrNoRegion: the environment names no region.
var ErrNoRegion = errors.New("awsenv: no region in the environment (AWS_REGION or AWS_DEFAULT_REGION)")

// Load returns the configuration the environment describes, after
// setting up the function's tracing (shared/tracing: X-Ray when Lambda's
// active tracing is on), which every function does here, once, at init.
func Load(_ context.Context) (aws.Config, error) {
	if err := tracing.Setup(os.Getenv, os.Getenv("AWS_LAMBDA_FUNCTION_NAME")); err != nil {
		return aws.Config{}, err
	}
	return FromEnv(os.Getenv)
}

// FromEnv is Load's configuration, reading the variables through getenv;
// its clients trace each call (tracing.AWS).
func FromEnv(getenv func(string) string) (aws.Config, error) {
	region := first(getenv, "AWS_REGION", "AWS_DEFAULT_REGION")
	if region == "" {
		return aws.Config{}, ErrNoRegion
	}
	key, secret := first(getenv, "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"), first(getenv, "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY")
	if key == "" || secret == "" {
		return aws.Config{}, ErrNoCredentials
	}
	env := endpoints{getenv: getenv, ignore: strings.EqualFold(strings.TrimSpace(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")), "true")}
	cfg := aws.Config{
		Region: region,
		Credentials: aws.NewCredentialsCache(credentials.StaticCredentialsProvider{Value: aws.Credentials{
			AccessKeyID: key, SecretAccessKey: secret, SessionToken: getenv("AWS_SESSION_TOKEN"),
			AccountID: getenv("AWS_ACCOUNT_ID"), Source: credentials.StaticCredentialsName,
		}}),
		Logger: logging.NewStandardLogger(os.Stderr),
		// Each client asks its sources for its AWS_ENDPOINT_URL_<SERVICE>.
		ConfigSources: []any{env},
	}
	if u := getenv("AWS_ENDPOINT_URL"); u != "" && !env.ignore {
		cfg.BaseEndpoint = aws.String(u)
	}
	tracing.AWS(&cfg)
	return cfg, nil
}

func first(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// endpoints answers a client's question for its service's endpoint
// (GetServiceBaseEndpoint, which the SDK's configuration sources
// implement) from AWS_ENDPOINT_URL_<service id, upper case, spaces as
// underscores>, e.g. AWS_ENDPOINT_URL_SECRETS_MANAGER.
type endpoints struct {
	getenv func(string) string
	ignore bool
}

// ServiceVariable is the variable that overrides the endpoint of the
// service sdkID ("Secrets Manager": AWS_ENDPOINT_URL_SECRETS_MANAGER).
func ServiceVariable(sdkID string) string {
	return "AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(sdkID), " ", "_")
}

// GetServiceBaseEndpoint implements the SDK's service endpoint source.
func (e endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if e.ignore {
		return "", false, nil
	}
	u := e.getenv(ServiceVariable(sdkID))
	return u, u != "", nil
}

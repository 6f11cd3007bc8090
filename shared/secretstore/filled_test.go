package secretstore

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// filledAPI answers GetSecretValue and DescribeSecret for one secret whose
// versions are listed in stages and hold a value when in values.
type filledAPI struct {
	API
	stages map[string][]string
	values map[string]string
	err    error // GetSecretValue's answer, when set
}

func (f *filledAPI) GetSecretValue(_ context.Context, in *sm.GetSecretValueInput, _ ...func(*sm.Options)) (*sm.GetSecretValueOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.values[aws.ToString(in.VersionId)]
	if !ok {
		// AWS's answer for a version without a value, and for none at all.
		return nil, &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret value for VersionId: " + aws.ToString(in.VersionId))}
	}
	return &sm.GetSecretValueOutput{SecretString: &v}, nil
}

func (f *filledAPI) DescribeSecret(context.Context, *sm.DescribeSecretInput, ...func(*sm.Options)) (*sm.DescribeSecretOutput, error) {
	return &sm.DescribeSecretOutput{ARN: aws.String("arn:secret"), VersionIdsToStages: f.stages}, nil
}

func TestFilled(t *testing.T) {
	boom := errors.New("connection reset")
	tests := []struct {
		name    string
		version string
		err     error
		want    bool
		wantErr error
		cite    string
	}{
		{name: "a version with a value", version: "full", want: true},
		{name: "the empty AWSPENDING version RotateSecret made", version: "empty", want: false,
			cite: "During rotation, Secrets Manager creates an AWSPENDING version ID before creating the new secret version. To check if a secret version exists, call GetSecretValue."},
		{name: "no such version", version: "absent", wantErr: ErrNoSuchVersion},
		{name: "GetSecretValue fails otherwise", version: "full", err: boom, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &filledAPI{
				stages: map[string][]string{"full": {Current}, "empty": {Pending}},
				values: map[string]string{"full": "{}"},
				err:    tt.err,
			}
			got, err := New(api).Filled(context.Background(), "app/db", tt.version)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Filled = %v, want %v", got, tt.want)
			}
		})
	}
}

package secretstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// fakeAPI records the requests and answers with canned outputs.
type fakeAPI struct {
	describe *sm.DescribeSecretOutput
	get      *sm.GetSecretValueOutput
	err      error

	gotGet    *sm.GetSecretValueInput
	gotPut    *sm.PutSecretValueInput
	gotUpdate *sm.UpdateSecretVersionStageInput
}

func (f *fakeAPI) DescribeSecret(_ context.Context, in *sm.DescribeSecretInput, _ ...func(*sm.Options)) (*sm.DescribeSecretOutput, error) {
	return f.describe, f.err
}

func (f *fakeAPI) GetSecretValue(_ context.Context, in *sm.GetSecretValueInput, _ ...func(*sm.Options)) (*sm.GetSecretValueOutput, error) {
	f.gotGet = in
	return f.get, f.err
}

func (f *fakeAPI) PutSecretValue(_ context.Context, in *sm.PutSecretValueInput, _ ...func(*sm.Options)) (*sm.PutSecretValueOutput, error) {
	f.gotPut = in
	return &sm.PutSecretValueOutput{}, f.err
}

func (f *fakeAPI) UpdateSecretVersionStage(_ context.Context, in *sm.UpdateSecretVersionStageInput, _ ...func(*sm.Options)) (*sm.UpdateSecretVersionStageOutput, error) {
	f.gotUpdate = in
	return &sm.UpdateSecretVersionStageOutput{}, f.err
}

func (f *fakeAPI) ListSecretVersionIds(_ context.Context, in *sm.ListSecretVersionIdsInput, _ ...func(*sm.Options)) (*sm.ListSecretVersionIdsOutput, error) {
	return &sm.ListSecretVersionIdsOutput{}, f.err
}

func TestDescribe(t *testing.T) {
	deleted := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name        string
		deletedDate *time.Time
		wantDeleted bool
	}{
		// DescribeSecret: "DeletedDate: The date the secret is scheduled
		// for deletion. If it is not scheduled for deletion, this field
		// is omitted."
		{"not scheduled for deletion", nil, false},
		{"scheduled for deletion", &deleted, true},
		{"zero date", &time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{describe: &sm.DescribeSecretOutput{
				ARN: aws.String("arn:s"), Name: aws.String("app/db"), DeletedDate: tt.deletedDate,
				VersionIdsToStages: map[string][]string{"v1": {Current}, "v2": {Pending, "custom"}},
				Tags:               []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
			}}
			d, err := New(api).Describe(context.Background(), "app/db")
			if err != nil {
				t.Fatal(err)
			}
			if d.ARN != "arn:s" || d.Name != "app/db" || d.Deleted != tt.wantDeleted || d.Tags["k"] != "v" {
				t.Fatalf("description = %+v", d)
			}
			if d.VersionWith(Current) != "v1" || d.VersionWith(Pending) != "v2" || d.VersionWith(Previous) != "" {
				t.Fatalf("VersionWith: %q %q %q", d.VersionWith(Current), d.VersionWith(Pending), d.VersionWith(Previous))
			}
			if !d.HasStage("v2", Pending) || d.HasStage("v1", Pending) || d.HasStage("v3", Current) {
				t.Fatal("HasStage")
			}
		})
	}
	if _, err := New(&fakeAPI{err: errors.New("down")}).Describe(context.Background(), "x"); err == nil {
		t.Fatal("Describe hid the API error")
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		name             string
		versionID, stage string
		get              *sm.GetSecretValueOutput
		err              error
		want             string
		wantErr          func(error) bool
	}{
		{"by version", "v1", "", &sm.GetSecretValueOutput{SecretString: aws.String(`{"a":1}`)}, nil, `{"a":1}`, nil},
		{"by stage", "", Current, &sm.GetSecretValueOutput{SecretString: aws.String(`{}`)}, nil, `{}`, nil},
		// GetSecretValue: "ResourceNotFoundException: Secrets Manager
		// can't find the resource that you asked for."
		{"no such version", "v9", "", nil, &types.ResourceNotFoundException{}, "", func(err error) bool { return errors.Is(err, ErrNoSuchVersion) }},
		{"other error", "v1", "", nil, errors.New("down"), "", func(err error) bool { return err != nil && !errors.Is(err, ErrNoSuchVersion) }},
		{"binary secret", "v1", "", &sm.GetSecretValueOutput{SecretBinary: []byte{1}}, nil, "", func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{get: tt.get, err: tt.err}
			got, err := New(api).Value(context.Background(), "app/db", tt.versionID, tt.stage)
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Value = %q, %v", got, err)
			}
			if aws.ToString(api.gotGet.VersionId) != tt.versionID || aws.ToString(api.gotGet.VersionStage) != tt.stage {
				t.Fatalf("asked for version %q stage %q", aws.ToString(api.gotGet.VersionId), aws.ToString(api.gotGet.VersionStage))
			}
			if (tt.versionID == "") != (api.gotGet.VersionId == nil) || (tt.stage == "") != (api.gotGet.VersionStage == nil) {
				t.Fatal("an empty version or stage was sent instead of left out")
			}
		})
	}
}

func TestWrites(t *testing.T) {
	ctx := context.Background()
	api := &fakeAPI{}
	s := New(api)
	if err := s.PutPending(ctx, "app/db", "tok", "{}"); err != nil {
		t.Fatal(err)
	}
	if p := api.gotPut; aws.ToString(p.ClientRequestToken) != "tok" || aws.ToString(p.SecretString) != "{}" || len(p.VersionStages) != 1 || p.VersionStages[0] != Pending {
		t.Fatalf("PutSecretValue %+v", p)
	}
	// UpdateSecretVersionStage: "If the staging label is already attached
	// to a different version of the secret, then you must also specify
	// the RemoveFromVersionId parameter."
	if err := s.MoveStage(ctx, "app/db", Current, "v2", "v1"); err != nil {
		t.Fatal(err)
	}
	if u := api.gotUpdate; aws.ToString(u.VersionStage) != Current || aws.ToString(u.MoveToVersionId) != "v2" || aws.ToString(u.RemoveFromVersionId) != "v1" {
		t.Fatalf("move %+v", u)
	}
	if err := s.MoveStage(ctx, "app/db", Pending, "v2", ""); err != nil {
		t.Fatal(err)
	}
	if u := api.gotUpdate; u.RemoveFromVersionId != nil || aws.ToString(u.MoveToVersionId) != "v2" {
		t.Fatalf("move onto no holder sent RemoveFromVersionId %q", aws.ToString(u.RemoveFromVersionId))
	}
	if err := s.RemoveStage(ctx, "app/db", Pending, "v2"); err != nil {
		t.Fatal(err)
	}
	if u := api.gotUpdate; u.MoveToVersionId != nil || aws.ToString(u.RemoveFromVersionId) != "v2" || aws.ToString(u.VersionStage) != Pending {
		t.Fatalf("remove %+v", u)
	}
	api.err = &types.InvalidParameterException{}
	err := s.MoveStage(ctx, "app/db", Current, "v3", "v1")
	if !IsStageMismatch(err) {
		t.Fatalf("a refused move = %v, want a stage mismatch", err)
	}
	if IsStageMismatch(errors.New("other")) || IsStageMismatch(nil) {
		t.Fatal("IsStageMismatch of another error")
	}
	if err := s.PutPending(ctx, "app/db", "tok", "{}"); err == nil {
		t.Fatal("PutPending hid the API error")
	}
	if err := s.RemoveStage(ctx, "app/db", Pending, "v2"); err == nil {
		t.Fatal("RemoveStage hid the API error")
	}
}

func TestPolicyFromTags(t *testing.T) {
	tests := []struct {
		name    string
		tags    map[string]string
		want    Policy
		wantTag string // the tag the error names
	}{
		{"defaults", nil, Policy{Length: 32, ExcludeCharacters: defaultExcludeChar}, ""},
		{"shortest", map[string]string{TagPasswordLength: "8"}, Policy{Length: 8, ExcludeCharacters: defaultExcludeChar}, ""},
		{"longest", map[string]string{TagPasswordLength: "4096"}, Policy{Length: 4096, ExcludeCharacters: defaultExcludeChar}, ""},
		{"too short", map[string]string{TagPasswordLength: "7"}, Policy{}, TagPasswordLength},
		{"too long", map[string]string{TagPasswordLength: "4097"}, Policy{}, TagPasswordLength},
		{"not a number", map[string]string{TagPasswordLength: "x"}, Policy{}, TagPasswordLength},
		{"exclude", map[string]string{TagExcludeChars: "ab"}, Policy{Length: 32, ExcludeCharacters: "ab"}, ""},
		{"no punctuation", map[string]string{TagNoPunctuation: "true"}, Policy{Length: 32, ExcludeCharacters: defaultExcludeChar, ExcludePunctuation: true}, ""},
		{"punctuation", map[string]string{TagNoPunctuation: "false"}, Policy{Length: 32, ExcludeCharacters: defaultExcludeChar}, ""},
		{"bad bool", map[string]string{TagNoPunctuation: "yes please"}, Policy{}, TagNoPunctuation},
		{"everything excluded", map[string]string{TagNoPunctuation: "true", TagExcludeChars: lowerChars + upperChars + digitChars}, Policy{}, TagExcludeChars},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PolicyFromTags(tt.tags)
			var pe *PolicyError
			switch {
			case tt.wantTag != "":
				if !errors.As(err, &pe) || pe.Tag != tt.wantTag || pe.Error() == "" {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantTag)
				}
			case err != nil:
				t.Fatal(err)
			case got != tt.want:
				t.Fatalf("policy = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		wantSets []string // each must appear at least once
	}{
		{"defaults", Policy{Length: 32, ExcludeCharacters: defaultExcludeChar}, []string{lowerChars, upperChars, digitChars, "!$()*+,-.;<=>^_`{|}~"}},
		{"no punctuation", Policy{Length: 8, ExcludePunctuation: true}, []string{lowerChars, upperChars, digitChars}},
		{"digits excluded", Policy{Length: 12, ExcludeCharacters: digitChars, ExcludePunctuation: true}, []string{lowerChars, upperChars}},
		{"longest", Policy{Length: 4096}, []string{lowerChars, upperChars, digitChars, punctChars}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 50 {
				pw, err := tt.policy.Generate()
				if err != nil {
					t.Fatal(err)
				}
				got := pw.Reveal()
				if int64(len(got)) != tt.policy.Length {
					t.Fatalf("length %d, want %d", len(got), tt.policy.Length)
				}
				if i := strings.IndexAny(got, tt.policy.ExcludeCharacters); i >= 0 {
					t.Fatalf("an excluded character at %d", i)
				}
				if tt.policy.ExcludePunctuation && strings.ContainsAny(got, punctChars) {
					t.Fatal("punctuation in a policy that excludes it")
				}
				if strings.ContainsAny(got, " \t\n") {
					t.Fatal("a space or control character")
				}
				for _, set := range tt.wantSets {
					if !strings.ContainsAny(got, set) {
						t.Fatalf("no character of %q (RequireEachIncludedType)", set)
					}
				}
				if seen[got] {
					t.Fatal("the same password twice")
				}
				seen[got] = true
			}
		})
	}
	for _, p := range []Policy{
		{Length: 32, ExcludeCharacters: lowerChars + upperChars + digitChars, ExcludePunctuation: true},
		{Length: 3},
	} {
		if _, err := p.Generate(); err == nil {
			t.Fatalf("policy %+v: no error for a policy no password meets", p)
		}
	}
}

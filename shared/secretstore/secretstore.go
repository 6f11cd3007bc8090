// Package secretstore is the rotation's view of AWS Secrets Manager, over the
// aws-sdk-go-v2 client: version stages as data, and the few writes a rotation
// makes. It adds no policy; the rotation package decides what to call.
package secretstore

import (
	"context"
	"errors"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// Version stage labels Secrets Manager gives meaning to.
const (
	Current  = "AWSCURRENT"
	Pending  = "AWSPENDING"
	Previous = "AWSPREVIOUS"
)

// API is the part of *secretsmanager.Client this package uses.
type API interface {
	DescribeSecret(context.Context, *sm.DescribeSecretInput, ...func(*sm.Options)) (*sm.DescribeSecretOutput, error)
	GetSecretValue(context.Context, *sm.GetSecretValueInput, ...func(*sm.Options)) (*sm.GetSecretValueOutput, error)
	PutSecretValue(context.Context, *sm.PutSecretValueInput, ...func(*sm.Options)) (*sm.PutSecretValueOutput, error)
	UpdateSecretVersionStage(context.Context, *sm.UpdateSecretVersionStageInput, ...func(*sm.Options)) (*sm.UpdateSecretVersionStageOutput, error)
	ListSecretVersionIds(context.Context, *sm.ListSecretVersionIdsInput, ...func(*sm.Options)) (*sm.ListSecretVersionIdsOutput, error)
}

// Store wraps the client.
type Store struct{ api API }

// New returns a Store over api.
func New(api API) *Store { return &Store{api: api} }

// Description is what DescribeSecret says, reduced to what a rotation needs.
type Description struct {
	ARN, Name string
	Deleted   bool
	Versions  map[string][]string // version id → stages
	Tags      map[string]string
}

// VersionWith returns the version that carries stage, or "".
func (d Description) VersionWith(stage string) string {
	for id, stages := range d.Versions {
		for _, s := range stages {
			if s == stage {
				return id
			}
		}
	}
	return ""
}

// HasStage reports whether version carries stage.
func (d Description) HasStage(version, stage string) bool {
	for _, s := range d.Versions[version] {
		if s == stage {
			return true
		}
	}
	return false
}

// Describe reads a secret's metadata and stages.
func (s *Store) Describe(ctx context.Context, id string) (Description, error) {
	out, err := s.api.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: &id})
	if err != nil {
		return Description{}, err
	}
	d := Description{
		ARN: aws.ToString(out.ARN), Name: aws.ToString(out.Name),
		Deleted:  out.DeletedDate != nil && !out.DeletedDate.IsZero(),
		Versions: out.VersionIdsToStages, Tags: map[string]string{},
	}
	for _, t := range out.Tags {
		d.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return d, nil
}

// ErrNoSuchVersion is returned by Value when the version or stage is absent.
var ErrNoSuchVersion = errors.New("no such secret version")

// ErrBinary is returned by Value for a version that holds SecretBinary
// instead of SecretString.
var ErrBinary = errors.New("the version holds SecretBinary, not SecretString")

// Value reads the SecretString of a version (by id, by stage, or both).
func (s *Store) Value(ctx context.Context, id, versionID, stage string) (string, error) {
	in := &sm.GetSecretValueInput{SecretId: &id}
	if versionID != "" {
		in.VersionId = &versionID
	}
	if stage != "" {
		in.VersionStage = &stage
	}
	out, err := s.api.GetSecretValue(ctx, in)
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "", ErrNoSuchVersion
	}
	if err != nil {
		return "", err
	}
	if out.SecretString == nil {
		return "", ErrBinary
	}
	return *out.SecretString, nil
}

// Current reads the AWSCURRENT version's id and SecretString in one
// GetSecretValue ("If you don't specify either a VersionStage or VersionId,
// then Secrets Manager returns the AWSCURRENT version"; the answer names
// its VersionId). A secret without an AWSCURRENT version is
// ErrNoSuchVersion, one holding SecretBinary ErrBinary.
func (s *Store) Current(ctx context.Context, id string) (versionID, value string, err error) {
	out, err := s.api.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: &id, VersionStage: aws.String(Current)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "", "", ErrNoSuchVersion
	}
	if err != nil {
		return "", "", err
	}
	if out.SecretString == nil {
		return aws.ToString(out.VersionId), "", ErrBinary
	}
	return aws.ToString(out.VersionId), *out.SecretString, nil
}

// IsVersionExists reports whether err is PutSecretValue refusing a token
// whose version already holds a different value ("If a version with a
// VersionId with the same value as the ClientRequestToken parameter already
// exists, and you specify the same secret data, the operation succeeds but
// does nothing. However, if the secret data is different, then the operation
// fails because you can't modify an existing version; you can only create
// new ones.").
func IsVersionExists(err error) bool {
	var re *types.ResourceExistsException
	return errors.As(err, &re)
}

// HasVersion reports whether the secret has a version with this id,
// labelled or not. DescribeSecret's VersionIdsToStages lists only versions
// that carry a staging label; ListSecretVersionIds with IncludeDeprecated
// lists the unlabelled ("deprecated") ones too.
func (s *Store) HasVersion(ctx context.Context, id, versionID string) (bool, error) {
	p := sm.NewListSecretVersionIdsPaginator(s.api, &sm.ListSecretVersionIdsInput{SecretId: &id, IncludeDeprecated: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return false, err
		}
		for _, v := range out.Versions {
			if aws.ToString(v.VersionId) == versionID {
				return true, nil
			}
		}
	}
	return false, nil
}

// Filled reports whether a version holds a value. Secrets Manager's
// RotateSecret creates the token's version with AWSPENDING before any value
// exists: "During rotation, Secrets Manager creates an AWSPENDING version ID
// before creating the new secret version. To check if a secret version
// exists, call GetSecretValue." (DescribeSecret, VersionIdsToStages). So a
// version is empty exactly when DescribeSecret lists it and GetSecretValue
// by its id answers ResourceNotFoundException; Filled asks both rather than
// reading "not found" as "empty". A version DescribeSecret does not list is
// ErrNoSuchVersion.
func (s *Store) Filled(ctx context.Context, id, versionID string) (bool, error) {
	_, err := s.api.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: &id, VersionId: &versionID})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		return err == nil, err
	}
	d, err := s.Describe(ctx, id)
	if err != nil {
		return false, err
	}
	if _, listed := d.Versions[versionID]; !listed {
		return false, ErrNoSuchVersion
	}
	return false, nil
}

// PutPending stores value under token with the AWSPENDING stage. Secrets
// Manager makes this idempotent on the token: the same token and value again
// is a no-op. On the empty version RotateSecret created for the token it
// stores the value (what AWS's rotation templates do in createSecret).
func (s *Store) PutPending(ctx context.Context, id, token, value string) error {
	_, err := s.api.PutSecretValue(ctx, &sm.PutSecretValueInput{
		SecretId: &id, ClientRequestToken: &token, SecretString: &value,
		VersionStages: []string{Pending},
	})
	return err
}

// MoveStage moves stage to version to. from must name the version that holds
// the stage now ("" when none does): Secrets Manager refuses the move
// otherwise, which makes it a compare-and-swap.
func (s *Store) MoveStage(ctx context.Context, id, stage, to, from string) error {
	in := &sm.UpdateSecretVersionStageInput{SecretId: &id, VersionStage: &stage, MoveToVersionId: &to}
	if from != "" {
		in.RemoveFromVersionId = &from
	}
	_, err := s.api.UpdateSecretVersionStage(ctx, in)
	return err
}

// RemoveStage takes stage off version from.
func (s *Store) RemoveStage(ctx context.Context, id, stage, from string) error {
	_, err := s.api.UpdateSecretVersionStage(ctx, &sm.UpdateSecretVersionStageInput{
		SecretId: &id, VersionStage: &stage, RemoveFromVersionId: &from,
	})
	return err
}

// IsNotFound reports whether err is Secrets Manager's
// ResourceNotFoundException: the secret, or the version a stage move names,
// does not exist.
func IsNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// IsStageMismatch reports whether err is Secrets Manager refusing a stage
// move because RemoveFromVersionId did not name the holder: someone else
// moved the label.
func IsStageMismatch(err error) bool {
	var ip *types.InvalidParameterException
	return errors.As(err, &ip)
}

// Policy is the password policy, from the secret's tags.
type Policy struct {
	Length             int64
	ExcludeCharacters  string
	ExcludePunctuation bool
}

// Tags that configure the password policy on a secret.
const (
	TagPasswordLength  = "secretsaga:password-length"
	TagExcludeChars    = "secretsaga:exclude-characters"
	TagNoPunctuation   = "secretsaga:exclude-punctuation"
	defaultLength      = 32
	defaultExcludeChar = `"'\/@:?#[]%& ` // characters that break connection strings and shells
)

// PolicyFromTags reads the password policy; a bad tag value is an error that
// names the tag.
func PolicyFromTags(tags map[string]string) (Policy, error) {
	p := Policy{Length: defaultLength, ExcludeCharacters: defaultExcludeChar}
	if v, ok := tags[TagPasswordLength]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 8 || n > 4096 {
			return p, &PolicyError{Tag: TagPasswordLength, Reason: "must be a whole number from 8 to 4096"}
		}
		p.Length = n
	}
	if v, ok := tags[TagExcludeChars]; ok {
		p.ExcludeCharacters = v
	}
	if v, ok := tags[TagNoPunctuation]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, &PolicyError{Tag: TagNoPunctuation, Reason: "must be true or false"}
		}
		p.ExcludePunctuation = b
	}
	return p, p.check()
}

// PolicyError names a tag with a value that cannot be used.
type PolicyError struct{ Tag, Reason string }

func (e *PolicyError) Error() string { return "password policy tag " + e.Tag + " " + e.Reason }

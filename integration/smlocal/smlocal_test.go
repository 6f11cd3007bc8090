package smlocal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

const (
	tokA = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	tokB = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	tokC = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
)

func start(t testing.TB, o Options, optFns ...func(*secretsmanager.Options)) (*Server, *secretsmanager.Client) {
	t.Helper()
	s, url, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}
	fns := append([]func(*secretsmanager.Options){func(o *secretsmanager.Options) { o.BaseEndpoint = &url }}, optFns...)
	return s, secretsmanager.NewFromConfig(cfg, fns...)
}

// Error kinds the tests assert with errors.As, as callers in the product do.
type errKind int

const (
	noErr errKind = iota
	kindNotFound
	kindExists
	kindInvalidParam
	kindInvalidRequest
)

func checkErr(t *testing.T, err error, want errKind) {
	t.Helper()
	var ok bool
	switch want {
	case noErr:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	case kindNotFound:
		var e *types.ResourceNotFoundException
		ok = errors.As(err, &e)
	case kindExists:
		var e *types.ResourceExistsException
		ok = errors.As(err, &e)
	case kindInvalidParam:
		var e *types.InvalidParameterException
		ok = errors.As(err, &e)
	case kindInvalidRequest:
		var e *types.InvalidRequestException
		ok = errors.As(err, &e)
	}
	if !ok {
		t.Fatalf("error = %v, want kind %d", err, want)
	}
}

func stagesOf(t *testing.T, c *secretsmanager.Client, id string) map[string][]string {
	t.Helper()
	d, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: &id})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range d.VersionIdsToStages {
		slices.Sort(st)
	}
	return d.VersionIdsToStages
}

func TestCreateGetDescribe(t *testing.T) {
	t.Parallel()
	clock := time.Date(2030, 1, 2, 3, 4, 5, 250e6, time.UTC)
	_, c := start(t, Options{Region: "eu-west-1", AccountID: "123456789012", Now: func() time.Time { return clock }})
	ctx := context.Background()

	cr, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("app/db"), SecretString: aws.String(`{"pw":"x"}`), Description: aws.String("d"),
		KmsKeyId: aws.String("alias/k"), ClientRequestToken: aws.String(tokA),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("core")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*cr.ARN, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-") || len(*cr.ARN) != len("arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-")+6 {
		t.Fatalf("ARN = %s", *cr.ARN)
	}
	if *cr.VersionId != tokA || *cr.Name != "app/db" {
		t.Fatalf("create = %+v", cr)
	}
	partial := strings.TrimSuffix(*cr.ARN, (*cr.ARN)[len(*cr.ARN)-7:])

	for _, id := range []string{"app/db", *cr.ARN, partial} {
		g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if *g.SecretString != `{"pw":"x"}` || *g.VersionId != tokA || !slices.Equal(g.VersionStages, []string{"AWSCURRENT"}) || !g.CreatedDate.Equal(clock.Truncate(time.Millisecond)) {
			t.Fatalf("get %s = %+v", id, g)
		}
	}

	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Description != "d" || *d.KmsKeyId != "alias/k" || d.RotationEnabled != nil || d.DeletedDate != nil ||
		!d.CreatedDate.Equal(clock) || len(d.Tags) != 1 || *d.Tags[0].Key != "team" ||
		!slices.Equal(d.VersionIdsToStages[tokA], []string{"AWSCURRENT"}) {
		t.Fatalf("describe = %+v", d)
	}

	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String("y")})
	checkErr(t, err, kindExists)
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bad name!")})
	if code(err) != "ValidationException" {
		t.Fatalf("invalid name: %v", err)
	}
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("s"), SecretBinary: []byte{1}})
	checkErr(t, err, kindInvalidParam)
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("huge"), SecretString: aws.String(strings.Repeat("x", 65537))})
	checkErr(t, err, kindInvalidParam)

	// Binary values survive the base64 round trip byte for byte.
	bin := []byte{0, 1, 2, 0xff, '"'}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: bin}); err != nil {
		t.Fatal(err)
	}
	g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil || string(g.SecretBinary) != string(bin) || g.SecretString != nil {
		t.Fatalf("binary get = %+v, %v", g, err)
	}

	// A secret created without a value has no AWSCURRENT to read.
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("empty")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("empty")})
	checkErr(t, err, kindNotFound)
	for _, id := range []string{"nope", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-abcdef"} {
		_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		checkErr(t, err, kindNotFound)
		_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		checkErr(t, err, kindNotFound)
	}
}

func TestGetSecretValueSelectors(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("v1"), ClientRequestToken: aws.String(tokA)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		id, stage  *string
		want       string
		wantErrKnd errKind
	}{
		{"default is current", nil, nil, "v2", noErr},
		{"by stage previous", nil, aws.String("AWSPREVIOUS"), "v1", noErr},
		{"by id", aws.String(tokA), nil, "v1", noErr},
		{"id and matching stage", aws.String(tokB), aws.String("AWSCURRENT"), "v2", noErr},
		// Recorded from AWS: InvalidRequestException, not ResourceNotFoundException.
		{"id and mismatched stage", aws.String(tokA), aws.String("AWSCURRENT"), "", kindInvalidRequest},
		{"unknown id", aws.String(tokC), nil, "", kindNotFound},
		{"unknown stage", nil, aws.String("AWSPENDING"), "", kindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s"), VersionId: tc.id, VersionStage: tc.stage})
			checkErr(t, err, tc.wantErrKnd)
			if err == nil && *g.SecretString != tc.want {
				t.Fatalf("value = %q, want %q", *g.SecretString, tc.want)
			}
		})
	}
}

func TestPutSecretValue(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("v1"), ClientRequestToken: aws.String(tokA)}); err != nil {
		t.Fatal(err)
	}
	put := func(tok, val string, stages ...string) (*secretsmanager.PutSecretValueOutput, error) {
		in := &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), VersionStages: stages}
		if tok != "" {
			in.ClientRequestToken = aws.String(tok)
		}
		if val != "" {
			in.SecretString = aws.String(val)
		}
		return c.PutSecretValue(ctx, in)
	}

	out, err := put(tokB, "v2")
	if err != nil || *out.VersionId != tokB || !slices.Equal(out.VersionStages, []string{"AWSCURRENT"}) {
		t.Fatalf("put = %+v, %v", out, err)
	}
	if got := stagesOf(t, c, "s"); !slices.Equal(got[tokA], []string{"AWSPREVIOUS"}) || !slices.Equal(got[tokB], []string{"AWSCURRENT"}) {
		t.Fatalf("stages after put = %v", got)
	}

	// A retried put with the same token and value is a no-op.
	out, err = put(tokB, "v2")
	if err != nil || *out.VersionId != tokB || !slices.Equal(out.VersionStages, []string{"AWSCURRENT"}) {
		t.Fatalf("idempotent put = %+v, %v", out, err)
	}
	_, err = put(tokB, "different")
	checkErr(t, err, kindExists)
	_, err = put("short", "v")
	checkErr(t, err, kindInvalidParam)
	_, err = put(tokC, "")
	checkErr(t, err, kindInvalidRequest)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String("a"), SecretBinary: []byte("b")})
	checkErr(t, err, kindInvalidParam)
	_, err = put(tokC, strings.Repeat("x", 65537))
	checkErr(t, err, kindInvalidParam)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("missing"), SecretString: aws.String("a")})
	checkErr(t, err, kindNotFound)

	// A third current demotes v2 to previous and leaves v1 deprecated.
	if _, err := put(tokC, "v3"); err != nil {
		t.Fatal(err)
	}
	got := stagesOf(t, c, "s")
	if _, ok := got[tokA]; ok || !slices.Equal(got[tokB], []string{"AWSPREVIOUS"}) || !slices.Equal(got[tokC], []string{"AWSCURRENT"}) {
		t.Fatalf("stages after third put = %v", got)
	}
	for _, dep := range []bool{false, true} {
		l, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), IncludeDeprecated: aws.Bool(dep)})
		if err != nil {
			t.Fatal(err)
		}
		want := 2
		if dep {
			want = 3
		}
		if len(l.Versions) != want {
			t.Fatalf("IncludeDeprecated=%v: %d versions, want %d", dep, len(l.Versions), want)
		}
	}

	// A custom label moves off its old holder rather than being duplicated.
	if _, err := put("", "x1", "CUSTOM"); err != nil {
		t.Fatal(err)
	}
	o2, err := put("", "x2", "CUSTOM")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for id, st := range stagesOf(t, c, "s") {
		if slices.Contains(st, "CUSTOM") {
			n++
			if id != *o2.VersionId {
				t.Fatalf("CUSTOM on %s, want %s", id, *o2.VersionId)
			}
		}
	}
	if n != 1 {
		t.Fatalf("CUSTOM on %d versions", n)
	}
}

// The rotation protocol: stage a pending version, then promote it.
func TestRotationStageFlow(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("r"), SecretString: aws.String("old"), ClientRequestToken: aws.String(tokA)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("r"), SecretString: aws.String("new"),
		ClientRequestToken: aws.String(tokB), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatal(err)
	}
	if g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("r")}); err != nil || *g.SecretString != "old" {
		t.Fatalf("pending put must not move AWSCURRENT: %+v %v", g, err)
	}
	if g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("r"), VersionStage: aws.String("AWSPENDING")}); err != nil || *g.SecretString != "new" {
		t.Fatalf("pending get: %+v %v", g, err)
	}

	move := func(stage string, to, from *string) error {
		_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String("r"), VersionStage: aws.String(stage), MoveToVersionId: to, RemoveFromVersionId: from})
		return err
	}
	for _, tc := range []struct {
		name     string
		to, from *string
		want     errKind
	}{
		{"missing RemoveFrom", aws.String(tokB), nil, kindInvalidParam},
		{"wrong RemoveFrom", aws.String(tokB), aws.String(tokB), kindInvalidParam},
		{"unknown MoveTo", aws.String(tokC), aws.String(tokA), kindNotFound},
		{"unknown RemoveFrom", aws.String(tokB), aws.String(tokC), kindNotFound},
	} {
		checkErr(t, move("AWSCURRENT", tc.to, tc.from), tc.want)
	}
	if got := stagesOf(t, c, "r"); !slices.Equal(got[tokA], []string{"AWSCURRENT"}) {
		t.Fatalf("rejected moves changed stages: %v", got)
	}

	checkErr(t, move("AWSCURRENT", aws.String(tokB), aws.String(tokA)), noErr)
	got := stagesOf(t, c, "r")
	if !slices.Equal(got[tokA], []string{"AWSPREVIOUS"}) || !slices.Equal(got[tokB], []string{"AWSCURRENT", "AWSPENDING"}) {
		t.Fatalf("after promote: %v", got)
	}
	// Promoting again is a no-op, as a retried finishSecret step would be.
	checkErr(t, move("AWSCURRENT", aws.String(tokB), nil), noErr)
	// Removing a label from a version that lacks it is rejected.
	checkErr(t, move("AWSPENDING", nil, aws.String(tokA)), kindInvalidParam)
	checkErr(t, move("AWSPENDING", nil, aws.String(tokB)), noErr)
	got = stagesOf(t, c, "r")
	if !slices.Equal(got[tokA], []string{"AWSPREVIOUS"}) || !slices.Equal(got[tokB], []string{"AWSCURRENT"}) {
		t.Fatalf("after pending removal: %v", got)
	}

	// Rolling back moves AWSCURRENT onto the previous version and swaps the labels.
	checkErr(t, move("AWSCURRENT", aws.String(tokA), aws.String(tokB)), noErr)
	got = stagesOf(t, c, "r")
	if !slices.Equal(got[tokA], []string{"AWSCURRENT"}) || !slices.Equal(got[tokB], []string{"AWSPREVIOUS"}) {
		t.Fatalf("after rollback: %v", got)
	}
	// A label nobody holds may be attached without RemoveFromVersionId.
	checkErr(t, move("AWSPENDING", aws.String(tokB), nil), noErr)
}

func TestDeletedSecret(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("d"), SecretString: aws.String("v"), ClientRequestToken: aws.String(tokA)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("d"), RecoveryWindowInDays: aws.Int64(3)})
	checkErr(t, err, kindInvalidParam)
	del, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("d"), RecoveryWindowInDays: aws.Int64(7)})
	if err != nil || del.DeletionDate == nil || time.Until(*del.DeletionDate) < 6*24*time.Hour {
		t.Fatalf("delete = %+v, %v", del, err)
	}

	for name, call := range map[string]func() error{
		"GetSecretValue": func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("d")})
			return err
		},
		"PutSecretValue": func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("d"), SecretString: aws.String("x")})
			return err
		},
		"UpdateSecretVersionStage": func() error {
			_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("d"), VersionStage: aws.String("X"), MoveToVersionId: aws.String(tokA)})
			return err
		},
		"CreateSecret same name": func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("d")})
			return err
		},
		"DeleteSecret again": func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("d")})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) { checkErr(t, call(), kindInvalidRequest) })
	}

	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("d")})
	if err != nil || d.DeletedDate == nil {
		t.Fatalf("describe deleted = %+v, %v", d, err)
	}
	if l, _ := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); len(l.SecretList) != 0 {
		t.Fatalf("deleted secret listed: %+v", l.SecretList)
	}
	if l, _ := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true)}); len(l.SecretList) != 1 || l.SecretList[0].DeletedDate == nil {
		t.Fatalf("IncludePlannedDeletion list: %+v", l)
	}

	if _, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("d")}); err != nil {
		t.Fatal(err)
	}
	if g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("d")}); err != nil || *g.SecretString != "v" {
		t.Fatalf("get after restore = %+v, %v", g, err)
	}

	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("d"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("d")})
	checkErr(t, err, kindNotFound)
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("d")}); err != nil {
		t.Fatalf("name must be free after force delete: %v", err)
	}
}

// Scheduled deletions expire once the clock passes the recovery window.
func TestRecoveryWindowExpires(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	_, c := start(t, Options{Now: now})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("e")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("e"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clock = clock.Add(8 * 24 * time.Hour)
	mu.Unlock()
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("e")})
	checkErr(t, err, kindNotFound)
}

func TestUpdateSecret(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("u"), SecretString: aws.String("v1"), ClientRequestToken: aws.String(tokA)}); err != nil {
		t.Fatal(err)
	}
	u, err := c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("u"), Description: aws.String("new"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)})
	if err != nil || *u.VersionId != tokB {
		t.Fatalf("update = %+v, %v", u, err)
	}
	if got := stagesOf(t, c, "u"); !slices.Equal(got[tokA], []string{"AWSPREVIOUS"}) || !slices.Equal(got[tokB], []string{"AWSCURRENT"}) {
		t.Fatalf("stages = %v", got)
	}
	u, err = c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("u"), KmsKeyId: aws.String("k2")})
	if err != nil || u.VersionId != nil {
		t.Fatalf("metadata-only update = %+v, %v", u, err)
	}
	d, _ := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("u")})
	if *d.Description != "new" || *d.KmsKeyId != "k2" {
		t.Fatalf("describe = %+v", d)
	}
}

func TestTagsAndListSecrets(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	for i, name := range []string{"prod/a", "prod/b", "dev/a", "prod/c", "other"} {
		tags := []types.Tag{{Key: aws.String("idx"), Value: aws.String(fmt.Sprint(i))}}
		if strings.HasPrefix(name, "prod/") {
			tags = append(tags, types.Tag{Key: aws.String("env"), Value: aws.String("production")})
		}
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v"), Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("other"),
		Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("sandbox")}, {Key: aws.String("idx"), Value: aws.String("99")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("prod/c"), TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("ghost"), Tags: []types.Tag{}})
	checkErr(t, err, kindNotFound)

	names := func(fs ...types.Filter) []string {
		var out []string
		p := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{Filters: fs, MaxResults: aws.Int32(2)})
		for p.HasMorePages() {
			pg, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range pg.SecretList {
				if len(e.SecretVersionsToStages) != 1 {
					t.Fatalf("%s: SecretVersionsToStages = %v", *e.Name, e.SecretVersionsToStages)
				}
				out = append(out, *e.Name)
			}
		}
		return out
	}
	f := func(k types.FilterNameStringType, v ...string) types.Filter { return types.Filter{Key: k, Values: v} }
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"all pages", nil, []string{"prod/a", "prod/b", "dev/a", "prod/c", "other"}},
		{"name prefix", []types.Filter{f("name", "prod/")}, []string{"prod/a", "prod/b", "prod/c"}},
		{"name values ORed", []types.Filter{f("name", "dev", "oth")}, []string{"dev/a", "other"}},
		{"tag-key", []types.Filter{f("tag-key", "env")}, []string{"prod/a", "prod/b", "other"}},
		{"tag-value", []types.Filter{f("tag-value", "prod")}, []string{"prod/a", "prod/b"}},
		{"filters ANDed", []types.Filter{f("name", "prod/"), f("tag-key", "env")}, []string{"prod/a", "prod/b"}},
		{"negation", []types.Filter{f("name", "!prod/")}, []string{"dev/a", "other"}},
		{"all", []types.Filter{f("all", "sandbox")}, []string{"other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := names(tc.filters...); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("tags merged", func(t *testing.T) {
		t.Parallel()
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("other")})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, tg := range d.Tags {
			got[*tg.Key] = *tg.Value
		}
		if len(got) != 2 || got["idx"] != "99" || got["env"] != "sandbox" {
			t.Fatalf("tags = %v", got)
		}
	})
}

func TestGetRandomPassword(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		in      secretsmanager.GetRandomPasswordInput
		wantLen int
		allowed string
		wantErr bool
	}{
		{name: "defaults", wantLen: 32, allowed: alnumChars + punctChars},
		{name: "no punctuation", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(64), ExcludePunctuation: aws.Bool(true)}, wantLen: 64, allowed: alnumChars},
		{name: "digits only", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(20), ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludePunctuation: aws.Bool(true)}, wantLen: 20, allowed: digitChars},
		{name: "exclude characters", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(200), ExcludeCharacters: aws.String(`"'\/@` + "`0Ol1I"), ExcludePunctuation: aws.Bool(false)}, wantLen: 200,
			allowed: strings.Map(func(r rune) rune {
				if strings.ContainsRune(`"'\/@`+"`0Ol1I", r) {
					return -1
				}
				return r
			}, alnumChars+punctChars)},
		{name: "space", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(300), IncludeSpace: aws.Bool(true), ExcludePunctuation: aws.Bool(true)}, wantLen: 300, allowed: alnumChars + " "},
		{name: "too short", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(3)}, wantErr: true},
		{name: "too long", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4097)}, wantErr: true},
		{name: "everything excluded", in: secretsmanager.GetRandomPasswordInput{ExcludeNumbers: aws.Bool(true), ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludePunctuation: aws.Bool(true)}, wantErr: true},
		{name: "excluded by characters", in: secretsmanager.GetRandomPasswordInput{ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludePunctuation: aws.Bool(true), ExcludeCharacters: aws.String(digitChars)}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := c.GetRandomPassword(ctx, &tc.in)
			if tc.wantErr {
				checkErr(t, err, kindInvalidParam)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pw := *out.RandomPassword
			if len(pw) != tc.wantLen {
				t.Fatalf("len = %d, want %d", len(pw), tc.wantLen)
			}
			for _, r := range pw {
				if !strings.ContainsRune(tc.allowed, r) {
					t.Fatalf("disallowed character %q", r)
				}
			}
			// RequireEachIncludedType defaults to true.
			for _, class := range []string{lowerChars, upperChars, digitChars, punctChars} {
				usable := strings.Map(func(r rune) rune {
					if strings.ContainsRune(tc.allowed, r) {
						return r
					}
					return -1
				}, class)
				if usable != "" && !strings.ContainsAny(pw, usable) {
					t.Fatalf("%q lacks a character from %q", pw, usable)
				}
			}
		})
	}

	t.Run("each type required", func(t *testing.T) {
		t.Parallel()
		for range 50 {
			out, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4)})
			if err != nil {
				t.Fatal(err)
			}
			for _, class := range []string{lowerChars, upperChars, digitChars, punctChars} {
				if !strings.ContainsAny(*out.RandomPassword, class) {
					t.Fatalf("%q lacks a character from %q", *out.RandomPassword, class)
				}
			}
		}
	})
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	create := func(t *testing.T, c *secretsmanager.Client) {
		t.Helper()
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("t"), SecretString: aws.String("v")}); err != nil {
			t.Fatal(err)
		}
	}

	// tick makes the write limiter's clock advance step at each request,
	// so the test, not the machine's load, decides how fast tokens return.
	tick := func(s *Server, step time.Duration) {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := time.Unix(1700000000, 0)
		s.lastFill = now
		s.writeClock = func() time.Time { now = now.Add(step); return now } // called under s.mu
	}

	t.Run("no retries sees ThrottlingException", func(t *testing.T) {
		t.Parallel()
		s, c := start(t, Options{WriteRPS: 2}, func(o *secretsmanager.Options) { o.Retryer = aws.NopRetryer{} })
		tick(s, 0) // no refill: the burst of 2, then throttling
		create(t, c)
		var throttled, ok int
		for range 8 {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("t"), SecretString: aws.String("v")})
			var ae smithy.APIError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &ae) && ae.ErrorCode() == "ThrottlingException" && ae.ErrorMessage() == "Rate exceeded":
				throttled++
			default:
				t.Fatal(err)
			}
		}
		if throttled != 6 || ok != 2 {
			t.Fatalf("ok=%d throttled=%d, want 2 and 6", ok, throttled)
		}
		// Reads are not part of the write quota.
		for range 5 {
			if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("t")}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("default retryer gets through", func(t *testing.T) {
		t.Parallel()
		// The standard retryer's decisions, without its sleeps.
		s, c := start(t, Options{WriteRPS: 10}, func(o *secretsmanager.Options) {
			o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
				so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		})
		// Half a token per request: the burst of 10 drains after about 19
		// writes, then every other request is throttled and retried.
		tick(s, 50*time.Millisecond)
		create(t, c)
		const n = 25
		for range n {
			if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("t"), SecretString: aws.String("v")}); err != nil {
				t.Fatal(err)
			}
		}
		if got := s.Calls()["PutSecretValue"]; got <= n {
			t.Fatalf("PutSecretValue calls = %d; expected retries beyond %d", got, n)
		}
	})
}

func TestCallsAndOnCall(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	s, c := start(t, Options{OnCall: func(op string) { mu.Lock(); seen = append(seen, op); mu.Unlock() }})
	ctx := context.Background()
	_, _ = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("c"), SecretString: aws.String("v")})
	_, _ = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("c")})
	_, _ = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")})
	if got := s.Calls(); got["CreateSecret"] != 1 || got["GetSecretValue"] != 2 || len(got) != 2 {
		t.Fatalf("calls = %v", got)
	}
	mu.Lock()
	if !slices.Equal(seen, []string{"CreateSecret", "GetSecretValue", "GetSecretValue"}) {
		t.Fatalf("OnCall saw %v", seen)
	}
	mu.Unlock()
	s.ResetCalls()
	if got := s.Calls(); len(got) != 0 {
		t.Fatalf("calls after reset = %v", got)
	}
}

// Concurrent writers must neither race nor lose the single-AWSCURRENT invariant.
func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	_, c := start(t, Options{})
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("p"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p"), SecretString: aws.String(fmt.Sprint(i))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	cur, prev := 0, 0
	for _, st := range stagesOf(t, c, "p") {
		if slices.Contains(st, "AWSCURRENT") {
			cur++
		}
		if slices.Contains(st, "AWSPREVIOUS") {
			prev++
		}
	}
	if cur != 1 || prev != 1 {
		t.Fatalf("AWSCURRENT on %d versions, AWSPREVIOUS on %d", cur, prev)
	}
}

// Wire-level behaviour the SDK client never exercises: it validates required
// members and always sends well-formed JSON before reaching the server.
func TestRawProtocol(t *testing.T) {
	t.Parallel()
	s := newServer(Options{Now: func() time.Time { return time.Unix(1700000000, 500e6) }})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	call := func(t *testing.T, target, body string) (int, http.Header, map[string]any) {
		t.Helper()
		return rawRequest(t, ts.URL, target, body)
	}
	if code, _, m := call(t, "secretsmanager.CreateSecret", `{"Name":"raw","SecretString":"v","ClientRequestToken":"`+tokA+`"}`); code != 200 || m["ARN"] == nil {
		t.Fatalf("create: %d %v", code, m)
	}
	_, _, m := call(t, "secretsmanager.DescribeSecret", `{"SecretId":"raw"}`)
	if d, ok := m["CreatedDate"].(float64); !ok || d != 1700000000.5 {
		t.Fatalf("CreatedDate = %#v, want epoch seconds number", m["CreatedDate"])
	}
	for _, tc := range []struct {
		name, target, body, wantType, wantMsg string
	}{
		{"unknown op", "secretsmanager.Frobnicate", `{}`, "UnknownOperationException", ""},
		{"missing target", "", `{}`, "UnknownOperationException", ""},
		{"malformed JSON", "secretsmanager.GetSecretValue", `{"SecretId":`, "SerializationException", ""},
		{"wrong type", "secretsmanager.GetSecretValue", `{"SecretId":5}`, "SerializationException", ""},
		{"missing SecretId", "secretsmanager.GetSecretValue", `{}`, "InvalidParameterException", "SecretId"},
		{"missing Name", "secretsmanager.CreateSecret", `{}`, "InvalidParameterException", "Name"},
		{"missing VersionStage", "secretsmanager.UpdateSecretVersionStage", `{"SecretId":"raw"}`, "InvalidParameterException", "VersionStage"},
		{"bad NextToken", "secretsmanager.ListSecrets", `{"NextToken":"zzz"}`, "InvalidNextTokenException", ""},
		{"not found", "secretsmanager.GetSecretValue", `{"SecretId":"nope"}`, "ResourceNotFoundException", "can't find the specified secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, h, m := call(t, tc.target, tc.body)
			if code != 400 || m["__type"] != tc.wantType || h.Get("X-Amzn-ErrorType") != tc.wantType {
				t.Fatalf("got %d %v (header %q), want %s", code, m, h.Get("X-Amzn-ErrorType"), tc.wantType)
			}
			if msg, _ := m["message"].(string); !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("message %q lacks %q", msg, tc.wantMsg)
			}
		})
	}
	// Secret values must never appear in error messages.
	_, _, m = call(t, "secretsmanager.PutSecretValue", `{"SecretId":"raw","SecretString":"hunter2","ClientRequestToken":"short"}`)
	if msg, _ := m["message"].(string); strings.Contains(msg, "hunter2") {
		t.Fatalf("error leaks value: %q", msg)
	}
}

// BenchmarkListSecretsFleet is one ListSecrets call of a fleet's selection
// (a tag-key and a tag-value filter, 100 results) in an account of 10,300
// secrets: every page of a fleet lists its whole selection again, so at
// 10,000 secrets the fleet makes 103 of these calls per page.
func BenchmarkListSecretsFleet(b *testing.B) {
	_, c := start(b, Options{})
	ctx := context.Background()
	for i := range 10300 {
		tags := []types.Tag{{Key: aws.String("secretsaga:rotation-group"), Value: aws.String("fleet")}}
		if i%34 == 0 {
			tags[0].Value = aws.String("other")
		}
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("fleet/app-%05d", i)), SecretString: aws.String("v"), Tags: tags}); err != nil {
			b.Fatal(err)
		}
	}
	in := &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(100), Filters: []types.Filter{
		{Key: types.FilterNameStringTypeTagKey, Values: []string{"secretsaga:rotation-group"}},
		{Key: types.FilterNameStringTypeTagValue, Values: []string{"fleet"}},
	}}
	// The middle of the selection: the average page of a listing.
	for range 50 {
		out, err := c.ListSecrets(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		in.NextToken = out.NextToken
	}
	b.ResetTimer()
	for range b.N {
		out, err := c.ListSecrets(ctx, in)
		if err != nil || len(out.SecretList) != 100 {
			b.Fatalf("%d secrets, %v", len(out.SecretList), err)
		}
	}
}

// ListSecrets answers from a cached selection while nothing that selects a
// secret changes: every change that does (a secret created, tagged,
// untagged, described, deleted, restored, purged) shows in the very next
// call, and a change that does not (a new version) keeps it.
func TestListSecretsSeesEveryChangeOfTheSelection(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, c := start(t, Options{Now: clock})
	ctx := context.Background()
	list := func(fs ...types.Filter) string {
		t.Helper()
		out, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: fs})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range out.SecretList {
			names = append(names, aws.ToString(e.Name))
		}
		return strings.Join(names, " ")
	}
	group := types.Filter{Key: types.FilterNameStringTypeTagValue, Values: []string{"fleet"}}
	desc := types.Filter{Key: types.FilterNameStringTypeDescription, Values: []string{"rotated"}}
	tag := func(name string) []types.Tag {
		return []types.Tag{{Key: aws.String("group"), Value: aws.String(name)}}
	}
	for _, n := range []string{"a", "b"} {
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("v"), Tags: tag("fleet")}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		change func() error
		want   string
		filter types.Filter
	}{
		{"listed", func() error { return nil }, "a b", group},
		{"created", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("c"), SecretString: aws.String("v"), Tags: tag("fleet")})
			return err
		}, "a b c", group},
		{"a new version changes nothing", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("b"), SecretString: aws.String("w")})
			return err
		}, "a b c", group},
		{"untagged", func() error {
			_, err := c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("a"), TagKeys: []string{"group"}})
			return err
		}, "b c", group},
		{"tagged", func() error {
			_, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("a"), Tags: tag("fleet")})
			return err
		}, "a b c", group},
		{"deleted", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("b"), RecoveryWindowInDays: aws.Int64(7)})
			return err
		}, "a c", group},
		{"restored", func() error {
			_, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("b")})
			return err
		}, "a b c", group},
		{"described (by its own filter)", func() error { return nil }, "", desc},
		{"described", func() error {
			_, err := c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("c"), Description: aws.String("rotated by the fleet")})
			return err
		}, "c", desc},
		{"purged after its recovery window", func() error {
			if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("a"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
				return err
			}
			if got := list(group); got != "b c" {
				return fmt.Errorf("after the delete: %q", got)
			}
			// Listed with the secrets scheduled for deletion, a included.
			out, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true), Filters: []types.Filter{group}})
			if err != nil || len(out.SecretList) != 3 {
				return fmt.Errorf("with IncludePlannedDeletion before the purge: %d secrets, %v; want 3", len(out.SecretList), err)
			}
			mu.Lock()
			now = now.Add(8 * 24 * time.Hour)
			mu.Unlock()
			return nil
		}, "b c", group},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := list(st.filter); got != st.want {
			t.Fatalf("%s: ListSecrets = %q, want %q", st.name, got, st.want)
		}
	}
	out, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true), Filters: []types.Filter{group}})
	if err != nil || len(out.SecretList) != 2 {
		t.Fatalf("with IncludePlannedDeletion after the purge: %d secrets, %v; want 2 (a is gone)", len(out.SecretList), err)
	}
}

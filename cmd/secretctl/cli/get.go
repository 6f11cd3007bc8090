package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

var getCmd = &command{
	name: "get", args: "<secret>",
	short: "print a secret's value pinned to a version (with lease --output env|json, the only commands that print one)",
	long: `Prints the SecretString of one version of a secret on stdout, and the version
id (with its stages) on stderr, so a pipeline can pin the version it read:

  value=$(secretctl get prod/db/app --stage AWSCURRENT 2>version.txt)

Choose the version with --stage (default AWSCURRENT) or --version. With
--output json, stdout is {"arn","name","versionId","stages","secretString"}.
This is the only secretctl command that prints a secret value.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		stage := fs.String("stage", "", "the version stage to read (default AWSCURRENT)")
		version := fs.String("version", "", "the version `id` to read")
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "secret")
			if err == nil {
				err = e.get(id, *stage, *version)
			}
			if err != nil {
				return e.fail("get", err)
			}
			return ExitOK
		}
	},
}

func (e *env) get(id, stage, version string) error {
	if err := e.needSM(); err != nil {
		return err
	}
	if stage == "" && version == "" {
		stage = "AWSCURRENT"
	}
	in := &sm.GetSecretValueInput{SecretId: aws.String(id)}
	if stage != "" {
		in.VersionStage = aws.String(stage)
	}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := e.deps.SM.GetSecretValue(e.ctx, in)
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		// GetSecretValue says ResourceNotFoundException both for a secret
		// that does not exist and for a stage or version it lacks.
		if _, err := e.describe(id); err != nil {
			return err
		}
		what := "stage " + stage
		if version != "" {
			what = "version " + version
			if stage != "" {
				what += " with stage " + stage
			}
		}
		return fmt.Errorf("secret %q has no %s", id, what)
	}
	if err != nil {
		return fmt.Errorf("get secret value: %w", err)
	}
	if out.SecretString == nil {
		return errors.New("the version holds SecretBinary, not a SecretString")
	}
	stages := slices.Clone(out.VersionStages)
	slices.SortFunc(stages, stageOrder)
	fmt.Fprintf(e.stderr, "version %s (%s)\n", aws.ToString(out.VersionId), strings.Join(stages, ","))
	if e.json() {
		return writeJSON(e.stdout, struct {
			ARN          string   `json:"arn"`
			Name         string   `json:"name"`
			VersionID    string   `json:"versionId"`
			Stages       []string `json:"stages"`
			SecretString string   `json:"secretString"`
		}{aws.ToString(out.ARN), aws.ToString(out.Name), aws.ToString(out.VersionId), stages, *out.SecretString})
	}
	_, err = fmt.Fprintln(e.stdout, *out.SecretString)
	return err
}

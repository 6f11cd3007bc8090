package rotation_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/infra/rotation"
)

// nagVariants are the stacks cdk-nag checks: every variant the other tests
// build, one with an explicit account and region (ARNs then hold literals
// where the others hold pseudo parameters), and the VPC variants. Each is
// synthesized when its subtest runs, so -run can pick one.
var nagVariants = map[string]func(t *testing.T) *synthesized{
	"defaults":                          defaults,
	"configured":                        configured,
	"without feature flags":             legacy,
	"without the fleet":                 noFleet,
	"without the native rotation entry": noNative,
	"explicit environment":              func(t *testing.T) *synthesized { return synth(t, "env-configured", configuredProps) },
	"in a VPC":                          inVpc,
	"in a VPC, no security groups":      inVpcNoGroups,
	"short-lived logins":                withEphemeral,
}

// TestCdkNag: the AwsSolutions pack leaves no error and no warning on any
// variant (a suppressed finding is neither).
func TestCdkNag(t *testing.T) {
	for name, variant := range nagVariants {
		t.Run(name, func(t *testing.T) {
			s := variant(t)
			a := assertions.Annotations_FromStack(s.stack)
			any := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
			errs := a.FindError(jsii.String("*"), any)
			warns := a.FindWarning(jsii.String("*"), any)
			for _, m := range *errs {
				t.Errorf("cdk-nag error on %s: %v", *m.Id, m.Entry.Data)
			}
			for _, m := range *warns {
				t.Errorf("cdk-nag warning on %s: %v", *m.Id, m.Entry.Data)
			}
		})
	}
}

type nagSuppression struct {
	ID        string `json:"id"`
	Reason    string `json:"reason"`
	AppliesTo []any  `json:"applies_to"`
}

func suppressions(r resource) []nagSuppression {
	meta, _ := r.Metadata["cdk_nag"].(map[string]any)
	b, _ := json.Marshal(meta["rules_to_suppress"])
	var out []nagSuppression
	_ = json.Unmarshal(b, &out)
	return out
}

// TestNagSuppressions: every suppression is granular (appliesTo names the
// wildcard it excuses), is for IAM5 only, and its reason says why; a
// Resource "*" suppression names exactly the actions its policy allows on
// "*", so that a new action on "*" is not excused by an old reason.
func TestNagSuppressions(t *testing.T) {
	for name, variant := range nagVariants {
		t.Run(name, func(t *testing.T) {
			d := variant(t).doc
			n := 0
			for id, r := range d.Resources {
				for _, sup := range suppressions(r) {
					n++
					if sup.ID == "AwsSolutions-SQS3" && r.Type == "AWS::SQS::Queue" && len(sup.AppliesTo) == 0 {
						// The schedules' dead-letter queue, which cdk-nag
						// does not recognize as one (TestScheduleDeadLetters).
						if !strings.Contains(sup.Reason, "DeadLetterConfig") {
							t.Errorf("%s: SQS3 reason %q", id, sup.Reason)
						}
						continue
					}
					if sup.ID != rotation.NagRuleWildcard {
						t.Errorf("%s: suppression of %s, only %s (and SQS3 on the dead-letter queue) may be suppressed", id, sup.ID, rotation.NagRuleWildcard)
					}
					if len(sup.AppliesTo) == 0 {
						t.Errorf("%s: suppression of %s without appliesTo (it would excuse any wildcard)", id, sup.ID)
					}
					if len(sup.Reason) < 80 {
						t.Errorf("%s: reason %q too short to name the AWS limitation", id, sup.Reason)
					}
					for _, a := range sup.AppliesTo {
						if a == "Resource::*" {
							checkStarReason(t, d, id, r, sup.Reason)
						} else if m, ok := a.(map[string]any); ok {
							if re, _ := m["regex"].(string); !strings.HasPrefix(re, "/^") || !strings.HasSuffix(re, "$/") {
								t.Errorf("%s: appliesTo regex %q is not anchored", id, re)
							}
						}
					}
				}
			}
			if n == 0 {
				t.Error("no suppression at all")
			}
		})
	}
}

// checkStarReason compares the actions a Resource "*" reason lists with the
// actions on "*" in the policies of the suppressed resource (a role: its
// policies; a policy: itself).
func checkStarReason(t *testing.T, d template, id string, r resource, reason string) {
	t.Helper()
	if r.Type != "AWS::IAM::Role" && r.Type != "AWS::IAM::Policy" {
		t.Errorf("%s: Resource::* suppression on a %s", id, r.Type)
		return
	}
	rest, ok := strings.CutPrefix(reason, rotation.NagStarReasonPrefix)
	if !ok {
		t.Errorf("%s: Resource::* reason %q does not start with the prefix that lists its actions", id, reason)
		return
	}
	list, _, _ := strings.Cut(rest, ". ")
	listed := strings.Split(list, ", ")
	slices.Sort(listed)
	var docs []any
	if r.Type == "AWS::IAM::Policy" {
		docs = append(docs, r.Properties["PolicyDocument"])
	} else {
		return // the role's own resource: its DefaultPolicy carries the same suppression and is checked there
	}
	var onStar []string
	for _, doc := range docs {
		b, _ := json.Marshal(doc.(map[string]any)["Statement"])
		var ss []statement
		if err := json.Unmarshal(b, &ss); err != nil {
			t.Fatal(err)
		}
		for _, st := range ss {
			if slices.Contains(st.resources(), any("*")) {
				onStar = append(onStar, st.actions()...)
			}
		}
	}
	slices.Sort(onStar)
	onStar = slices.Compact(onStar)
	if !slices.Equal(listed, onStar) {
		t.Errorf("%s: the Resource::* reason lists %v, the policy allows %v on *", id, listed, onStar)
	}
}

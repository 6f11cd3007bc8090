// Package fleet is the fleet rotation's own steps: list the secrets a tag
// filter selects, and summarize how each one's rotation ended. The
// rotations themselves are the ordinary saga, run once per secret inside
// the fleet state machine's Map state (statemachines/fleet.asl.json).
package fleet

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// Secrets is the part of the Secrets Manager API the fleet uses.
type Secrets interface {
	ListSecrets(context.Context, *sm.ListSecretsInput, ...func(*sm.Options)) (*sm.ListSecretsOutput, error)
}

// Publisher announces outcomes (*events.Bus).
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// Service runs the fleet steps.
type Service struct {
	Secrets Secrets
	// Events receives the Fleet Rotation Failed event of every failed
	// child (Report).
	Events Publisher
	Log    *slog.Logger
}

// ListInput selects secrets by one tag, one page at a time.
type ListInput struct {
	TagKey   string
	TagValue string
	// Limit caps how many secrets one fleet run takes (0: no cap), so a
	// mistyped filter cannot start a rotation of the whole account. It is
	// checked on the first page, against the whole selection.
	Limit int `json:",omitempty"`
	// PageSize caps the secrets of one page (0: MaxPageSize).
	PageSize int `json:",omitempty"`
	// After is the previous page's Next: this page starts after that ARN
	// ("": the first page).
	After string `json:",omitempty"`
}

// ListOutput is one page: the Map state's items.
type ListOutput struct {
	SecretIds []string
	// Count is the size of the whole selection (every page).
	Count int
	// Next is the cursor of the next page (the last ARN of this one), ""
	// on the last page.
	Next string
}

// A page is bounded in items and in bytes, so that the fleet machine's
// state (this page's ARNs, then also the Map's results for them, and the
// running Totals) stays well under Step Functions' 256 KiB payload limit
// however long the secrets' names are (an ARN can be nearly 600 bytes):
// at most PageBytes of ARNs, whose results are at most as long again plus
// ~60 bytes each for the error class, and at most MaxListedFailures
// failures in the Totals. TestFleetPayloadSize measures it at 10,000
// secrets.
const (
	MaxPageSize = 1000
	PageBytes   = 48 << 10
)

const step = "listsecrets"

// List returns the ARNs of the secrets carrying TagKey=TagValue, sorted,
// leaving out secrets scheduled for deletion.
func (s *Service) List(ctx context.Context, in ListInput) (ListOutput, error) {
	if in.TagKey == "" || in.TagValue == "" {
		return ListOutput{}, &faults.InputError{Detail: faults.Detail{Step: step,
			Reason: "TagKey and TagValue are required: the fleet rotates the secrets that carry this tag (e.g. secretsaga:rotation-group=default)"}}
	}
	if in.Limit < 0 {
		return ListOutput{}, &faults.InputError{Detail: faults.Detail{Step: step, Reason: "Limit must be 0 (no cap) or positive"}}
	}
	if in.PageSize < 0 || in.PageSize > MaxPageSize {
		return ListOutput{}, &faults.InputError{Detail: faults.Detail{Step: step, Reason: fmt.Sprintf("PageSize must be 0 (the default, %d) to %d", MaxPageSize, MaxPageSize)}}
	}
	p := sm.NewListSecretsPaginator(s.Secrets, &sm.ListSecretsInput{
		Filters: []smtypes.Filter{
			{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{in.TagKey}},
			{Key: smtypes.FilterNameStringTypeTagValue, Values: []string{in.TagValue}},
		},
		MaxResults: aws.Int32(100),
	})
	var ids []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return ListOutput{}, faults.Classify(fmt.Errorf("list secrets tagged %s=%s: %w", in.TagKey, in.TagValue, err), "", step)
		}
		for _, e := range page.SecretList {
			// The two filters match the key and the value separately (AWS
			// semantics); keep only secrets with this exact pair.
			if e.DeletedDate == nil && hasTag(e.Tags, in.TagKey, in.TagValue) {
				ids = append(ids, aws.ToString(e.ARN))
			}
		}
	}
	sort.Strings(ids)
	if in.After == "" && in.Limit > 0 && len(ids) > in.Limit {
		return ListOutput{}, &faults.InputError{Detail: faults.Detail{Step: step,
			Reason: fmt.Sprintf("%d secrets carry %s=%s, more than the Limit of %d; raise Limit or narrow the tag", len(ids), in.TagKey, in.TagValue, in.Limit)}}
	}
	out := ListOutput{Count: len(ids)}
	// The cursor is an ARN, not a position: the selection is listed again
	// for every page, and a secret tagged or deleted meanwhile shifts
	// positions but not the order of the others, so no secret is taken
	// twice or skipped for it.
	start := sort.Search(len(ids), func(i int) bool { return ids[i] > in.After })
	size := cmp.Or(in.PageSize, MaxPageSize)
	bytes := 0
	end := start
	for end < len(ids) && end-start < size && (end == start || bytes+len(ids[end])+3 <= PageBytes) {
		bytes += len(ids[end]) + 3 // quotes and comma
		end++
	}
	out.SecretIds = ids[start:end]
	if end < len(ids) {
		out.Next = ids[end-1]
	}
	if s.Log != nil {
		s.Log.InfoContext(ctx, "fleet selection", "tagKey", in.TagKey, "tagValue", in.TagValue, "count", len(ids),
			"page", len(out.SecretIds), "last", out.Next == "")
	}
	return out, nil
}

func hasTag(tags []smtypes.Tag, k, v string) bool {
	for _, t := range tags {
		if aws.ToString(t.Key) == k && aws.ToString(t.Value) == v {
			return true
		}
	}
	return false
}

// ItemResult is how one secret's rotation ended, as the fleet machine's Map
// state reports it: State on success, Error (a shared/faults name) and Cause
// on failure.
type ItemResult struct {
	SecretId  string `json:",omitempty"`
	SecretArn string `json:",omitempty"`
	VersionId string `json:",omitempty"`
	State     string `json:",omitempty"`
	Error     string `json:",omitempty"`
	Cause     string `json:",omitempty"`
}

// SummaryInput is one page's Map state output and the counts of the
// pages before it.
type SummaryInput struct {
	Results []ItemResult
	Totals  Summary
}

// MaxListedFailures caps Summary.Failures: the counts stay exact, the list
// names the first failures only (each failed secret has its own Fleet
// Rotation Failed event and ledger journal), so that a fleet where
// thousands fail keeps its state under the payload limit.
const MaxListedFailures = 50

// Failure names a secret whose rotation did not succeed.
type Failure struct {
	SecretId string
	Outcome  string
	Error    string
}

// Summary counts the outcomes. Every secret is in exactly one count.
type Summary struct {
	Total              int
	Succeeded          int
	RolledBack         int       // failed, and compensation restored the secret and target
	Abandoned          int       // ConflictError: another actor held or changed the secret
	CompensationFailed int       // alerted; the lease is held for an operator
	Failures           []Failure `json:",omitempty"`
	// FailuresNotListed counts the failures beyond MaxListedFailures.
	FailuresNotListed int `json:",omitempty"`
}

// Outcome names.
const (
	OutcomeSucceeded          = "succeeded"
	OutcomeRolledBack         = "rolled back"
	OutcomeAbandoned          = "abandoned"
	OutcomeCompensationFailed = "compensation failed"
)

// Outcome classifies one item.
func Outcome(r ItemResult) string {
	switch {
	case r.Error == "":
		return OutcomeSucceeded
	case r.Error == faults.NameConflict:
		return OutcomeAbandoned
	case r.Error == faults.NameCompensationFailed:
		return OutcomeCompensationFailed
	}
	return OutcomeRolledBack
}

// Summarize counts how one page's rotations ended, on top of the pages
// before it (Totals).
func (s *Service) Summarize(ctx context.Context, in SummaryInput) (Summary, error) {
	sum := in.Totals
	sum.Total += len(in.Results)
	for _, r := range in.Results {
		o := Outcome(r)
		switch o {
		case OutcomeSucceeded:
			sum.Succeeded++
			continue
		case OutcomeAbandoned:
			sum.Abandoned++
		case OutcomeCompensationFailed:
			sum.CompensationFailed++
		default:
			sum.RolledBack++
		}
		if len(sum.Failures) >= MaxListedFailures {
			sum.FailuresNotListed++
			continue
		}
		sum.Failures = append(sum.Failures, Failure{SecretId: firstNonEmpty(r.SecretArn, r.SecretId), Outcome: o, Error: r.Error})
	}
	if s.Log != nil {
		s.Log.InfoContext(ctx, "fleet summary", "total", sum.Total, "succeeded", sum.Succeeded, "rolledBack", sum.RolledBack,
			"abandoned", sum.Abandoned, "compensationFailed", sum.CompensationFailed)
	}
	return sum, nil
}

// String is the one-line summary a person reads.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d secrets: %d succeeded, %d rolled back, %d abandoned, %d compensation failed",
		s.Total, s.Succeeded, s.RolledBack, s.Abandoned, s.CompensationFailed)
	return b.String()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// UnmarshalJSON makes a field of the wrong JSON type in the fleet's
// execution input an InputError naming the field (not encoding/json's
// UnmarshalTypeError, which no Catch names).
func (in *ListInput) UnmarshalJSON(b []byte) error {
	type plain ListInput
	return faults.DecodeInput(b, (*plain)(in), step, "the fleet execution input")
}

// UnmarshalJSON: see ListInput's.
func (in *SummaryInput) UnmarshalJSON(b []byte) error {
	type plain SummaryInput
	return faults.DecodeInput(b, (*plain)(in), "fleetsummary", "the fleet summary's input (the Map state's results)")
}

// CaughtError is what a Catch puts at its ResultPath: the error name and
// its cause.
type CaughtError struct {
	Error string
	Cause string `json:",omitempty"`
}

// ReportInput is one failed fleet child, as the fleet machine's Catch
// around the saga hands it over: the secret, the child execution (the
// lease holder it ran as) and the error the saga ended with.
type ReportInput struct {
	SecretId     string
	ExecutionArn string `json:",omitempty"`
	Error        CaughtError
}

// UnmarshalJSON: see ListInput's.
func (in *ReportInput) UnmarshalJSON(b []byte) error {
	type plain ReportInput
	return faults.DecodeInput(b, (*plain)(in), stepReport, "the failed fleet child (the Catch's output)")
}

const stepReport = "fleetreport"

// Report publishes a failed fleet child's Fleet Rotation Failed event.
//
// It is published for every failed child, whatever the saga published
// before: the saga announces its own outcomes (Rotation Rolled Back,
// Rotation Abandoned, Compensation Failed), but some of its failures end
// with no event at all (the lease held by someone else, acquire failing,
// compensation finding the lease taken over, the Compensation Failed alert
// itself failing), and from the outside the fleet cannot tell which: the
// Abandoned state is reached both after an abandon that announced itself
// and after a compensation that found the lease gone, which announced
// nothing. One event per failed child, always, is also what the failed
// children alarm counts. Delivery is at least once (a retried Report
// publishes again), as for every event.
func (s *Service) Report(ctx context.Context, in ReportInput) (ItemResult, error) {
	if in.SecretId == "" || in.Error.Error == "" {
		return ItemResult{}, &faults.InputError{Detail: faults.Detail{Step: stepReport, SecretID: in.SecretId,
			Reason: "SecretId and Error.Error are required: Report announces one failed fleet child"}}
	}
	r := ItemResult{SecretId: in.SecretId, Error: in.Error.Error}
	o := Outcome(r)
	severity := "critical"
	if o == OutcomeRolledBack {
		severity = "warning" // as the saga's own Rotation Rolled Back
	}
	err := s.Events.Publish(ctx, events.Event{DetailType: events.FleetRotationFailed, Detail: events.Detail{
		SecretARN: in.SecretId, ExecutionARN: in.ExecutionArn, ErrorClass: in.Error.Error, Severity: severity, Outcome: o,
		Action: "This secret's rotation in a fleet failed (" + o + "); run `secretctl status " + in.SecretId + "` for its state and journal.",
	}})
	if err != nil {
		return r, &faults.RetryableError{Detail: faults.Detail{Step: stepReport, SecretID: in.SecretId,
			Reason: "the Fleet Rotation Failed event was not published; a retry publishes it", Err: err}}
	}
	if s.Log != nil {
		s.Log.WarnContext(ctx, "fleet child failed", "secret", in.SecretId, "execution", in.ExecutionArn, "error", in.Error.Error, "outcome", o)
	}
	return r, nil
}

// Trace is the failed child's identity on the report's span
// (shared/tracing).
func (in ReportInput) Trace() tracing.Identity {
	return tracing.Identity{Secret: in.SecretId, Execution: in.ExecutionArn}
}

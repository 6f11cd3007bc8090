package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// Detail types the audit publishes (source "secretsaga", like every event
// of the product).
const (
	UnauthorizedSecretAccess = "Unauthorized Secret Access" // critical
	StaleConsumerEvent       = "Stale Consumer"             // warning
)

// Tags the audit reads.
const (
	ReadersTag  = "secretsaga:readers"
	GroupTag    = "secretsaga:rotation-group"
	StrategyTag = "secretsaga:strategy"
)

// Verdicts of an access (ledger.Access.Verdict).
const (
	VerdictDeclared   = "declared"
	VerdictTrusted    = "trusted"
	VerdictUndeclared = "undeclared"
	VerdictDenied     = "denied"
	VerdictUnjudged   = "unjudged"
)

// SecretsAPI is the part of *secretsmanager.Client the audit uses: it reads
// a secret's tags and stages, never its value.
type SecretsAPI interface {
	DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// Journal is the part of *ledger.Ledger the audit reads.
type Journal interface {
	Get(ctx context.Context, secretARN string) (ledger.Lease, bool, error)
	History(ctx context.Context, secretARN string) ([]ledger.Record, error)
}

// Store is the part of *ledger.Reads the audit writes.
type Store interface {
	Record(ctx context.Context, a ledger.Access) (ledger.Access, bool, error)
	AlertSent(ctx context.Context, a ledger.Access) error
	Touch(ctx context.Context, c ledger.Consumer) (bool, error)
	Consumers(ctx context.Context, secretARN string) ([]ledger.Consumer, error)
	RecentJournal(ctx context.Context, secretARN string, n int32) ([]ledger.Record, error)
}

// recentRecords is how much of the journal a read looks at first: a
// rotation journals about ten records, so the last three rotations.
const recentRecords = 32

// Service judges and records calls.
type Service struct {
	SM      SecretsAPI
	Journal Journal
	Store   Store
	Events  eventbus.API
	Bus     string // event bus name; "" is the default bus
	// Group is the rotation group audited: secrets whose GroupTag differs
	// are ignored ("" audits every secret that has the tag).
	Group string
	// Trusted are patterns (as in Readers) of the principals that read
	// secrets as part of the product (the rotation functions' roles): their
	// reads are recorded, never alerted on, and are not consumers.
	Trusted Readers
	Log     *slog.Logger
}

// Alert is the detail of the events the audit publishes. It names who,
// what and when; never a value.
type Alert struct {
	SecretARN string `json:"secretArn"`
	Principal string `json:"principal"`
	Consumer  string `json:"consumer"`
	EventName string `json:"eventName,omitempty"`
	EventID   string `json:"eventId,omitempty"`
	EventTime string `json:"eventTime,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
	Verdict   string `json:"verdict,omitempty"`
	VersionID string `json:"versionId,omitempty"`
	// Stale Consumer: how far behind, what the next rotation does to it.
	VersionsBehind       int    `json:"versionsBehind,omitempty"`
	BreaksAtNextRotation bool   `json:"breaksAtNextRotation,omitempty"`
	AlreadyInvalid       bool   `json:"alreadyInvalid,omitempty"`
	LastRead             string `json:"lastRead,omitempty"`
	Strategy             string `json:"strategy,omitempty"`
	Severity             string `json:"severity"`
	Action               string `json:"action"`
}

// secretInfo is what Describe tells about one secret, cached per batch.
type secretInfo struct {
	arn     string
	tags    map[string]string
	stages  map[string][]string
	audited bool
	why     string
}

type batch struct {
	secrets map[string]*secretInfo
	history map[string][]ledger.Record
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Handle processes one EventBridge event. An event the audit does not take
// (malformed, foreign, a secret outside the group) is logged and dropped: it
// returns nil, so nothing retries it. An error is a classified fault
// (RetryableError for a throttled or unreachable dependency), so Lambda's
// asynchronous retries run it again, which is safe: the access item is keyed
// by the CloudTrail event.
func (s *Service) Handle(ctx context.Context, raw json.RawMessage) error {
	return s.handle(ctx, raw, &batch{secrets: map[string]*secretInfo{}, history: map[string][]ledger.Record{}})
}

// HandleBatch processes several events, sharing what it reads about a
// secret between them; it returns the first error after trying them all.
func (s *Service) HandleBatch(ctx context.Context, raws []json.RawMessage) error {
	b := &batch{secrets: map[string]*secretInfo{}, history: map[string][]ledger.Record{}}
	var first error
	for _, raw := range raws {
		if err := s.handle(ctx, raw, b); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *Service) handle(ctx context.Context, raw json.RawMessage, b *batch) error {
	c, err := Parse(raw)
	if err != nil {
		s.log().Warn("event ignored", "reason", err.Error())
		return nil
	}
	if !c.Read() && !c.Denied() && !c.MovesCurrent() {
		s.log().Info("call noted", "eventName", c.EventName, "eventId", c.EventID)
		return nil
	}
	if len(c.SecretIDs) == 0 {
		s.log().Warn("event ignored", "reason", "the call names no secret (BatchGetSecretValue by filter is not attributed)", "eventId", c.EventID)
		return nil
	}
	for _, id := range c.SecretIDs {
		if err := s.handleSecret(ctx, c, id, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) describe(ctx context.Context, id string, b *batch) (*secretInfo, error) {
	if in, ok := b.secrets[id]; ok {
		return in, nil
	}
	out, err := s.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &id})
	info := &secretInfo{}
	var nf *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		info.why = "no such secret"
	case err != nil && faults.Name(faults.Classify(err, id, step)) == faults.NameInput:
		// Access denied: the audit's role reads only its group's secrets.
		info.why = "the secret cannot be described (not in the rotation group?)"
	case err != nil:
		return nil, faults.Classify(fmt.Errorf("describe secret: %w", err), id, step)
	default:
		info.arn, info.stages = aws.ToString(out.ARN), out.VersionIdsToStages
		info.tags = map[string]string{}
		for _, t := range out.Tags {
			info.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		group, tagged := info.tags[GroupTag]
		info.audited = tagged && (s.Group == "" || group == s.Group)
		if !info.audited {
			info.why = "secret outside the rotation group"
		}
	}
	b.secrets[id] = info
	return info, nil
}

func (s *Service) handleSecret(ctx context.Context, c Call, id string, b *batch) error {
	info, err := s.describe(ctx, id, b)
	if err != nil {
		return err
	}
	if !info.audited {
		s.log().Info("event ignored", "reason", info.why, "secretId", id, "eventId", c.EventID)
		return nil
	}
	if c.MovesCurrent() {
		return s.staleConsumers(ctx, c, info)
	}
	return s.access(ctx, c, info, b)
}

func (s *Service) verdict(c Call, info *secretInfo) string {
	switch {
	case c.Denied():
		return VerdictDenied
	case s.Trusted.Match(c.Principal, c.Consumer):
		return VerdictTrusted
	}
	tag, declared := info.tags[ReadersTag]
	switch {
	case !declared:
		return VerdictUnjudged
	case ParseReaders(tag).Match(c.Principal, c.Consumer):
		return VerdictDeclared
	}
	return VerdictUndeclared
}

func (s *Service) access(ctx context.Context, c Call, info *secretInfo, b *batch) error {
	a := ledger.Access{Secret: info.arn, EventID: c.EventID, EventName: c.EventName, At: c.Time.UnixMilli(),
		Principal: c.Principal, Consumer: c.Consumer, ErrorCode: c.ErrorCode, Verdict: s.verdict(c, info)}
	a.AlertPending = a.Verdict == VerdictDenied || a.Verdict == VerdictUndeclared
	if c.ErrorCode == "" {
		v, err := s.versionRead(ctx, c, info, b)
		if err != nil {
			return err
		}
		a.VersionID, a.VersionStage, a.VersionSource = v.id, v.stage, v.source
	}
	stored, wrote, err := s.Store.Record(ctx, a)
	if err != nil {
		return faults.Classify(err, info.arn, step)
	}
	if !wrote && !stored.AlertPending {
		s.log().Info("access already recorded", "secretArn", info.arn, "eventId", c.EventID)
		return nil
	}
	if stored.AlertPending {
		action := "find out why " + c.Principal + " read the secret: add its role to the tag " + ReadersTag + " if it should, else revoke its access and rotate the secret"
		if a.Verdict == VerdictDenied {
			action = "a call by " + c.Principal + " was denied: find out who uses that identity and why"
		}
		err := s.publish(ctx, UnauthorizedSecretAccess, Alert{SecretARN: info.arn, Principal: c.Principal, Consumer: c.Consumer,
			EventName: c.EventName, EventID: c.EventID, EventTime: c.Time.Format(time.RFC3339), ErrorCode: c.ErrorCode,
			Verdict: stored.Verdict, VersionID: stored.VersionID, Severity: "critical", Action: action})
		if err != nil {
			return err
		}
		if err := s.Store.AlertSent(ctx, stored); err != nil {
			return faults.Classify(err, info.arn, step)
		}
	}
	s.log().Info("access recorded", "secretArn", info.arn, "principal", c.Principal, "verdict", stored.Verdict,
		"versionId", stored.VersionID, "eventId", c.EventID)
	// A consumer is who reads the secret for its own use: a successful
	// read, not by the product's own functions.
	if c.ErrorCode == "" && stored.Verdict != VerdictTrusted && stored.VersionID != "" {
		if _, err := s.Store.Touch(ctx, ledger.Consumer{Secret: info.arn, Consumer: c.Consumer, Principal: c.Principal,
			LastRead: a.At, VersionID: stored.VersionID, EventID: c.EventID}); err != nil {
			return faults.Classify(err, info.arn, step)
		}
	}
	return nil
}

type versionRead struct{ id, stage, source string }

// versionRead is the version the call read: the one it named, else the one
// that held the named stage (AWSCURRENT by default) at the time of the call,
// from the journal; else the one that holds it now.
func (s *Service) versionRead(ctx context.Context, c Call, info *secretInfo, b *batch) (versionRead, error) {
	if c.VersionID != "" {
		return versionRead{c.VersionID, c.VersionStage, "named"}, nil
	}
	stage := c.VersionStage
	if stage == "" {
		stage = "AWSCURRENT"
	}
	if stage == "AWSCURRENT" || stage == "AWSPREVIOUS" {
		hist, ok := b.history[info.arn]
		if !ok {
			var err error
			if hist, err = s.Store.RecentJournal(ctx, info.arn, recentRecords); err != nil {
				return versionRead{}, faults.Classify(err, info.arn, step)
			}
			// A read older than the recent records: the whole journal.
			if len(hist) == recentRecords && hist[0].Time().After(c.Time) {
				if hist, err = s.Journal.History(ctx, info.arn); err != nil {
					return versionRead{}, faults.Classify(err, info.arn, step)
				}
			}
			b.history[info.arn] = hist
		}
		cur, prev := StagesAt(hist, c.Time)
		if v := map[string]string{"AWSCURRENT": cur, "AWSPREVIOUS": prev}[stage]; v != "" {
			return versionRead{v, stage, "journal"}, nil
		}
	}
	for id, labels := range info.stages {
		if slices.Contains(labels, stage) {
			return versionRead{id, stage, "current"}, nil
		}
	}
	return versionRead{"", stage, ""}, nil
}

// StagesAt replays a journal (oldest first) up to t and returns the versions
// that were AWSCURRENT and AWSPREVIOUS then, as far as the journal knows: a
// rotation starts from its recorded previous version, its finish makes its
// token AWSCURRENT (Secrets Manager demotes the old one to AWSPREVIOUS), and
// a rollback moves AWSCURRENT back to the recorded previous version.
// CloudTrail's eventTime has one-second precision, so a record of the same
// second as t counts as before it: a read in the second AWSCURRENT moved is
// attributed to the new version.
func StagesAt(hist []ledger.Record, t time.Time) (cur, prev string) {
	move := func(v string) {
		if v != "" && v != cur {
			prev, cur = cur, v
		}
	}
	end := t.Truncate(time.Second).Add(time.Second)
	for _, r := range hist {
		if !r.Time().Before(end) {
			break
		}
		switch r.State {
		case ledger.Started:
			if r.PreviousVersion != "" && r.PreviousVersion != cur {
				cur, prev = r.PreviousVersion, ""
			}
		case ledger.FinishDone, ledger.Finished:
			move(r.Token)
		case ledger.RolledBack:
			move(r.PreviousVersion)
		}
	}
	return cur, prev
}

// staleConsumers runs after AWSCURRENT moved: every consumer that now holds
// another version is announced (Stale Consumer, warning).
func (s *Service) staleConsumers(ctx context.Context, c Call, info *secretInfo) error {
	consumers, err := s.Store.Consumers(ctx, info.arn)
	if err != nil {
		return faults.Classify(err, info.arn, step)
	}
	if len(consumers) == 0 {
		return nil
	}
	// The stages after the move: Describe again rather than the batch's
	// cached answer, which may predate it.
	out, err := s.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &info.arn})
	if err != nil {
		return faults.Classify(fmt.Errorf("describe secret: %w", err), info.arn, step)
	}
	lease, _, err := s.Journal.Get(ctx, info.arn)
	if err != nil {
		return faults.Classify(err, info.arn, step)
	}
	alt := Alternating(lease, info.tags[StrategyTag])
	strategy := map[bool]string{true: "alternating users", false: "single user"}[alt]
	for _, st := range Assess(consumers, out.VersionIdsToStages, alt) {
		if !st.Stale {
			continue
		}
		action := "the version " + st.Consumer.Consumer + " holds stops working at the next rotation: make it read the secret again (or use the client library) before then"
		if st.AlreadyInvalid {
			action = "the password " + st.Consumer.Consumer + " last read no longer works: make it read the secret again"
		}
		err := s.publish(ctx, StaleConsumerEvent, Alert{SecretARN: info.arn, Principal: st.Principal, Consumer: st.Consumer.Consumer,
			EventName: c.EventName, EventID: c.EventID, VersionID: st.VersionID, VersionsBehind: st.VersionsBehind,
			BreaksAtNextRotation: st.BreaksAtNextRotation, AlreadyInvalid: st.AlreadyInvalid,
			LastRead: st.LastReadTime().Format(time.RFC3339), Strategy: strategy, Severity: "warning", Action: action})
		if err != nil {
			return err
		}
		s.log().Info("stale consumer", "secretArn", info.arn, "consumer", st.Consumer.Consumer, "versionsBehind", st.VersionsBehind)
	}
	return nil
}

func (s *Service) publish(ctx context.Context, detailType string, a Alert) error {
	if err := eventbus.Put(ctx, s.Events, s.Bus, detailType, a.SecretARN, a); err != nil {
		return faults.Classify(err, a.SecretARN, step)
	}
	return nil
}

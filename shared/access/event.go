// Package access turns CloudTrail's records of Secrets Manager calls, as
// EventBridge delivers them ("AWS API Call via CloudTrail", source
// aws.secretsmanager), into an audit of who reads which secret: each read is
// recorded in the ledger (principal, time, the version read; never a value),
// a read by a principal that is not among the secret's declared readers, or
// any denied call, raises "Unauthorized Secret Access", and a consumer that
// has not read since the last rotation raises "Stale Consumer" (see Assess
// for the rule). functions/accessaudit is a thin adapter over Service.
package access

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/secretsaga/secretsaga/shared/faults"
)

// What the audit accepts (see README "Who reads which secret").
const (
	Source      = "aws.secretsmanager"
	DetailType  = "AWS API Call via CloudTrail"
	EventSource = "secretsmanager.amazonaws.com"
	step        = "accessaudit"
	// maxEvent is EventBridge's largest event (256 KB); anything larger is
	// not an event EventBridge delivered.
	maxEvent = 256 << 10
)

// Call is the part of one CloudTrail record the audit uses.
type Call struct {
	EventID   string
	EventName string
	Time      time.Time
	// Principal is userIdentity.arn; Consumer the identity reads are
	// tracked by: the role an assumed-role session belongs to
	// (sessionContext.sessionIssuer.arn), else the principal itself.
	Principal, Consumer, PrincipalType string
	// SecretIDs are the secrets the call named (secretId, or
	// BatchGetSecretValue's secretIdList).
	SecretIDs     []string
	VersionID     string
	VersionStage  string
	MoveToVersion string
	// VersionStages is PutSecretValue's list (nil when absent).
	VersionStages []string
	ErrorCode     string
}

// Denied reports whether the call was refused for lack of permission
// (CloudTrail writes "AccessDenied"; the API error is AccessDeniedException).
func (c Call) Denied() bool { return strings.HasPrefix(c.ErrorCode, "AccessDenied") }

// Read reports whether the call reads a secret's value.
func (c Call) Read() bool {
	return c.EventName == "GetSecretValue" || c.EventName == "BatchGetSecretValue"
}

// MovesCurrent reports whether a successful call moved AWSCURRENT: the
// rotation's finish (UpdateSecretVersionStage AWSCURRENT), or a
// PutSecretValue that stages the new value AWSCURRENT (its default).
func (c Call) MovesCurrent() bool {
	if c.ErrorCode != "" {
		return false
	}
	switch c.EventName {
	case "UpdateSecretVersionStage":
		return c.VersionStage == "AWSCURRENT" && c.MoveToVersion != ""
	case "PutSecretValue":
		if c.VersionStages == nil {
			return true
		}
		for _, s := range c.VersionStages {
			if s == "AWSCURRENT" {
				return true
			}
		}
	}
	return false
}

type envelope struct {
	Source     string          `json:"source"`
	DetailType string          `json:"detail-type"`
	Detail     json.RawMessage `json:"detail"`
}

type record struct {
	EventSource  string `json:"eventSource"`
	EventName    string `json:"eventName"`
	EventTime    string `json:"eventTime"`
	EventID      string `json:"eventID"`
	ErrorCode    string `json:"errorCode"`
	UserIdentity struct {
		Type           string `json:"type"`
		ARN            string `json:"arn"`
		SessionContext *struct {
			SessionIssuer struct {
				ARN string `json:"arn"`
			} `json:"sessionIssuer"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
	RequestParameters *struct {
		SecretID        *string  `json:"secretId"`
		SecretIDList    []string `json:"secretIdList"`
		VersionID       *string  `json:"versionId"`
		VersionStage    *string  `json:"versionStage"`
		MoveToVersionID *string  `json:"moveToVersionId"`
		VersionStages   []string `json:"versionStages"`
	} `json:"requestParameters"`
}

// ignored is the error Parse returns for an event the audit does not take:
// an InputError, so that whoever logs it logs a classified error.
func ignored(format string, args ...any) error {
	return &faults.InputError{Detail: faults.Detail{Step: step, Reason: fmt.Sprintf(format, args...)}}
}

// Parse reads one EventBridge event. Anything that is not a Secrets Manager
// CloudTrail API call record, or lacks what the audit needs (event id, time,
// caller), is an *faults.InputError saying why; it never panics.
func Parse(raw []byte) (Call, error) {
	if len(raw) > maxEvent {
		return Call{}, ignored("event of %d bytes is larger than EventBridge delivers", len(raw))
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Call{}, ignored("event is not a JSON object: %v", err)
	}
	if env.Source != Source || env.DetailType != DetailType {
		return Call{}, ignored("foreign event (source %q, detail-type %q)", env.Source, env.DetailType)
	}
	var r record
	if err := json.Unmarshal(env.Detail, &r); err != nil {
		return Call{}, ignored("detail is not a CloudTrail record: %v", err)
	}
	if r.EventSource != EventSource {
		return Call{}, ignored("foreign eventSource %q", r.EventSource)
	}
	if r.EventID == "" || r.EventName == "" {
		return Call{}, ignored("record has no eventID or eventName")
	}
	t, err := time.Parse(time.RFC3339, r.EventTime)
	if err != nil {
		return Call{}, ignored("eventTime %q is not RFC 3339", r.EventTime)
	}
	c := Call{EventID: r.EventID, EventName: r.EventName, Time: t.UTC(), ErrorCode: r.ErrorCode,
		Principal: r.UserIdentity.ARN, PrincipalType: r.UserIdentity.Type}
	if c.Principal == "" {
		return Call{}, ignored("record %s names no caller (userIdentity.arn)", c.EventID)
	}
	c.Consumer = consumerOf(c.Principal)
	if sc := r.UserIdentity.SessionContext; sc != nil && sc.SessionIssuer.ARN != "" {
		c.Consumer = sc.SessionIssuer.ARN
	}
	if p := r.RequestParameters; p != nil {
		if p.SecretID != nil && *p.SecretID != "" {
			c.SecretIDs = append(c.SecretIDs, *p.SecretID)
		}
		for _, id := range p.SecretIDList {
			if id != "" {
				c.SecretIDs = append(c.SecretIDs, id)
			}
		}
		c.VersionID, c.VersionStage, c.MoveToVersion = deref(p.VersionID), deref(p.VersionStage), deref(p.MoveToVersionID)
		c.VersionStages = p.VersionStages
	}
	return c, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// consumerOf maps an assumed-role session ARN
// (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION) to its role's ARN; any
// other ARN is its own consumer.
func consumerOf(arn string) string {
	rest, ok := strings.CutPrefix(arn, "arn:aws:sts::")
	if !ok {
		return arn
	}
	acct, res, ok := strings.Cut(rest, ":assumed-role/")
	if !ok {
		return arn
	}
	role, _, _ := strings.Cut(res, "/")
	return "arn:aws:iam::" + acct + ":role/" + role
}

package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

const timeLayout = "2006-01-02T15:04:05Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

// timePtr is nil for the zero time (JSON omits it).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

// parseDuration accepts Go durations plus a "d" (24 h) and "w" (7 d) unit:
// 90d, 2w, 36h, 1d12h.
func parseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 || i == len(s) {
			break
		}
		unit := s[i]
		if unit != 'd' && unit != 'w' {
			break
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		day := 24 * time.Hour
		if unit == 'w' {
			day *= 7
		}
		total += time.Duration(n * float64(day))
		s = s[i+1:]
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use e.g. 90d, 2w, 36h, 1d12h)", orig)
		}
		total += d
	}
	if total < 0 {
		return 0, fmt.Errorf("negative duration %q", orig)
	}
	return total, nil
}

// fmtAge renders a duration coarsely: 12d3h, 5h20m, 42m, 30s.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtAge(-d)
	case d >= 24*time.Hour:
		days := d / (24 * time.Hour)
		h := (d % (24 * time.Hour)) / time.Hour
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// secretInfo is a secret's metadata and versions (never values).
type secretInfo struct {
	ARN, Name   string
	Deleted     time.Time
	RotationOn  bool
	LastRotated time.Time
	Versions    []versionInfo
}

type versionInfo struct {
	ID      string     `json:"id"`
	Stages  []string   `json:"stages"`
	Created *time.Time `json:"created,omitempty"`
}

// holders returns the versions that carry stage.
func (s secretInfo) holders(stage string) []string {
	var ids []string
	for _, v := range s.Versions {
		if slices.Contains(v.Stages, stage) {
			ids = append(ids, v.ID)
		}
	}
	return ids
}

func (s secretInfo) holder(stage string) string {
	if h := s.holders(stage); len(h) > 0 {
		return h[0]
	}
	return ""
}

// describe reads a secret's metadata and its versions with their creation
// dates; versions are ordered newest first.
func (e *env) describe(id string) (secretInfo, error) {
	out, err := e.deps.SM.DescribeSecret(e.ctx, &sm.DescribeSecretInput{SecretId: &id})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return secretInfo{}, fmt.Errorf("secret %q not found", id)
	}
	if err != nil {
		return secretInfo{}, fmt.Errorf("describe secret %s: %w", id, err)
	}
	s := secretInfo{
		ARN: aws.ToString(out.ARN), Name: aws.ToString(out.Name),
		RotationOn: aws.ToBool(out.RotationEnabled),
	}
	if out.DeletedDate != nil {
		s.Deleted = *out.DeletedDate
	}
	if out.LastRotatedDate != nil {
		s.LastRotated = *out.LastRotatedDate
	}
	created := map[string]time.Time{}
	p := sm.NewListSecretVersionIdsPaginator(e.deps.SM, &sm.ListSecretVersionIdsInput{SecretId: aws.String(s.ARN)})
	for p.HasMorePages() {
		pg, err := p.NextPage(e.ctx)
		if err != nil {
			return secretInfo{}, fmt.Errorf("list versions of %s: %w", s.Name, err)
		}
		for _, v := range pg.Versions {
			if v.CreatedDate != nil {
				created[aws.ToString(v.VersionId)] = *v.CreatedDate
			}
		}
	}
	for id, stages := range out.VersionIdsToStages {
		st := slices.Clone(stages)
		slices.SortFunc(st, stageOrder)
		s.Versions = append(s.Versions, versionInfo{ID: id, Stages: st, Created: timePtr(created[id])})
	}
	slices.SortFunc(s.Versions, func(a, b versionInfo) int {
		ta, tb := time.Time{}, time.Time{}
		if a.Created != nil {
			ta = *a.Created
		}
		if b.Created != nil {
			tb = *b.Created
		}
		if c := tb.Compare(ta); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return s, nil
}

// stageOrder puts AWSCURRENT, AWSPENDING, AWSPREVIOUS first, then the rest
// alphabetically.
func stageOrder(a, b string) int {
	rank := func(s string) int {
		switch s {
		case "AWSCURRENT":
			return 0
		case "AWSPENDING":
			return 1
		case "AWSPREVIOUS":
			return 2
		}
		return 3
	}
	if c := rank(a) - rank(b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// readOnly adapts the DynamoDB reads to ledger.API; secretctl never writes.
type readOnly struct{ DynamoDB }

func (readOnly) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, errors.New("secretctl does not write to the ledger")
}

func (e *env) ledger() *ledger.Ledger {
	return ledger.New(readOnly{e.deps.DB}, e.g.ledgerTable, ledger.Options{Now: e.deps.Now})
}

// record is a journal record as secretctl prints it.
type record struct {
	Time            time.Time `json:"time"`
	Secret          string    `json:"secret"`
	Rotation        int64     `json:"rotation"`
	Seq             int64     `json:"seq"`
	State           string    `json:"state"`
	Actor           string    `json:"actor"`
	Execution       string    `json:"executionArn,omitempty"`
	Version         string    `json:"version,omitempty"`
	PreviousVersion string    `json:"previousVersion,omitempty"`
	ErrorClass      string    `json:"errorClass,omitempty"`
	Detail          string    `json:"detail,omitempty"`
}

func toRecord(r ledger.Record) record {
	return record{
		Time: r.Time(), Secret: r.Secret, Rotation: r.Fencing, Seq: r.Seq, State: string(r.State),
		Actor: r.Actor, Execution: r.Execution, Version: r.Token, PreviousVersion: r.PreviousVersion,
		ErrorClass: r.ErrorClass, Detail: r.Detail,
	}
}

// executionName is the last part of an execution ARN.
func executionName(arn string) string {
	if i := strings.LastIndexByte(arn, ':'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

package cli

import (
	"encoding/csv"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

var auditCmd = &command{
	name: "audit", args: "",
	short: "export every journal record of every secret (no values)",
	long: `Exports the ledger's journal across all secrets, oldest first: time, secret,
rotation (fencing token), sequence, state, actor, execution, version ids,
error class and detail. Journal items never hold secret values.

--since takes an RFC 3339 time (2025-01-31T00:00:00Z) or a duration back
from now (90d, 36h). --format csv|json (default: --output, table or json).

--with-reads merges in the reads the access audit recorded (and the calls
it saw denied), in time order with the rotations: state READ or DENIED,
actor the caller's ARN, version the version read, error class CloudTrail's
errorCode, detail the verdict (declared, trusted, undeclared, denied,
unjudged) and the call.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		since := fs.String("since", "", "only records at or after this `time|duration` (RFC 3339, or e.g. 30d)")
		format := fs.String("format", "", "csv or json (default: the --output format)")
		withReads := fs.Bool("with-reads", false, "merge in the reads the access audit recorded")
		return func(e *env, pos []string) int {
			err := noArgs(pos)
			var from time.Time
			if err == nil && *since != "" {
				from, err = parseSince(*since, e.deps.Now())
			}
			f := *format
			if f == "" {
				f = e.g.output
			}
			if err == nil && f != "csv" && f != "json" && f != "table" {
				err = usagef("--format must be csv or json, not %q", *format)
			}
			if err == nil {
				err = e.audit(from, f, *withReads)
			}
			if err != nil {
				return e.fail("audit", err)
			}
			return ExitOK
		}
	},
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, usagef("--since must be an RFC 3339 time or a duration such as 30d: %q", s)
	}
	return now.Add(-d), nil
}

// journal scans the ledger table for journal items (sk begins with "J#")
// at or after from.
func (e *env) journal(from time.Time) ([]record, error) {
	return e.scanItems(from, "J#", func(it map[string]ddbtypes.AttributeValue) (record, error) {
		r, err := ledger.DecodeRecord(it)
		return toRecord(r), err
	})
}

// reads scans the ledger table for the access audit's items at or after
// from, as audit records.
func (e *env) reads(from time.Time) ([]record, error) {
	return e.scanItems(from, ledger.AccessPrefix, func(it map[string]ddbtypes.AttributeValue) (record, error) {
		a, err := ledger.DecodeAccess(it)
		state := "READ"
		if strings.HasPrefix(a.ErrorCode, "AccessDenied") {
			state = "DENIED"
		}
		return record{Time: a.Time(), Secret: a.Secret, State: state, Actor: a.Principal, Version: a.VersionID,
			ErrorClass: a.ErrorCode, Detail: a.Verdict + " " + a.EventName}, err
	})
}

// scanItems scans the ledger table for the items whose sort key begins
// with prefix, at or after from, oldest first.
func (e *env) scanItems(from time.Time, prefix string, decode func(map[string]ddbtypes.AttributeValue) (record, error)) ([]record, error) {
	in := &dynamodb.ScanInput{
		TableName:        aws.String(e.g.ledgerTable),
		ConsistentRead:   aws.Bool(true),
		FilterExpression: aws.String("begins_with(sk, :j)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":j": &ddbtypes.AttributeValueMemberS{Value: prefix},
		},
	}
	if !from.IsZero() {
		in.FilterExpression = aws.String("begins_with(sk, :j) AND #at >= :since")
		in.ExpressionAttributeNames = map[string]string{"#at": "at"}
		in.ExpressionAttributeValues[":since"] = &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(from.UnixMilli(), 10)}
	}
	var recs []record
	p := dynamodb.NewScanPaginator(e.deps.DB, in)
	for p.HasMorePages() {
		pg, err := p.NextPage(e.ctx)
		if err != nil {
			return nil, fmt.Errorf("scan ledger table %s: %w", e.g.ledgerTable, err)
		}
		for _, it := range pg.Items {
			r, err := decode(it)
			if err != nil {
				return nil, err
			}
			if !from.IsZero() && r.Time.Before(from) {
				continue
			}
			recs = append(recs, r)
		}
	}
	sortRecords(recs)
	return recs, nil
}

func sortRecords(recs []record) {
	slices.SortFunc(recs, func(a, b record) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Secret, b.Secret); c != 0 {
			return c
		}
		if a.Rotation != b.Rotation {
			return int(a.Rotation - b.Rotation)
		}
		return int(a.Seq - b.Seq)
	})
}

func (e *env) audit(from time.Time, format string, withReads bool) error {
	if err := e.needDB(); err != nil {
		return err
	}
	recs, err := e.journal(from)
	if err != nil {
		return err
	}
	if withReads {
		reads, err := e.reads(from)
		if err != nil {
			return err
		}
		recs = append(recs, reads...)
		sortRecords(recs)
	}
	switch format {
	case "json":
		if recs == nil {
			recs = []record{}
		}
		return writeJSON(e.stdout, recs)
	case "csv":
		w := csv.NewWriter(e.stdout)
		_ = w.Write([]string{"time", "secret", "rotation", "seq", "state", "actor", "execution_arn", "version", "previous_version", "error_class", "detail"})
		for _, r := range recs {
			_ = w.Write([]string{r.Time.UTC().Format(time.RFC3339Nano), r.Secret, strconv.FormatInt(r.Rotation, 10), strconv.FormatInt(r.Seq, 10),
				r.State, r.Actor, r.Execution, r.Version, r.PreviousVersion, r.ErrorClass, r.Detail})
		}
		w.Flush()
		return w.Error()
	}
	if len(recs) == 0 {
		fmt.Fprintln(e.stdout, "no journal records")
		return nil
	}
	t := newTable(e.stdout, "TIME", "SECRET", "ROTATION", "SEQ", "STATE", "ACTOR", "VERSION", "ERROR")
	for _, r := range recs {
		t.row(fmtTime(r.Time), secretName(r.Secret), fmt.Sprintf("#%d", r.Rotation), fmt.Sprint(r.Seq), r.State, r.Actor, r.Version, r.ErrorClass)
	}
	t.flush()
	return nil
}

// secretName is the name in a secret's ARN (without the random suffix
// Secrets Manager appends), for tables.
func secretName(arn string) string {
	_, name, ok := strings.Cut(arn, ":secret:")
	if !ok {
		return arn
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 && len(name)-i == 7 {
		return name[:i]
	}
	return name
}

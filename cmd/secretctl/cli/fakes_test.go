package cli_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

// now is the fakes' clock.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func daysAgo(d float64) time.Time { return now.Add(-time.Duration(d * float64(24*time.Hour))) }

// ---- Secrets Manager ----

type fakeVersion struct {
	id      string
	stages  []string
	created time.Time
	value   string
}

type fakeSecret struct {
	name, arn string
	deleted   time.Time
	versions  []fakeVersion
}

type fakeSM struct{ secrets []*fakeSecret }

func (f *fakeSM) find(id string) (*fakeSecret, error) {
	for _, s := range f.secrets {
		if s.name == id || s.arn == id {
			return s, nil
		}
	}
	return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
}

func (f *fakeSM) DescribeSecret(_ context.Context, in *sm.DescribeSecretInput, _ ...func(*sm.Options)) (*sm.DescribeSecretOutput, error) {
	s, err := f.find(aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	out := &sm.DescribeSecretOutput{ARN: aws.String(s.arn), Name: aws.String(s.name), VersionIdsToStages: map[string][]string{}}
	if !s.deleted.IsZero() {
		out.DeletedDate = aws.Time(s.deleted)
	}
	for _, v := range s.versions {
		if len(v.stages) > 0 {
			out.VersionIdsToStages[v.id] = slices.Clone(v.stages)
		}
	}
	return out, nil
}

func (f *fakeSM) ListSecretVersionIds(_ context.Context, in *sm.ListSecretVersionIdsInput, _ ...func(*sm.Options)) (*sm.ListSecretVersionIdsOutput, error) {
	s, err := f.find(aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	out := &sm.ListSecretVersionIdsOutput{ARN: aws.String(s.arn), Name: aws.String(s.name)}
	for _, v := range s.versions {
		out.Versions = append(out.Versions, smtypes.SecretVersionsListEntry{VersionId: aws.String(v.id), VersionStages: v.stages, CreatedDate: aws.Time(v.created)})
	}
	return out, nil
}

func (f *fakeSM) ListSecrets(_ context.Context, in *sm.ListSecretsInput, _ ...func(*sm.Options)) (*sm.ListSecretsOutput, error) {
	out := &sm.ListSecretsOutput{}
	for _, s := range f.secrets {
		if !s.deleted.IsZero() {
			continue
		}
		out.SecretList = append(out.SecretList, smtypes.SecretListEntry{ARN: aws.String(s.arn), Name: aws.String(s.name)})
	}
	return out, nil
}

func (f *fakeSM) GetSecretValue(_ context.Context, in *sm.GetSecretValueInput, _ ...func(*sm.Options)) (*sm.GetSecretValueOutput, error) {
	s, err := f.find(aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	for _, v := range s.versions {
		if in.VersionId != nil && *in.VersionId != v.id {
			continue
		}
		if in.VersionStage != nil && !slices.Contains(v.stages, *in.VersionStage) {
			continue
		}
		return &sm.GetSecretValueOutput{ARN: aws.String(s.arn), Name: aws.String(s.name), VersionId: aws.String(v.id),
			VersionStages: v.stages, SecretString: aws.String(v.value), CreatedDate: aws.Time(v.created)}, nil
	}
	return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret value.")}
}

// ---- DynamoDB ----

type fakeDB struct {
	items []map[string]ddbtypes.AttributeValue
}

func str(item map[string]ddbtypes.AttributeValue, k string) string {
	if v, ok := item[k].(*ddbtypes.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func (f *fakeDB) put(v any) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		panic(err)
	}
	f.items = append(f.items, item)
}

// rotation journals one rotation's states, one minute apart from start.
func (f *fakeDB) rotation(arn string, fencing int64, start time.Time, token, prev, actorPrefix string, states ...ledger.State) {
	for i, st := range states {
		r := ledger.Record{
			PK: "SECRET#" + arn, SK: fmt.Sprintf("J#%012d#%04d", fencing, i+1), Secret: arn, Fencing: fencing, Seq: int64(i + 1),
			State: st, At: start.Add(time.Duration(i) * time.Minute).UnixMilli(), Actor: actorPrefix + strings.ToLower(string(st)),
			Execution: fmt.Sprintf("arn:aws:states:us-east-1:111122223333:execution:rotation:x-%d", fencing), Token: token,
		}
		if i == 0 {
			r.PreviousVersion = prev
		}
		f.put(r)
	}
}

func (f *fakeDB) last(arn string, fencing int64, mut func(*ledger.Record)) {
	// Changes the last journal record of a rotation in place.
	var at int
	for i, it := range f.items {
		if str(it, "pk") == "SECRET#"+arn && strings.HasPrefix(str(it, "sk"), fmt.Sprintf("J#%012d#", fencing)) {
			at = i
		}
	}
	r, err := ledger.DecodeRecord(f.items[at])
	if err != nil {
		panic(err)
	}
	mut(&r)
	item, _ := attributevalue.MarshalMap(r)
	f.items[at] = item
}

func (f *fakeDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	pk, sk := str(in.Key, "pk"), str(in.Key, "sk")
	for _, it := range f.items {
		if str(it, "pk") == pk && str(it, "sk") == sk {
			return &dynamodb.GetItemOutput{Item: it}, nil
		}
	}
	return &dynamodb.GetItemOutput{}, nil
}

func (f *fakeDB) sorted(keep func(map[string]ddbtypes.AttributeValue) bool) []map[string]ddbtypes.AttributeValue {
	var out []map[string]ddbtypes.AttributeValue
	for _, it := range f.items {
		if keep(it) {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b map[string]ddbtypes.AttributeValue) int {
		if c := strings.Compare(str(a, "pk"), str(b, "pk")); c != 0 {
			return c
		}
		return strings.Compare(str(a, "sk"), str(b, "sk"))
	})
	return out
}

func (f *fakeDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	pk, prefix := str(in.ExpressionAttributeValues, ":pk"), str(in.ExpressionAttributeValues, ":j")
	if c := str(in.ExpressionAttributeValues, ":c"); c != "" {
		prefix = c // the consumers' query
	}
	items := f.sorted(func(it map[string]ddbtypes.AttributeValue) bool {
		return str(it, "pk") == pk && strings.HasPrefix(str(it, "sk"), prefix)
	})
	return &dynamodb.QueryOutput{Items: items, Count: int32(len(items))}, nil
}

func (f *fakeDB) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	prefix := str(in.ExpressionAttributeValues, ":j")
	since := int64(0)
	if v, ok := in.ExpressionAttributeValues[":since"].(*ddbtypes.AttributeValueMemberN); ok {
		since, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	items := f.sorted(func(it map[string]ddbtypes.AttributeValue) bool {
		if !strings.HasPrefix(str(it, "sk"), prefix) {
			return false
		}
		at, _ := it["at"].(*ddbtypes.AttributeValueMemberN)
		n := int64(0)
		if at != nil {
			n, _ = strconv.ParseInt(at.Value, 10, 64)
		}
		return n >= since
	})
	// Unordered, as DynamoDB scans are.
	slices.Reverse(items)
	return &dynamodb.ScanOutput{Items: items, Count: int32(len(items))}, nil
}

// ---- Step Functions ----

type fakeExec struct {
	polls   int // DescribeExecution calls answered RUNNING before the end
	status  sfntypes.ExecutionStatus
	errName string
	cause   string
	states  []string // states entered
	failed  map[string]string
	output  string // the output of a SUCCEEDED execution
	// A fleet execution: a Map state over this many secrets, of which
	// mapFailed iterations fail.
	mapItems, mapFailed int
}

type fakeSFN struct {
	mu       sync.Mutex
	next     fakeExec             // what the next StartExecution runs
	execs    map[string]*fakeExec // by ARN
	started  []string             // inputs
	describe int
}

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := strings.Replace(aws.ToString(in.StateMachineArn), ":stateMachine:", ":execution:", 1) + ":" + aws.ToString(in.Name)
	x := f.next
	if f.execs == nil {
		f.execs = map[string]*fakeExec{}
	}
	f.execs[arn] = &x
	f.started = append(f.started, aws.ToString(in.Input))
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(arn), StartDate: aws.Time(now)}, nil
}

func (f *fakeSFN) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describe++
	x := f.execs[aws.ToString(in.ExecutionArn)]
	if x == nil {
		return nil, &sfntypes.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist: '" + aws.ToString(in.ExecutionArn) + "'")}
	}
	out := &sfn.DescribeExecutionOutput{ExecutionArn: in.ExecutionArn, StartDate: aws.Time(now), Status: sfntypes.ExecutionStatusRunning}
	if x.polls > 0 {
		x.polls--
		return out, nil
	}
	out.Status, out.StopDate = x.status, aws.Time(now.Add(4*time.Second))
	if x.errName != "" {
		out.Error, out.Cause = aws.String(x.errName), aws.String(x.cause)
	}
	if x.output != "" {
		out.Output = aws.String(x.output)
	}
	return out, nil
}

func (f *fakeSFN) GetExecutionHistory(_ context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.execs[aws.ToString(in.ExecutionArn)]
	if x == nil {
		return nil, &sfntypes.ExecutionDoesNotExist{Message: aws.String("no such execution")}
	}
	// While "running", the history shows the first half of the states (of
	// a fleet execution: all of them, and half the Map iterations).
	states := x.states
	if x.polls > 0 && x.mapItems == 0 {
		states = states[:len(states)/2]
	}
	var evs []sfntypes.HistoryEvent
	add := func(typ sfntypes.HistoryEventType, fill func(*sfntypes.HistoryEvent)) {
		ev := sfntypes.HistoryEvent{Id: int64(len(evs) + 1), PreviousEventId: int64(len(evs)), Type: typ, Timestamp: aws.Time(now.Add(time.Duration(len(evs)) * time.Second / 2))}
		if fill != nil {
			fill(&ev)
		}
		evs = append(evs, ev)
	}
	add(sfntypes.HistoryEventTypeExecutionStarted, nil)
	for _, s := range states {
		add(sfntypes.HistoryEventTypeTaskStateEntered, func(ev *sfntypes.HistoryEvent) {
			ev.StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String(s)}
		})
		if e, ok := x.failed[s]; ok {
			add(sfntypes.HistoryEventTypeTaskFailed, func(ev *sfntypes.HistoryEvent) {
				ev.TaskFailedEventDetails = &sfntypes.TaskFailedEventDetails{Error: aws.String(e)}
			})
		}
		add(sfntypes.HistoryEventTypeTaskStateExited, nil)
	}
	if x.mapItems > 0 {
		add(sfntypes.HistoryEventTypeMapStateEntered, func(ev *sfntypes.HistoryEvent) {
			ev.StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String("RotateEach")}
		})
		add(sfntypes.HistoryEventTypeMapStateStarted, func(ev *sfntypes.HistoryEvent) {
			ev.MapStateStartedEventDetails = &sfntypes.MapStateStartedEventDetails{Length: int32(x.mapItems)}
		})
		// While "running", half the iterations have ended.
		n := x.mapItems
		if x.polls > 0 {
			n /= 2
		}
		for i := range n {
			add(sfntypes.HistoryEventTypeMapIterationStarted, nil)
			typ := sfntypes.HistoryEventTypeMapIterationSucceeded
			if i >= x.mapItems-x.mapFailed {
				typ = sfntypes.HistoryEventTypeMapIterationFailed
			}
			add(typ, nil)
		}
	}
	return &sfn.GetExecutionHistoryOutput{Events: evs}, nil
}

// Package local runs secretsaga end to end on this machine: the real SDK
// clients against local stand-ins (DynamoDB Local, throwaway PostgreSQL,
// MariaDB and Redis servers, the Secrets Manager, EventBridge and CloudWatch
// endpoints of this repo), the Lambda handlers behind a local Lambda Invoke endpoint,
// and statemachines/rotation.asl.json executed by an ASL interpreter. Tests and the demo both
// use it, so the demo shows exactly what the tests check.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/integration/cwlocal"
	"github.com/secretsaga/secretsaga/integration/eventslocal"
	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/lambdalocal"
	"github.com/secretsaga/secretsaga/integration/latency"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/integration/smlocal"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/config"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
	"github.com/secretsaga/secretsaga/statemachines"
)

const (
	region  = "us-east-1"
	account = "000000000000"
	// Table is the ledger table's name in the local stack.
	Table = "secretsaga-ledger"
)

// Functions are the Lambda functions the state machine calls, by the
// placeholder that carries each one's ARN (from shared/functions, as the
// CDK app fills them).
var Functions = func() map[string]string {
	m := map[string]string{}
	for _, name := range functions.Names() {
		if p := functions.MustGet(name).Placeholder; p != "" {
			m[p] = name
		}
	}
	return m
}()

// FunctionARN is the ARN a function has in the local stack.
func FunctionARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:secretsaga-%s", region, account, name)
}

// Options configure Start.
type Options struct {
	// Stderr receives the stand-ins' start-up failures and the runner's stderr.
	Stderr io.Writer
	// RetryIntervalScale shrinks the ASL's Retry intervals (tests use 0.01).
	RetryIntervalScale float64
	// SecretsManagerWriteRPS limits Secrets Manager writes (0: no limit).
	SecretsManagerWriteRPS float64
	// LeaseDuration for the ledger (default 15 minutes).
	LeaseDuration time.Duration
	// CaptureStdio copies this process's stdout and stderr (file
	// descriptors 1 and 2) into Env.Stdout and Env.Stderr for the leak scan,
	// still passing them on: what the handlers print there goes to
	// CloudWatch Logs in Lambda.
	CaptureStdio bool
	// Latency, if set, records every SDK call and attempt of the
	// handlers' (and the direct Service's) clients, and every handler run
	// through the Lambda endpoint.
	Latency *latency.Recorder
}

// Env is a running local stack.
type Env struct {
	opts Options

	DynamoDB *standin.DynamoDB
	Postgres *standin.Postgres
	MariaDB  *standin.MariaDB
	Redis    *standin.Redis
	SM       *smlocal.Server
	Events   *eventslocal.Server
	Alarms   *cwlocal.Server // CloudWatch: the alarms a bake watches
	Lambda   *lambdalocal.Server
	Runner   *sfnlocal.Runner
	Faults   *faultinject.Injector

	SMURL, EventsURL, LambdaURL string
	CloudWatchURL               string
	AWS                         aws.Config
	SMClient                    *secretsmanager.Client
	DDB                         *dynamodb.Client
	Ledger                      *ledger.Ledger
	// Service is a rotation.Service wired like the functions' (no faults),
	// for direct calls from tests.
	Service *rotation.Service

	// Definition is rotation.asl.json with the local ARNs substituted.
	Definition []byte
	// FleetDefinition is fleet.asl.json, substituted the same way.
	FleetDefinition []byte
	// EphemeralDefinition is ephemeral.asl.json (short-lived logins),
	// substituted the same way.
	EphemeralDefinition []byte
	// Logs holds every log line the handlers wrote (JSON).
	Logs *SyncBuffer
	// Stdout and Stderr hold what this process (handlers included) wrote
	// to file descriptors 1 and 2, with Options.CaptureStdio.
	Stdout, Stderr *SyncBuffer
	// Startup records how long each stand-in took to become ready.
	Startup map[string]time.Duration
	// XRay is the X-Ray daemon the built functions send their traces to
	// (StartBinaries starts it); nil until then.
	XRay *XRayDaemon

	mu         sync.Mutex
	executions []*sfnlocal.Execution // every execution run, for the leak scan
	masterARN  string
	// masters are the alternating strategy's master secrets of the other
	// engines, by engine, created on first use.
	masters map[string]string
	// created is every secret CreateSecret made, masters included, for
	// the leak scan.
	createdMu sync.Mutex
	created   []string
	// gone holds the passwords of secrets deleted without recovery
	// (ForceDelete), recorded before the deletion, for the leak scan.
	gone map[string][]string

	closers []func() error
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
	tee io.Writer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		_, _ = b.tee.Write(p)
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start brings the whole stack up. Close it when done.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	e := &Env{opts: o, Faults: &faultinject.Injector{}, Logs: &SyncBuffer{}, Startup: map[string]time.Duration{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if o.CaptureStdio {
		// First in, last closed: it sees everything up to the end.
		e.Stdout, e.Stderr = &SyncBuffer{}, &SyncBuffer{}
		stop, err := captureStdio(e.Stdout, e.Stderr)
		if err != nil {
			return nil, fmt.Errorf("capture stdout and stderr: %w", err)
		}
		e.closers = append(e.closers, func() error { stop(); return nil })
	}
	// The slow stand-ins start concurrently; each records its own time,
	// and Startup is written once they are all done.
	var wg sync.WaitGroup
	var ddbErr, pgErr, runErr, mdbErr, redisErr error
	var ddbT, pgT, runT, mdbT, redisT time.Duration
	timed := func(d *time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			f()
			*d = time.Since(t)
		}()
	}
	timed(&ddbT, func() { e.DynamoDB, ddbErr = standin.StartDynamoDB(ctx, "") })
	timed(&pgT, func() { e.Postgres, pgErr = standin.StartPostgres(ctx, "") })
	timed(&runT, func() { e.Runner, runErr = sfnlocal.Start(ctx, sfnlocal.Options{Stderr: o.Stderr}) })
	timed(&mdbT, func() { e.MariaDB, mdbErr = standin.StartMariaDB(ctx, "") })
	timed(&redisT, func() { e.Redis, redisErr = standin.StartRedis(ctx, "") })
	wg.Wait()
	e.Startup["DynamoDB Local"] = ddbT
	e.Startup["PostgreSQL"] = pgT
	e.Startup["ASL runner (node)"] = runT
	e.Startup["MariaDB"] = mdbT
	e.Startup["Redis"] = redisT
	// Close whichever started, even when another failed.
	for _, c := range []struct {
		started bool
		close   func() error
	}{
		{e.DynamoDB != nil, e.DynamoDB.Close}, {e.Postgres != nil, e.Postgres.Close}, {e.Runner != nil, e.Runner.Close},
		{e.MariaDB != nil, e.MariaDB.Close}, {e.Redis != nil, e.Redis.Close},
	} {
		if c.started {
			e.closers = append(e.closers, c.close)
		}
	}
	if err := errors.Join(ddbErr, pgErr, runErr, mdbErr, redisErr); err != nil {
		return nil, err
	}

	if e.Events, e.EventsURL, err = eventslocal.Start(); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.Events.Close)
	e.Events.SetAccount(account, region)
	t := time.Now()
	// CloudTrail's records of the Secrets Manager calls go to the default
	// bus, where rules (the access audit's) match them.
	events := e.Events
	trail := func(r smlocal.TrailRecord) {
		events.Deliver(eventslocal.Entry{Time: r.Time, Source: smlocal.TrailSource, DetailType: smlocal.TrailDetailType, Detail: r.Detail})
	}
	if e.SM, e.SMURL, err = smlocal.Start(smlocal.Options{Region: region, AccountID: account, WriteRPS: o.SecretsManagerWriteRPS, Trail: trail}); err != nil {
		return nil, err
	}
	e.Startup["Secrets Manager (in-process)"] = time.Since(t)
	e.closers = append(e.closers, e.SM.Close)
	if e.Alarms, e.CloudWatchURL, err = cwlocal.Start(); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.Alarms.Close)

	if e.AWS, err = standin.AWSConfig(ctx); err != nil {
		return nil, err
	}
	e.SMClient = secretsmanager.NewFromConfig(e.AWS, func(so *secretsmanager.Options) { so.BaseEndpoint = &e.SMURL })
	e.DDB = dynamodb.NewFromConfig(e.AWS, standin.LocalDynamoDBOptions(e.DynamoDB.Endpoint))
	if err := CreateLedgerTable(ctx, e.DDB, Table); err != nil {
		return nil, err
	}
	e.Ledger = ledger.New(e.DDB, Table, ledger.Options{LeaseDuration: o.LeaseDuration})
	if e.Service, err = e.service("direct", false); err != nil {
		return nil, err
	}

	e.Lambda = lambdalocal.New()
	if err := e.registerFunctions(); err != nil {
		return nil, err
	}
	if e.LambdaURL, err = e.Lambda.Start(); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.Lambda.Close)
	// RotateSecret invokes rotation functions (registered on e.Lambda)
	// through the same Invoke endpoint the state machine uses.
	e.SM.SetLambdaEndpoint(e.LambdaURL)

	subs := map[string]string{"LedgerTableName": Table}
	for placeholder, fn := range Functions {
		subs[placeholder] = FunctionARN(fn)
	}
	if e.Definition, err = sfnlocal.Substitute(statemachines.Rotation, subs); err != nil {
		return nil, err
	}
	if e.FleetDefinition, err = sfnlocal.Substitute(statemachines.Fleet, subs); err != nil {
		return nil, err
	}
	if e.EphemeralDefinition, err = sfnlocal.Substitute(statemachines.Ephemeral, subs); err != nil {
		return nil, err
	}
	return e, nil
}

// service wires a rotation.Service exactly as config.FromEnv does in Lambda,
// with local endpoints and, if faults is set, the fault injector.
func (e *Env) service(actor string, faults bool) (*rotation.Service, error) {
	return config.New(e.configOptions(actor, faults))
}

// FunctionService is the Service the named function runs, fault injection
// included: a test drives the steps itself with it (e.g. to let an
// execution die at a chosen call).
func (e *Env) FunctionService(name string) (*rotation.Service, error) {
	return e.service(name, true)
}

// ExpireLease makes the secret's lease expire now, as it would once its
// holder has been dead for the lease duration.
func (e *Env) ExpireLease(ctx context.Context, secretARN string) error {
	_, err := e.DDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(Table),
		Key: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "SECRET#" + secretARN},
			"sk": &ddbtypes.AttributeValueMemberS{Value: "LEASE"},
		},
		UpdateExpression:    aws.String("SET leaseUntil = :past"),
		ConditionExpression: aws.String("attribute_exists(pk) AND leaseUntil > :zero"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":past": &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(time.Now().Add(-time.Minute).UnixMilli())},
			":zero": &ddbtypes.AttributeValueMemberN{Value: "0"},
		},
	})
	var ccf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // no lease, or one held until an operator acts
	}
	return err
}

// RepairService is the repair function's Service (fault injection
// included) with the backoff p: a test runs the repair as its schedule
// would, with seconds where the deployment has hours.
func (e *Env) RepairService(p rotation.RepairPolicy) (*rotation.Service, error) {
	svc, err := e.service("repair", true)
	if err != nil {
		return nil, err
	}
	svc.RepairPolicy = p
	return svc, nil
}

// ServiceWithClock is a Service (no faults) whose clock is now: a test
// plays an execution from the past with it (e.g. one whose lease has
// expired since).
func (e *Env) ServiceWithClock(actor string, now func() time.Time) (*rotation.Service, error) {
	o := e.configOptions(actor, false)
	o.Ledger.Now = now
	svc, err := config.New(o)
	if err != nil {
		return nil, err
	}
	svc.Now = now
	return svc, nil
}

func (e *Env) configOptions(actor string, faults bool) config.Options {
	o := config.Options{
		AWS: e.AWS, LedgerTable: Table, Actor: actor,
		SecretsManagerEndpoint: e.SMURL, DynamoDBEndpoint: e.DynamoDB.Endpoint, EventBridgeEndpoint: e.EventsURL,
		CloudWatchEndpoint: e.CloudWatchURL,
		Ledger:             ledger.Options{LeaseDuration: e.opts.LeaseDuration},
		Log:                slog.New(slog.NewJSONHandler(e.Logs, nil)).With("function", actor),
	}
	if e.opts.Latency != nil {
		o.APIOptions = append(o.APIOptions, e.opts.Latency.APIOption)
	}
	if faults {
		// Calls through this Service count as actor's when the context
		// names no function (a test calling the Service directly).
		o.APIOptions = append(o.APIOptions, e.Faults.APIOptionAs(actor))
		o.WrapEngine = e.Faults.WrapEngine
	}
	return o
}

// withFunction marks the handler's context so fault rules can name it,
// and times each run as "Lambda.<name>" if rec is set.
func withFunction[In, Out any](rec *latency.Recorder, name string, h func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		start := time.Now()
		out, err := h(faultinject.WithFunction(ctx, name), in)
		if rec != nil {
			rec.Observe("Lambda."+name, time.Since(start), err)
		}
		return out, err
	}
}

func (e *Env) registerFunctions() error {
	handlers := map[string]func(*rotation.Service) any{
		"acquirelease": func(s *rotation.Service) any { return withFunction(e.opts.Latency, "acquirelease", s.Acquire) },
		"createsecret": func(s *rotation.Service) any { return withFunction(e.opts.Latency, "createsecret", s.Create) },
		"setsecret":    func(s *rotation.Service) any { return withFunction(e.opts.Latency, "setsecret", s.Set) },
		"testsecret":   func(s *rotation.Service) any { return withFunction(e.opts.Latency, "testsecret", s.Test) },
		"finishsecret": func(s *rotation.Service) any { return withFunction(e.opts.Latency, "finishsecret", s.Finish) },
		"verify":       func(s *rotation.Service) any { return withFunction(e.opts.Latency, "verify", s.Verify) },
		"releaselease": func(s *rotation.Service) any { return withFunction(e.opts.Latency, "releaselease", s.Release) },
		"compensate":   func(s *rotation.Service) any { return withFunction(e.opts.Latency, "compensate", s.Compensate) },
		"repair":       func(s *rotation.Service) any { return withFunction(e.opts.Latency, "repair", s.Repair) },
	}
	for name, h := range handlers {
		svc, err := e.service(name, true)
		if err != nil {
			return err
		}
		// The deployed timeout (shared/functions), so that a step too slow
		// for AWS is too slow here.
		e.Lambda.Register("secretsaga-"+name, h(svc), functions.MustGet(name).Timeout)
	}
	ephemeralHandlers := map[string]func(*ephemeral.Service) any{
		"ephemeralissue":  func(s *ephemeral.Service) any { return withFunction(e.opts.Latency, "ephemeralissue", s.Issue) },
		"ephemeralstatus": func(s *ephemeral.Service) any { return withFunction(e.opts.Latency, "ephemeralstatus", s.Status) },
		"ephemeralrevoke": func(s *ephemeral.Service) any { return withFunction(e.opts.Latency, "ephemeralrevoke", s.Revoke) },
		"ephemeralalert":  func(s *ephemeral.Service) any { return withFunction(e.opts.Latency, "ephemeralalert", s.Alert) },
		"ephemeralsweep":  func(s *ephemeral.Service) any { return withFunction(e.opts.Latency, "ephemeralsweep", s.Sweep) },
	}
	for name, h := range ephemeralHandlers {
		svc, err := e.EphemeralService(name, true)
		if err != nil {
			return err
		}
		e.Lambda.Register("secretsaga-"+name, h(svc), functions.MustGet(name).Timeout)
	}
	fleet := config.NewFleet(e.configOptions("fleet", true))
	e.Lambda.Register("secretsaga-listsecrets", withFunction(e.opts.Latency, "listsecrets", fleet.List), functions.MustGet("listsecrets").Timeout)
	e.Lambda.Register("secretsaga-fleetsummary", withFunction(e.opts.Latency, "fleetsummary", fleet.Summarize), functions.MustGet("fleetsummary").Timeout)
	e.Lambda.Register("secretsaga-fleetreport", withFunction(e.opts.Latency, "fleetreport", fleet.Report), functions.MustGet("fleetreport").Timeout)
	return nil
}

// Latency is Options.Latency: nil unless Start was given one.
func (e *Env) Latency() *latency.Recorder { return e.opts.Latency }

// Execute runs one execution of the rotation state machine to its end.
func (e *Env) Execute(ctx context.Context, name string, input any) (*sfnlocal.Execution, error) {
	return e.execute(ctx, e.Definition, name, input)
}

func (e *Env) execute(ctx context.Context, def []byte, name string, input any) (*sfnlocal.Execution, error) {
	x, err := e.Runner.Execute(ctx, sfnlocal.Request{
		Definition: def, Name: name, Input: input,
		LambdaEndpoint: e.LambdaURL, RetryIntervalScale: e.opts.RetryIntervalScale,
	})
	if x != nil {
		e.mu.Lock()
		e.executions = append(e.executions, x)
		e.mu.Unlock()
	}
	return x, err
}

// ExecuteEphemeral runs one execution of the short-lived login state
// machine to its end (its Wait state waits out the lease's TTL).
func (e *Env) ExecuteEphemeral(ctx context.Context, name string, input any) (*sfnlocal.Execution, error) {
	return e.execute(ctx, e.EphemeralDefinition, name, input)
}

// ExecuteFleet runs one execution of the fleet state machine to its end.
func (e *Env) ExecuteFleet(ctx context.Context, name string, input any) (*sfnlocal.Execution, error) {
	return e.execute(ctx, e.FleetDefinition, name, input)
}

// Close tears everything down, newest first.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		_ = e.closers[i]()
	}
	e.closers = nil
}

// CreateLedgerTable creates the ledger table as the CDK app defines it (pk,
// sk; on demand; the sparse repair and ephemeral indexes) and waits until it is active.
func CreateLedgerTable(ctx context.Context, db *dynamodb.Client, name string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &name, BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(ledger.RepairQueueAttr), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(ledger.EphemeralQueueAttr), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(ledger.EphemeralDueAttr), AttributeType: ddbtypes.ScalarAttributeTypeN},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange},
		},
		// Only lease items awaiting repair carry repairQueue, so the index
		// holds exactly the repair queue.
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{{
			IndexName:  aws.String(ledger.RepairIndex),
			KeySchema:  []ddbtypes.KeySchemaElement{{AttributeName: aws.String(ledger.RepairQueueAttr), KeyType: ddbtypes.KeyTypeHash}},
			Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll},
		}, {
			// Only open short-lived login leases carry ephemeralQueue:
			// the sweeper's "due before now" query (shared/ledger).
			IndexName: aws.String(ledger.EphemeralIndex),
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String(ledger.EphemeralQueueAttr), KeyType: ddbtypes.KeyTypeHash},
				{AttributeName: aws.String(ledger.EphemeralDueAttr), KeyType: ddbtypes.KeyTypeRange},
			},
			Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll},
		}},
	})
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create ledger table: %w", err)
	}
	return dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: &name}, 30*time.Second)
}

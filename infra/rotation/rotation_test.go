package rotation_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/secretsaga/secretsaga/infra/rotation"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/statemachines"
)

// assetDir holds a dummy <name>/bootstrap per handler, so that the tests do
// not depend on `make build`.
var assetDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secretsaga-infra-test-")
	if err != nil {
		panic(err)
	}
	for _, h := range append(slices.Clone(rotation.Handlers), rotation.EphemeralHandlers...) {
		if err := os.MkdirAll(filepath.Join(dir, h.Name), 0o755); err != nil {
			panic(err)
		}
		if err := os.WriteFile(filepath.Join(dir, h.Name, "bootstrap"), []byte("#!/bin/sh\necho "+h.Name+"\n"), 0o755); err != nil {
			panic(err)
		}
	}
	assetDir = dir
	code := m.Run()
	jsii.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// synth builds a stack once per props and returns its template (as the
// assertions object and as JSON).
type synthesized struct {
	tmpl  assertions.Template
	doc   template
	stack awscdk.Stack
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*synthesized{}
)

// featureFlags is the context of the repository's cdk.json: the tests
// synthesize with the same feature flags as `cdk synth`.
func featureFlags(t *testing.T) *map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c.Context
}

// synth synthesizes a stack once per name. Names starting with "legacy"
// use no feature flags (an app that drops the construct into an old project).
func synth(t *testing.T, name string, props rotation.RotationProps) *synthesized {
	t.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if s, ok := cache[name]; ok {
		return s
	}
	props.LambdaAssetDir = assetDir
	var ap *awscdk.AppProps
	if !strings.HasPrefix(name, "legacy") {
		ap = &awscdk.AppProps{Context: featureFlags(t)}
	}
	app := awscdk.NewApp(ap)
	// cdk-nag's AwsSolutions pack checks every stack the tests build: an
	// unsuppressed error fails the synthesis (the feature flags turn error
	// annotations into a failed validation), and TestCdkNag asserts that
	// no error or warning is left either way.
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Reports: jsii.Bool(false)}), nil)
	sp := rotation.RotationStackProps{Rotation: props}
	if strings.HasPrefix(name, "env") {
		sp.Env = &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String("eu-west-1")}
	}
	stack := rotation.NewRotationStack(app, "Test", &sp)
	tmpl := synthesize(t, name, stack)
	b, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var doc template
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	s := &synthesized{tmpl: tmpl, doc: doc, stack: stack}
	cache[name] = s
	return s
}

// synthesize is Template_FromStack with a failed synthesis (cdk-nag's
// errors among others) as a test failure rather than a panic of the test
// binary; the findings are printed above it.
func synthesize(t *testing.T, name string, stack awscdk.Stack) (tmpl assertions.Template) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("synthesizing %s: %v", name, r)
		}
	}()
	return assertions.Template_FromStack(stack, nil)
}

func defaults(t *testing.T) *synthesized { return synth(t, "defaults", rotation.RotationProps{}) }

func configured(t *testing.T) *synthesized { return synth(t, "configured", configuredProps) }

func legacy(t *testing.T) *synthesized { return synth(t, "legacy-configured", configuredProps) }

func noFleet(t *testing.T) *synthesized {
	return synth(t, "nofleet", rotation.RotationProps{FleetEnabled: jsii.Bool(false)})
}

func noNative(t *testing.T) *synthesized {
	return synth(t, "nonative", rotation.RotationProps{NativeRotationEnabled: jsii.Bool(false)})
}

// The functions, written out independently of rotation.Handlers.
var (
	sagaFunctions  = []string{"acquirelease", "createsecret", "setsecret", "testsecret", "finishsecret", "verify", "releaselease", "compensate"}
	fleetFunctions = []string{"listsecrets", "fleetsummary", "fleetreport"}
	// fleetInvokes: what the fleet state machine invokes (the saga's and its own).
	fleetInvokes = append(slices.Clone(sagaFunctions), fleetFunctions...)
	// nativeFunction is the Secrets Manager native rotation entry; no state
	// machine invokes it.
	nativeFunction = "nativerotation"
	// repairFunction heals COMPENSATION_FAILED secrets; its schedule runs it.
	repairFunction = "repair"
	allFunctions   = append(slices.Clone(fleetInvokes), nativeFunction, repairFunction)
	// targetFunctions log in to databases: they go into the VPC.
	targetFunctions = []string{"createsecret", "setsecret", "testsecret", "verify", "compensate", repairFunction}
	// ledgerFunctions use the ledger table.
	ledgerFunctions = append(slices.Clone(sagaFunctions), repairFunction)
)

var configuredProps = rotation.RotationProps{
	RotationGroup:    "payments",
	SecretKmsKeyArns: []string{"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
	AlarmEmail:       "ops@example.com",
	VerifyEnabled:    true,
	BakeAlarmNames:   []string{"api-5xx", "api-latency"},
	Schedules: []rotation.ScheduleProps{
		{Name: "orders-db", SecretArn: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-db-AbCdEf", Expression: "rate(30 days)"},
		{Name: "billing-db", SecretId: "billing/db", Expression: "cron(0 3 ? * SUN *)", Timezone: "Europe/Paris", Verify: jsii.Bool(false)},
	},
}

// --- template JSON helpers ---------------------------------------------------

type template struct {
	Resources map[string]resource `json:"Resources"`
	Outputs   map[string]any      `json:"Outputs"`
}

type resource struct {
	Type           string         `json:"Type"`
	Properties     map[string]any `json:"Properties"`
	DeletionPolicy string         `json:"DeletionPolicy"`
	Metadata       map[string]any `json:"Metadata"`
}

type statement struct {
	Sid       string `json:"Sid"`
	Effect    string `json:"Effect"`
	Action    any    `json:"Action"`
	Resource  any    `json:"Resource"`
	Condition any    `json:"Condition"`
}

func (s statement) actions() []string {
	var out []string
	for _, a := range list(s.Action) {
		out = append(out, a.(string))
	}
	return out
}

func (s statement) resources() []any { return list(s.Resource) }

func list(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		return []any{v}
	}
}

// ref returns the logical id behind {"Ref": id} or {"Fn::GetAtt": [id, ...]}.
func ref(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if r, ok := m["Ref"].(string); ok {
		return r
	}
	if g, ok := m["Fn::GetAtt"].([]any); ok && len(g) > 0 {
		s, _ := g[0].(string)
		return s
	}
	return ""
}

func (d template) ofType(typ string) map[string]resource {
	out := map[string]resource{}
	for id, r := range d.Resources {
		if r.Type == typ {
			out[id] = r
		}
	}
	return out
}

func (d template) one(t *testing.T, typ string) (string, resource) {
	t.Helper()
	rs := d.ofType(typ)
	if len(rs) != 1 {
		t.Fatalf("want one %s, got %d", typ, len(rs))
	}
	for id, r := range rs {
		return id, r
	}
	panic("unreachable")
}

// functions maps handler name → logical id of its AWS::Lambda::Function,
// found by the "secretsaga <name>:" description.
// busID is the logical id of the stack's one event bus.
func (d template) busID(t *testing.T) string {
	t.Helper()
	id, _ := d.one(t, "AWS::Events::EventBus")
	return id
}

func (d template) functions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, r := range d.ofType("AWS::Lambda::Function") {
		desc, _ := r.Properties["Description"].(string)
		name, _, ok := strings.Cut(strings.TrimPrefix(desc, "secretsaga "), ":")
		if !ok {
			t.Fatalf("function %s: description %q does not name the handler", id, desc)
		}
		out[name] = id
	}
	return out
}

// machines maps "rotation" and "fleet" to the logical id of the state
// machine whose DefinitionString is statemachines.Rotation or .Fleet.
func (d template) machines(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, r := range d.ofType("AWS::StepFunctions::StateMachine") {
		switch r.Properties["DefinitionString"] {
		case string(statemachines.Rotation):
			out["rotation"] = id
		case string(statemachines.Fleet):
			out["fleet"] = id
		case string(statemachines.Ephemeral):
			out["ephemeral"] = id
		default:
			t.Fatalf("state machine %s: DefinitionString is neither rotation.asl.json nor fleet.asl.json", id)
		}
	}
	if out["rotation"] == "" {
		t.Fatal("no rotation state machine")
	}
	return out
}

// statements returns every statement of the identity policies attached to a
// role: AWS::IAM::Policy resources and inline Policies. Managed policies are
// not allowed on our roles at all.
func (d template) statements(t *testing.T, roleID string) []statement {
	t.Helper()
	role, ok := d.Resources[roleID]
	if !ok || role.Type != "AWS::IAM::Role" {
		t.Fatalf("%s is not a role", roleID)
	}
	if m := role.Properties["ManagedPolicyArns"]; m != nil {
		t.Errorf("role %s has managed policies %v", roleID, m)
	}
	var docs []any
	for _, p := range list(role.Properties["Policies"]) {
		docs = append(docs, p.(map[string]any)["PolicyDocument"])
	}
	for _, p := range d.ofType("AWS::IAM::Policy") {
		for _, r := range list(p.Properties["Roles"]) {
			if ref(r) == roleID {
				docs = append(docs, p.Properties["PolicyDocument"])
			}
		}
	}
	var out []statement
	for _, doc := range docs {
		b, _ := json.Marshal(doc.(map[string]any)["Statement"])
		var ss []statement
		if err := json.Unmarshal(b, &ss); err != nil {
			t.Fatal(err)
		}
		out = append(out, ss...)
	}
	return out
}

func allStatements(t *testing.T, d template) map[string][]statement {
	out := map[string][]statement{}
	for id := range d.ofType("AWS::IAM::Role") {
		out[id] = d.statements(t, id)
	}
	return out
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// --- tests -------------------------------------------------------------------

func TestResourceCounts(t *testing.T) {
	d := defaults(t)
	for typ, n := range map[string]int{
		"AWS::Lambda::Function":            13, // 8 saga steps + listsecrets, fleetsummary, fleetreport + nativerotation + repair
		"AWS::Lambda::Permission":          1,  // Secrets Manager may invoke nativerotation
		"AWS::StepFunctions::StateMachine": 2,  // rotation saga + fleet
		"AWS::DynamoDB::Table":             1,
		"AWS::Events::EventBus":            1,
		"AWS::Events::Rule":                2,
		"AWS::SNS::Topic":                  1,
		"AWS::SNS::Subscription":           0,
		"AWS::CloudWatch::Alarm":           34, // 3 per state machine, 2 per function, the ledger's, the dead letters'
		"AWS::Logs::MetricFilter":          12, // expected errors of the 10 functions that return the taxonomy, 2 on the rotation machine's log
		"AWS::Scheduler::Schedule":         1,  // the repair's
		"AWS::SQS::Queue":                  1,  // the schedules' dead letters
		"AWS::Logs::LogGroup":              15, // 13 functions + 2 state machines
		"AWS::IAM::Role":                   16, // 13 functions + 2 state machines + the repair schedule's
	} {
		d.tmpl.ResourceCountIs(jsii.String(typ), jsii.Number(n))
	}
	c := configured(t)
	c.tmpl.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(3))
	c.tmpl.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(1))
	c.tmpl.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(17))
	n := noFleet(t)
	for typ, want := range map[string]int{
		"AWS::Lambda::Function":            10,
		"AWS::StepFunctions::StateMachine": 1,
		"AWS::Events::Rule":                2,
		"AWS::CloudWatch::Alarm":           25, // 3 + 2 × 10 functions + 2
		"AWS::Logs::MetricFilter":          12, // no fleet function returns the taxonomy
		"AWS::Logs::LogGroup":              11,
		"AWS::IAM::Role":                   12,
	} {
		n.tmpl.ResourceCountIs(jsii.String(typ), jsii.Number(want))
	}
	if _, ok := n.doc.Outputs["FleetStateMachineArn"]; ok {
		t.Error("FleetStateMachineArn output without a fleet")
	}
	nn := noNative(t)
	for typ, want := range map[string]int{
		"AWS::Lambda::Function":            12,
		"AWS::Lambda::Permission":          0,
		"AWS::StepFunctions::StateMachine": 2,
		"AWS::Logs::LogGroup":              14,
		"AWS::IAM::Role":                   15,
	} {
		nn.tmpl.ResourceCountIs(jsii.String(typ), jsii.Number(want))
	}
	if _, ok := nn.doc.Outputs["NativeRotationFunctionArn"]; ok {
		t.Error("NativeRotationFunctionArn output without the native rotation entry")
	}
	if _, ok := nn.doc.functions(t)[nativeFunction]; ok {
		t.Error("nativerotation deployed with NativeRotationEnabled false")
	}
	c.tmpl.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
		"Protocol": "email", "Endpoint": "ops@example.com",
	})
	for id, r := range d.doc.ofType("AWS::Logs::LogGroup") {
		if r.DeletionPolicy != "Retain" || r.Properties["RetentionInDays"] != 30.0 {
			t.Errorf("log group %s: DeletionPolicy %q, retention %v", id, r.DeletionPolicy, r.Properties["RetentionInDays"])
		}
	}
	for _, o := range []string{"StateMachineArn", "FleetStateMachineArn", "NativeRotationFunctionArn", "LedgerTableName", "EventBusName", "AlertTopicArn"} {
		d.tmpl.HasOutput(jsii.String(o), map[string]any{})
	}
}

func TestFunctions(t *testing.T) {
	d := defaults(t)
	fns := d.doc.functions(t)
	if len(fns) != len(allFunctions) || len(rotation.Handlers) != len(allFunctions) {
		t.Fatalf("functions %v, handlers %d, want %v", fns, len(rotation.Handlers), allFunctions)
	}
	for _, name := range allFunctions {
		if _, ok := fns[name]; !ok {
			t.Errorf("no function %s", name)
		}
	}
	reserved := []string{"setsecret", "testsecret", "verify", "compensate"}
	for _, h := range rotation.Handlers {
		id, ok := fns[h.Name]
		if !ok {
			t.Errorf("no function for %s", h.Name)
			continue
		}
		p := d.doc.Resources[id].Properties
		want := map[string]any{
			"Runtime":       "provided.al2023",
			"Architectures": []any{"arm64"},
			"Handler":       "bootstrap",
			// The one table the local stack runs the functions with.
			"MemorySize":    float64(functions.MustGet(h.Name).MemoryMB),
			"Timeout":       functions.MustGet(h.Name).Timeout.Seconds(),
			"TracingConfig": map[string]any{"Mode": "Active"},
		}
		for k, v := range want {
			if jsonString(p[k]) != jsonString(v) {
				t.Errorf("%s: %s = %s, want %s", h.Name, k, jsonString(p[k]), jsonString(v))
			}
		}
		if ph := functions.MustGet(h.Name).Placeholder; h.Placeholder != ph {
			t.Errorf("%s: placeholder %q, shared/functions says %q", h.Name, h.Placeholder, ph)
		}
		rc, hasRC := p["ReservedConcurrentExecutions"]
		if slices.Contains(reserved, h.Name) {
			if rc != float64(rotation.DefaultReservedConcurrency) {
				t.Errorf("%s: ReservedConcurrentExecutions = %v", h.Name, rc)
			}
		} else if hasRC {
			t.Errorf("%s: unexpected ReservedConcurrentExecutions %v", h.Name, rc)
		}
		if h.Name == "fleetreport" {
			// Only the bus its events go to.
			want := jsonString(map[string]any{"Variables": map[string]any{"EVENT_BUS_NAME": map[string]any{"Ref": d.doc.busID(t)}}})
			if got := jsonString(p["Environment"]); got != want {
				t.Errorf("%s: environment %s, want %s", h.Name, got, want)
			}
		} else if slices.Contains(fleetFunctions, h.Name) {
			// listsecrets and fleetsummary use neither the ledger nor the bus.
			if env, ok := p["Environment"]; ok {
				t.Errorf("%s: environment %s", h.Name, jsonString(env))
			}
		} else if h.Name == nativeFunction {
			// Only the rotation state machine's ARN.
			want := jsonString(map[string]any{"Variables": map[string]any{"STATE_MACHINE_ARN": map[string]any{"Ref": d.doc.machines(t)["rotation"]}}})
			if got := jsonString(p["Environment"]); got != want {
				t.Errorf("%s: environment %s, want %s", h.Name, got, want)
			}
		} else {
			vars := p["Environment"].(map[string]any)["Variables"].(map[string]any)
			tableID, _ := d.doc.one(t, "AWS::DynamoDB::Table")
			busID, _ := d.doc.one(t, "AWS::Events::EventBus")
			if ref(vars["LEDGER_TABLE"]) != tableID || ref(vars["EVENT_BUS_NAME"]) != busID {
				t.Errorf("%s: environment %v", h.Name, vars)
			}
		}
		// Exactly the variables shared/functions lists for the function
		// (the list the local stack runs the built binaries with), less the
		// optional ones this default stack does not configure.
		if got, want := envNames(p), requiredEnv(h.Name); !slices.Equal(got, want) {
			t.Errorf("%s: environment variables %v, shared/functions lists %v", h.Name, got, want)
		}
		lg := ref(p["LoggingConfig"].(map[string]any)["LogGroup"])
		if r := d.doc.Resources[lg]; r.Type != "AWS::Logs::LogGroup" || r.Properties["RetentionInDays"] != 30.0 {
			t.Errorf("%s: log group %s %v", h.Name, lg, r.Properties)
		}
	}
}

func TestTable(t *testing.T) {
	d := defaults(t)
	d.tmpl.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{
		"DeletionPolicy":      "Retain",
		"UpdateReplacePolicy": "Retain",
		"Properties": map[string]any{
			"BillingMode": "PAY_PER_REQUEST",
			"KeySchema": []any{
				map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
				map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
			},
			"AttributeDefinitions": []any{
				map[string]any{"AttributeName": "pk", "AttributeType": "S"},
				map[string]any{"AttributeName": "sk", "AttributeType": "S"},
				map[string]any{"AttributeName": "repairQueue", "AttributeType": "S"},
				map[string]any{"AttributeName": "ephemeralQueue", "AttributeType": "S"},
				map[string]any{"AttributeName": "revokeAt", "AttributeType": "N"},
			},
			// The repair queue and the open short-lived logins: sparse
			// indexes (only leases awaiting repair carry repairQueue, only
			// open short-lived logins ephemeralQueue), as
			// local.CreateLedgerTable makes them.
			"GlobalSecondaryIndexes": []any{map[string]any{
				"IndexName":  "repair",
				"KeySchema":  []any{map[string]any{"AttributeName": "repairQueue", "KeyType": "HASH"}},
				"Projection": map[string]any{"ProjectionType": "ALL"},
			}, map[string]any{
				"IndexName": "ephemeral",
				"KeySchema": []any{
					map[string]any{"AttributeName": "ephemeralQueue", "KeyType": "HASH"},
					map[string]any{"AttributeName": "revokeAt", "KeyType": "RANGE"},
				},
				"Projection": map[string]any{"ProjectionType": "ALL"},
			}},
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"DeletionProtectionEnabled":        true,
			"TimeToLiveSpecification":          map[string]any{"AttributeName": "expiresAt", "Enabled": true},
		},
	})
}

func TestStateMachine(t *testing.T) {
	d := defaults(t)
	ms := d.doc.machines(t)
	if len(ms) != 2 {
		t.Fatalf("state machines %v, want rotation and fleet", ms)
	}
	logGroups := map[string]bool{}
	for kind, def := range map[string][]byte{"rotation": statemachines.Rotation, "fleet": statemachines.Fleet} {
		t.Run(kind, func(t *testing.T) {
			p := d.doc.Resources[ms[kind]].Properties
			if p["StateMachineType"] != "STANDARD" {
				t.Errorf("StateMachineType = %v", p["StateMachineType"])
			}
			lc := p["LoggingConfiguration"].(map[string]any)
			if lc["Level"] != "ALL" || lc["IncludeExecutionData"] != false {
				t.Errorf("LoggingConfiguration = %s", jsonString(lc))
			}
			dest := list(lc["Destinations"])
			lg := ""
			if len(dest) == 1 {
				lg = ref(dest[0].(map[string]any)["CloudWatchLogsLogGroup"].(map[string]any)["LogGroupArn"])
			}
			if d.doc.Resources[lg].Type != "AWS::Logs::LogGroup" {
				t.Errorf("log destinations = %s", jsonString(dest))
			}
			if logGroups[lg] {
				t.Errorf("log group %s shared by both state machines", lg)
			}
			logGroups[lg] = true
			if jsonString(p["TracingConfiguration"]) != `{"Enabled":true}` {
				t.Errorf("TracingConfiguration = %s", jsonString(p["TracingConfiguration"]))
			}

			// The definition is the embedded file, untouched; CloudFormation
			// fills every placeholder from DefinitionSubstitutions.
			if got, ok := p["DefinitionString"].(string); !ok || got != string(def) {
				t.Fatalf("DefinitionString differs from statemachines/%s.asl.json", kind)
			}
			subs := p["DefinitionSubstitutions"].(map[string]any)
			var keys []string
			for k := range subs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if got, want := keys, statemachines.Placeholders(def); !slices.Equal(got, want) {
				t.Errorf("DefinitionSubstitutions keys %v, placeholders %v", got, want)
			}
			fns := d.doc.functions(t)
			names := sagaFunctions
			if kind == "fleet" {
				names = fleetInvokes
			}
			var substituted []string
			for _, h := range rotation.Handlers {
				v, ok := subs[h.Placeholder]
				if !ok {
					continue
				}
				substituted = append(substituted, h.Name)
				if jsonString(v) != jsonString(map[string]any{"Fn::GetAtt": []any{fns[h.Name], "Arn"}}) {
					t.Errorf("%s = %s, want function %s (%s)", h.Placeholder, jsonString(v), h.Name, fns[h.Name])
				}
			}
			if !slices.Equal(substituted, names) {
				t.Errorf("substituted functions %v, want %v", substituted, names)
			}
			tableID, _ := d.doc.one(t, "AWS::DynamoDB::Table")
			if jsonString(subs[rotation.LedgerTablePlaceholder]) != jsonString(map[string]any{"Ref": tableID}) {
				t.Errorf("LedgerTableName = %s", jsonString(subs[rotation.LedgerTablePlaceholder]))
			}
		})
	}
}

func TestAlertsAndAlarms(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *synthesized
	}{{"defaults", defaults(t)}, {"without the fleet", noFleet(t)}} {
		t.Run(tc.name, func(t *testing.T) { checkAlerts(t, tc.s) })
	}
}

func checkAlerts(t *testing.T, d *synthesized) {
	ms := d.doc.machines(t)
	var smRefs []any
	for _, kind := range []string{"rotation", "fleet"} {
		if id, ok := ms[kind]; ok {
			smRefs = append(smRefs, map[string]any{"Ref": id})
		}
	}
	topicID, _ := d.doc.one(t, "AWS::SNS::Topic")
	busID, bus := d.doc.one(t, "AWS::Events::EventBus")
	if bus.Properties["Name"] != "secretsaga" {
		t.Errorf("bus name %v", bus.Properties["Name"])
	}
	if got := configured(t).doc.Resources; true {
		for _, r := range got {
			if r.Type == "AWS::Events::EventBus" && r.Properties["Name"] != "secretsaga-payments" {
				t.Errorf("payments bus name %v", r.Properties["Name"])
			}
		}
	}
	var sawSaga, sawStates bool
	for id, r := range d.doc.ofType("AWS::Events::Rule") {
		targets := list(r.Properties["Targets"])
		if len(targets) != 1 || ref(targets[0].(map[string]any)["Arn"]) != topicID {
			t.Errorf("rule %s targets %s", id, jsonString(targets))
		}
		pat := r.Properties["EventPattern"].(map[string]any)
		switch jsonString(pat["source"]) {
		case `["secretsaga"]`:
			sawSaga = true
			if ref(r.Properties["EventBusName"]) != busID {
				t.Errorf("secretsaga rule is not on our bus: %v", r.Properties["EventBusName"])
			}
			if jsonString(pat["detail-type"]) != jsonString(rotation.AlertDetailTypes) {
				t.Errorf("detail-type %s", jsonString(pat["detail-type"]))
			}
			// Every failure event reaches the topic, a failed fleet child's
			// included (events.FleetRotationFailed).
			for _, dt := range []string{"Rotation Rolled Back", "Rotation Abandoned", "Compensation Failed", "Rotation Repair Needed", "Fleet Rotation Failed"} {
				if !slices.Contains(list(pat["detail-type"]), any(dt)) {
					t.Errorf("the alert rule leaves out %q: %s", dt, jsonString(pat["detail-type"]))
				}
			}
		case `["aws.states"]`:
			sawStates = true
			if r.Properties["EventBusName"] != nil {
				t.Errorf("aws.states rule must be on the default bus")
			}
			detail := pat["detail"].(map[string]any)
			if jsonString(detail["status"]) != `["FAILED","TIMED_OUT","ABORTED"]` ||
				jsonString(detail["stateMachineArn"]) != jsonString(smRefs) {
				t.Errorf("aws.states detail %s", jsonString(detail))
			}
		default:
			t.Errorf("unexpected rule %s: %s", id, jsonString(pat))
		}
	}
	if !sawSaga || !sawStates {
		t.Errorf("rules: secretsaga %v, aws.states %v", sawSaga, sawStates)
	}
	// EventBridge may publish to the topic for the two alert rules only
	// (aws:SourceArn), in one statement; no other statement lets it.
	var ruleArns []any
	for _, id := range slices.Sorted(maps.Keys(d.doc.ofType("AWS::Events::Rule"))) {
		ruleArns = append(ruleArns, map[string]any{"Fn::GetAtt": []any{id, "Arn"}})
	}
	_, policy := d.doc.one(t, "AWS::SNS::TopicPolicy")
	b, _ := json.Marshal(policy.Properties["PolicyDocument"].(map[string]any)["Statement"])
	var stmts []struct {
		Principal any
		Action    any
		Condition map[string]map[string]any
		Effect    string
	}
	if err := json.Unmarshal(b, &stmts); err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, st := range stmts {
		if !strings.Contains(jsonString(st.Principal), "events.amazonaws.com") {
			continue
		}
		events++
		got := list(st.Condition["ArnEquals"]["aws:SourceArn"])
		slices.SortFunc(got, func(a, b any) int { return strings.Compare(jsonString(a), jsonString(b)) })
		if st.Effect != "Allow" || jsonString(st.Action) != `"sns:Publish"` || jsonString(got) != jsonString(ruleArns) || len(st.Condition) != 1 {
			t.Errorf("topic policy statement for EventBridge %s, want sns:Publish with aws:SourceArn %s", jsonString(st), jsonString(ruleArns))
		}
	}
	if events != 1 {
		t.Errorf("%d topic policy statements for EventBridge, want 1", events)
	}

	metrics := map[string]bool{} // state machine id + " " + metric
	for id, r := range d.doc.ofType("AWS::CloudWatch::Alarm") {
		p := r.Properties
		if p["Namespace"] != "AWS/States" {
			continue // the functions', the ledger's, the dead letters' (TestOperationalAlarms)
		}
		if p["Namespace"] != "AWS/States" || p["Threshold"] != 1.0 || p["Period"] != 300.0 ||
			p["Statistic"] != "Sum" || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" ||
			p["EvaluationPeriods"] != 1.0 {
			t.Errorf("alarm %s: %s", id, jsonString(p))
		}
		if jsonString(p["AlarmActions"]) != jsonString([]any{map[string]any{"Ref": topicID}}) {
			t.Errorf("alarm %s actions %s", id, jsonString(p["AlarmActions"]))
		}
		dims := list(p["Dimensions"])
		if len(dims) != 1 {
			t.Errorf("alarm %s dimensions %s", id, jsonString(dims))
			continue
		}
		metrics[ref(dims[0].(map[string]any)["Value"])+" "+p["MetricName"].(string)] = true
	}
	want := 0
	for kind, smID := range ms {
		for _, m := range []string{"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"} {
			if kind == "rotation" && m == "ExecutionsFailed" {
				// Every rollback fails a rotation execution: its alarm counts
				// only failures outside the Fail states (TestOperationalAlarms).
				if metrics[smID+" "+m] {
					t.Errorf("an alarm on every failed rotation execution, rollbacks included")
				}
				continue
			}
			want++
			if !metrics[smID+" "+m] {
				t.Errorf("no alarm on %s of the %s state machine", m, kind)
			}
		}
	}
	if len(metrics) != want {
		t.Errorf("alarms %v, want %d", metrics, want)
	}
}

func TestSchedules(t *testing.T) {
	c := configured(t)
	smID := c.doc.machines(t)["rotation"]
	inputs := map[string]string{}
	var roleID string
	for id, r := range c.doc.ofType("AWS::Scheduler::Schedule") {
		p := r.Properties
		tg := p["Target"].(map[string]any)
		if jsonString(tg["Arn"]) == jsonString(map[string]any{"Fn::GetAtt": []any{c.doc.functions(t)[repairFunction], "Arn"}}) {
			continue // the repair's (TestRepair)
		}
		if ref(tg["Arn"]) != smID {
			t.Errorf("schedule %s targets %s", id, jsonString(tg["Arn"]))
		}
		if roleID == "" {
			roleID = ref(tg["RoleArn"])
		} else if ref(tg["RoleArn"]) != roleID {
			t.Errorf("schedules use different roles")
		}
		if jsonString(p["FlexibleTimeWindow"]) != `{"Mode":"OFF"}` {
			t.Errorf("schedule %s window %s", id, jsonString(p["FlexibleTimeWindow"]))
		}
		inputs[p["ScheduleExpression"].(string)] = tg["Input"].(string)
	}
	want := map[string]string{
		"rate(30 days)":       `{"SecretId":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-db-AbCdEf","Verify":true}`,
		"cron(0 3 ? * SUN *)": `{"SecretId":"billing/db"}`,
	}
	if jsonString(inputs) != jsonString(want) {
		t.Errorf("schedule inputs %v, want %v", inputs, want)
	}
	c.tmpl.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
		"ScheduleExpressionTimezone": "Europe/Paris",
	})
	// The scheduler role may only start this state machine.
	role := c.doc.Resources[roleID]
	if !strings.Contains(jsonString(role.Properties["AssumeRolePolicyDocument"]), `"scheduler.amazonaws.com"`) {
		t.Errorf("scheduler role trust %s", jsonString(role.Properties["AssumeRolePolicyDocument"]))
	}
	for _, s := range c.doc.statements(t, roleID) {
		if s.Sid == "DeadLetters" {
			continue // TestScheduleDeadLetters
		}
		if jsonString(s.actions()) != `["states:StartExecution"]` || jsonString(s.resources()) != jsonString([]any{map[string]any{"Ref": smID}}) {
			t.Errorf("scheduler role statement %s", jsonString(s))
		}
	}
}

// expectedSecretActions is the least privilege of each handler on the
// rotation group's secrets, written out independently of rotation.Handlers.
var expectedSecretActions = map[string][]string{
	"acquirelease":   {"DescribeSecret", "GetSecretValue", "ListSecretVersionIds", "UpdateSecretVersionStage"},
	"createsecret":   {"DescribeSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage"},
	"setsecret":      {"GetSecretValue"},
	"testsecret":     {"GetSecretValue"},
	"finishsecret":   {"DescribeSecret", "UpdateSecretVersionStage"},
	"verify":         {"DescribeSecret", "GetSecretValue"},
	"releaselease":   {"DescribeSecret"},
	"compensate":     {"DescribeSecret", "GetSecretValue", "UpdateSecretVersionStage"},
	"listsecrets":    nil,
	"fleetsummary":   nil,
	"fleetreport":    nil,
	"nativerotation": nil,
	"repair":         {"DescribeSecret", "GetSecretValue", "UpdateSecretVersionStage"},
}

// expectedUnscoped are the actions allowed on Resource "*" (they have no
// resource-level permissions).
var expectedUnscoped = map[string][]string{
	"verify":      {"cloudwatch:DescribeAlarms"},
	"listsecrets": {"secretsmanager:ListSecrets"},
}

var expectedPutEvents = []string{"releaselease", "compensate", "repair", "fleetreport"}

// unscopedAction: the Secrets Manager and CloudWatch actions that may be on
// "*", and the one function each is for.
var unscopedAction = map[string]string{
	"secretsmanager:ListSecrets": "listsecrets",
	"cloudwatch:DescribeAlarms":  "verify",
}

func TestIAM(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     *synthesized
		group string
		kms   bool
	}{
		{"defaults", defaults(t), "default", false},
		{"configured", configured(t), "payments", true},
		{"without feature flags", legacy(t), "payments", true},
		{"without the fleet", noFleet(t), "default", false},
		{"without the native rotation entry", noNative(t), "default", false},
	} {
		t.Run(tc.name, func(t *testing.T) { checkIAM(t, tc.s.doc, tc.group, tc.kms) })
	}
}

func checkIAM(t *testing.T, d template, group string, kms bool) {
	tableID, _ := d.one(t, "AWS::DynamoDB::Table")
	busID, _ := d.one(t, "AWS::Events::EventBus")
	machines := d.machines(t)
	fns := d.functions(t)
	roleOf := map[string]string{} // role id → handler name
	for name, id := range fns {
		roleOf[ref(d.Resources[id].Properties["Role"])] = name
	}
	wantCondition := jsonString(map[string]any{"StringEquals": map[string]any{"secretsmanager:ResourceTag/secretsaga:rotation-group": group}})

	// Rules for every statement of every role in the stack.
	for roleID, stmts := range allStatements(t, d) {
		for _, s := range stmts {
			if s.Effect != "Allow" {
				t.Errorf("%s: %s", roleID, jsonString(s))
			}
			star := slices.Contains(s.resources(), any("*"))
			for _, a := range s.actions() {
				svc, name, _ := strings.Cut(a, ":")
				if strings.Contains(name, "*") {
					t.Errorf("%s: wildcard action %s", roleID, a)
				}
				switch {
				case svc == "dynamodb" && star:
					t.Errorf("%s: %s on Resource *", roleID, a)
				case (svc == "secretsmanager" || svc == "cloudwatch") && star && unscopedAction[a] == "":
					t.Errorf("%s: %s on Resource *", roleID, a)
				case svc == "kms" && star:
					t.Errorf("%s: %s on Resource *", roleID, a)
				}
				if only := unscopedAction[a]; only != "" {
					if jsonString(s.resources()) != `["*"]` || s.Condition != nil {
						t.Errorf("%s: %s: %s", roleID, a, jsonString(s))
					}
					if roleOf[roleID] != only {
						t.Errorf("%s (%s): %s is for %s only", roleID, roleOf[roleID], a, only)
					}
				}
				if svc == "secretsmanager" && unscopedAction[a] == "" {
					if jsonString(s.Condition) != wantCondition {
						t.Errorf("%s: %s without the rotation-group condition: %s", roleID, a, jsonString(s.Condition))
					}
					if r := jsonString(s.resources()); !strings.Contains(r, `":secretsmanager:"`) || !strings.Contains(r, `":secret:*"`) {
						t.Errorf("%s: %s on %s", roleID, a, r)
					}
				}
				repairQueue := jsonString([]any{map[string]any{"Fn::GetAtt": []any{tableID, "Arn"}},
					map[string]any{"Fn::Join": []any{"", []any{map[string]any{"Fn::GetAtt": []any{tableID, "Arn"}}, "/index/repair"}}}})
				switch {
				case svc != "dynamodb":
				case s.Sid == "RepairQueue":
					// The repair function alone queries: the journal on the table, the queue on the index.
					if a != "dynamodb:Query" || jsonString(s.resources()) != repairQueue || roleOf[roleID] != repairFunction {
						t.Errorf("%s (%s): %s on %s", roleID, roleOf[roleID], a, jsonString(s.resources()))
					}
				case jsonString(s.resources()) != jsonString([]any{map[string]any{"Fn::GetAtt": []any{tableID, "Arn"}}}):
					t.Errorf("%s: %s on %s", roleID, a, jsonString(s.resources()))
				}
				if a == "events:PutEvents" && jsonString(s.resources()) != jsonString([]any{map[string]any{"Fn::GetAtt": []any{busID, "Arn"}}}) {
					t.Errorf("%s: %s on %s", roleID, a, jsonString(s.resources()))
				}
			}
		}
	}

	// Per function role: exactly the expected actions.
	for roleID, name := range roleOf {
		var secrets, unscoped, other []string
		ledger, putEvents := false, false
		states := map[string]string{} // states action → its resources (JSON)
		for _, s := range d.statements(t, roleID) {
			for _, a := range s.actions() {
				svc, act, _ := strings.Cut(a, ":")
				if name == "fleetsummary" && (svc == "secretsmanager" || svc == "dynamodb" || svc == "events" || svc == "kms") {
					t.Errorf("fleetsummary: %s (it makes no AWS call)", a)
				}
				if name == nativeFunction && (svc == "secretsmanager" || svc == "dynamodb" || svc == "events" || svc == "kms" || svc == "lambda") {
					t.Errorf("nativerotation: %s (it only calls Step Functions)", a)
				}
				switch {
				case svc == "states":
					if _, dup := states[a]; dup {
						t.Errorf("%s: %s in more than one statement", name, a)
					}
					states[a] = jsonString(s.resources())
				case unscopedAction[a] != "":
					unscoped = append(unscoped, a)
				case svc == "secretsmanager":
					secrets = append(secrets, act)
				case svc == "dynamodb":
					ledger = true
				case a == "events:PutEvents":
					putEvents = true
				case svc == "kms":
					if !kms {
						t.Errorf("%s: %s without customer managed keys", name, a)
					}
					if jsonString(s.resources()) != `["arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]` {
						t.Errorf("%s: %s on %s", name, a, jsonString(s.resources()))
					}
					if !strings.Contains(jsonString(s.Condition), "kms:ViaService") {
						t.Errorf("%s: %s without kms:ViaService", name, a)
					}
					if a != "kms:Decrypt" && name != "createsecret" {
						t.Errorf("%s: %s (only createsecret encrypts)", name, a)
					}
				default:
					other = append(other, a)
				}
			}
		}
		sort.Strings(secrets)
		want := slices.Clone(expectedSecretActions[name])
		sort.Strings(want)
		if !slices.Equal(secrets, want) {
			t.Errorf("%s: secretsmanager actions %v, want %v", name, secrets, want)
		}
		if !slices.Equal(unscoped, expectedUnscoped[name]) {
			t.Errorf("%s: actions on Resource * %v, want %v", name, unscoped, expectedUnscoped[name])
		}
		if ledger != slices.Contains(ledgerFunctions, name) {
			t.Errorf("%s: ledger access = %v", name, ledger)
		}
		if putEvents != slices.Contains(expectedPutEvents, name) {
			t.Errorf("%s: events:PutEvents = %v", name, putEvents)
		}
		sort.Strings(other)
		other = slices.Compact(other)
		if got := strings.Join(other, " "); got != "logs:CreateLogStream logs:PutLogEvents xray:PutTelemetryRecords xray:PutTraceSegments" {
			t.Errorf("%s: other actions %s", name, got)
		}
		// Only nativerotation talks to Step Functions: it starts the
		// rotation state machine and describes that machine's executions.
		wantStates := map[string]string{}
		if name == nativeFunction {
			rot := machines["rotation"]
			wantStates = map[string]string{
				"states:StartExecution": jsonString([]any{map[string]any{"Ref": rot}}),
				"states:DescribeExecution": jsonString([]any{map[string]any{"Fn::Join": []any{"", []any{
					"arn:", map[string]any{"Ref": "AWS::Partition"}, ":states:", map[string]any{"Ref": "AWS::Region"},
					":", map[string]any{"Ref": "AWS::AccountId"}, ":execution:",
					map[string]any{"Fn::GetAtt": []any{rot, "Name"}}, ":*",
				}}}}),
			}
		}
		if jsonString(states) != jsonString(wantStates) {
			t.Errorf("%s: states actions %s, want %s", name, jsonString(states), jsonString(wantStates))
		}
	}

	// The state machine roles: the rotation saga invokes the eight saga
	// functions, the fleet those and its two own; each delivers its logs
	// and traces, nothing else.
	for kind, smID := range machines {
		want := sagaFunctions
		if kind == "fleet" {
			want = fleetInvokes
		}
		checkStateMachineRole(t, d, kind, ref(d.Resources[smID].Properties["RoleArn"]), roleOf, want)
	}
}

func checkStateMachineRole(t *testing.T, d template, kind, smRole string, roleOf map[string]string, want []string) {
	t.Helper()
	invoked := map[string]bool{}
	for _, s := range d.statements(t, smRole) {
		for _, a := range s.actions() {
			svc, _, _ := strings.Cut(a, ":")
			switch svc {
			case "lambda":
				if a != "lambda:InvokeFunction" {
					t.Errorf("%s state machine role: %s", kind, a)
				}
				for _, r := range s.resources() {
					id := ref(r)
					if id == "" { // {"Fn::Join": ["", [{"Fn::GetAtt": [fn, "Arn"]}, ":*"]]}
						parts := r.(map[string]any)["Fn::Join"].([]any)[1].([]any)
						id = ref(parts[0])
						if len(parts) != 2 || parts[1] != ":*" {
							t.Errorf("%s state machine role: invoke on %s", kind, jsonString(r))
						}
					}
					name, ok := roleOf[ref(d.Resources[id].Properties["Role"])]
					if !ok || d.Resources[id].Type != "AWS::Lambda::Function" {
						t.Errorf("%s state machine role: invoke on %s", kind, jsonString(r))
						continue
					}
					invoked[name] = true
				}
			case "logs", "xray":
				if !slices.Contains(s.resources(), any("*")) && svc == "xray" {
					t.Errorf("%s state machine role: %s", kind, jsonString(s))
				}
				if !strings.Contains(a, "LogDeliver") && !strings.Contains(a, "ResourcePolic") && a != "logs:DescribeLogGroups" && svc == "logs" {
					t.Errorf("%s state machine role: %s", kind, a)
				}
			case "states":
				// The fleet's Distributed Map starts, watches and stops its
				// own child executions, and nothing else.
				if kind != "fleet" || !slices.Contains([]string{"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}, a) {
					t.Errorf("%s state machine role: unexpected %s", kind, a)
				}
				for _, r := range s.resources() {
					if j := jsonString(r); !strings.Contains(j, "-fleet") || strings.Contains(j, `"*"`) {
						t.Errorf("%s state machine role: %s on %s, want only the fleet's own ARNs", kind, a, j)
					}
				}
			default:
				t.Errorf("%s state machine role: unexpected %s", kind, a)
			}
		}
	}
	var got []string
	for name := range invoked {
		got = append(got, name)
	}
	sort.Strings(got)
	w := slices.Clone(want)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		t.Errorf("%s state machine invokes %v, want %v", kind, got, w)
	}
}

// envNames are the names of a function's environment variables, sorted.
func envNames(props map[string]any) []string {
	env, _ := props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	names := []string{}
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// requiredEnv is the function's list in shared/functions without the
// optional variables, sorted.
func requiredEnv(name string) []string {
	names := []string{}
	for _, v := range functions.MustGet(name).Env {
		if !functions.OptionalEnv(v) {
			names = append(names, v)
		}
	}
	slices.Sort(names)
	return names
}

// TestBakeAlarmNames: the deploy-time alarms reach the verify function
// (which watches them) and acquirelease (which validates the bake), and
// only them, as BAKE_ALARM_NAMES next to the ledger and bus; without any,
// no function has the variable. (Its cloudwatch:DescribeAlarms is in TestIAM.)
func TestBakeAlarmNames(t *testing.T) {
	for _, tc := range []struct {
		s    *synthesized
		want string
	}{{configured(t), "api-5xx,api-latency"}, {defaults(t), ""}} {
		for name, id := range tc.s.doc.functions(t) {
			env, _ := tc.s.doc.Resources[id].Properties["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			got, has := vars[rotation.EnvBakeAlarmNames]
			switch {
			case (name == "verify" || name == "acquirelease") && tc.want != "":
				if got != tc.want || vars[rotation.EnvLedgerTable] == nil || vars[rotation.EnvEventBus] == nil {
					t.Errorf("%s: environment %s, want %s=%s with the ledger and bus", name, jsonString(vars), rotation.EnvBakeAlarmNames, tc.want)
				}
				// With the alarms configured: shared/functions' whole list.
				if all := slices.Sorted(slices.Values(functions.MustGet(name).Env)); !slices.Equal(envNames(tc.s.doc.Resources[id].Properties), all) {
					t.Errorf("%s: environment variables %v, shared/functions lists %v", name, envNames(tc.s.doc.Resources[id].Properties), all)
				}
			case has:
				t.Errorf("%s: %s=%v", name, rotation.EnvBakeAlarmNames, got)
			}
		}
	}
}

func TestBakeAlarmNameWithCommaPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "BakeAlarmNames") {
			t.Errorf("recover() = %v, want a panic naming BakeAlarmNames", r)
		}
	}()
	app := awscdk.NewApp(nil)
	rotation.NewRotationStack(app, "Test", &rotation.RotationStackProps{Rotation: rotation.RotationProps{
		LambdaAssetDir: assetDir, BakeAlarmNames: []string{"a,b"}}})
}

func TestMissingBootstrapPanicsWithHint(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "make build") {
			t.Errorf("recover() = %v, want a hint to run make build", r)
		}
	}()
	rotation.ResolveLambdaAssetDir(t.TempDir())
}

func TestResolveLambdaAssetDirFromEnv(t *testing.T) {
	t.Setenv(rotation.EnvLambdaAssetDir, assetDir)
	if got := rotation.ResolveLambdaAssetDir(""); got != assetDir {
		t.Errorf("ResolveLambdaAssetDir = %s, want %s", got, assetDir)
	}
}

// TestNativeRotation: Secrets Manager of the stack's own account (and no
// other: aws:SourceAccount guards against the confused deputy) may invoke
// nativerotation, which the NativeRotationFunctionArn output names; the
// rotation state machine does not depend on it.
func TestNativeRotation(t *testing.T) {
	d := defaults(t)
	fnID := d.doc.functions(t)[nativeFunction]
	if fnID == "" {
		t.Fatal("no nativerotation function")
	}
	_, perm := d.doc.one(t, "AWS::Lambda::Permission")
	want := map[string]any{
		"Action":        "lambda:InvokeFunction",
		"FunctionName":  map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}},
		"Principal":     "secretsmanager.amazonaws.com",
		"SourceAccount": map[string]any{"Ref": "AWS::AccountId"},
	}
	if jsonString(perm.Properties) != jsonString(want) {
		t.Errorf("Lambda::Permission %s, want %s", jsonString(perm.Properties), jsonString(want))
	}
	out, _ := d.doc.Outputs["NativeRotationFunctionArn"].(map[string]any)
	if jsonString(out["Value"]) != jsonString(map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}}) {
		t.Errorf("NativeRotationFunctionArn output %s", jsonString(out))
	}
	// Nothing of the rotation state machine (its definition, its role and
	// policies) refers to nativerotation or its role.
	smID := d.doc.machines(t)["rotation"]
	sm := d.doc.Resources[smID]
	roleID := ref(d.doc.Resources[fnID].Properties["Role"])
	smRole := ref(sm.Properties["RoleArn"])
	for _, v := range []any{sm.Properties, d.doc.statements(t, smRole)} {
		if j := jsonString(v); strings.Contains(j, `"`+fnID+`"`) || strings.Contains(j, `"`+roleID+`"`) {
			t.Errorf("the rotation state machine refers to nativerotation: %s", j)
		}
	}
}

// TestNativeRotationOutsideVpc: with a Vpc the functions that reach
// databases go into it; the others, nativerotation among them (it only
// calls Step Functions), do not, so they need no endpoint in it.
func TestNativeRotationOutsideVpc(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Context: featureFlags(t)})
	stack := awscdk.NewStack(app, jsii.String("Vpc"), nil)
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{MaxAzs: jsii.Number(2), NatGateways: jsii.Number(0), RestrictDefaultSecurityGroup: jsii.Bool(false)})
	rotation.NewRotation(stack, "Rotation", &rotation.RotationProps{Vpc: vpc, LambdaAssetDir: assetDir})
	b, err := json.Marshal(assertions.Template_FromStack(stack, nil).ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var d template
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for name, id := range d.functions(t) {
		_, inVpc := d.Resources[id].Properties["VpcConfig"]
		if inVpc != slices.Contains(targetFunctions, name) {
			t.Errorf("%s: VpcConfig = %v", name, inVpc)
		}
	}
}

// The repair: its schedule runs the repair function (and only it may be
// invoked by the schedule's role), its backoff reaches the function's
// environment, and its call for a person reaches the alert topic.
func TestRepair(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        *synthesized
		schedule string
		env      map[string]any
	}{
		{"defaults", defaults(t), rotation.DefaultRepairSchedule, nil},
		{"configured", synth(t, "repair-configured", rotation.RotationProps{Repair: rotation.RepairProps{
			Schedule: "rate(5 minutes)", Backoff: "30m", MaxBackoff: "12h", AlertAfter: "72h"}}),
			"rate(5 minutes)", map[string]any{"REPAIR_BACKOFF": "30m", "REPAIR_MAX_BACKOFF": "12h", "REPAIR_ALERT_AFTER": "72h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.s.doc
			fnID := d.functions(t)[repairFunction]
			var found int
			for id, r := range d.ofType("AWS::Scheduler::Schedule") {
				tg := r.Properties["Target"].(map[string]any)
				if jsonString(tg["Arn"]) != jsonString(map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}}) {
					continue
				}
				found++
				if r.Properties["ScheduleExpression"] != tc.schedule || tg["Input"] != "{}" {
					t.Errorf("repair schedule %s: %s", id, jsonString(r.Properties))
				}
				roleID := ref(tg["RoleArn"])
				trust := jsonString(d.Resources[roleID].Properties["AssumeRolePolicyDocument"])
				if !strings.Contains(trust, `"scheduler.amazonaws.com"`) || !strings.Contains(trust, "aws:SourceAccount") {
					t.Errorf("repair schedule role trust %s", trust)
				}
				// Invoke the repair function, send to the dead-letter
				// queue (TestScheduleDeadLetters), nothing else.
				for _, s := range d.statements(t, roleID) {
					if s.Sid == "DeadLetters" {
						continue
					}
					if jsonString(s.actions()) != `["lambda:InvokeFunction"]` || !strings.Contains(jsonString(s.resources()), fnID) {
						t.Errorf("repair schedule role statement %s", jsonString(s))
					}
					for _, res := range s.resources() {
						if !strings.Contains(jsonString(res), fnID) {
							t.Errorf("repair schedule role may invoke %s", jsonString(res))
						}
					}
				}
			}
			if found != 1 {
				t.Fatalf("%d repair schedules, want 1", found)
			}
			vars := d.Resources[fnID].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
			for _, k := range []string{"REPAIR_BACKOFF", "REPAIR_MAX_BACKOFF", "REPAIR_ALERT_AFTER"} {
				if jsonString(vars[k]) != jsonString(tc.env[k]) {
					t.Errorf("%s = %s, want %s", k, jsonString(vars[k]), jsonString(tc.env[k]))
				}
			}
		})
	}
	if !slices.Contains(rotation.AlertDetailTypes, "Rotation Repair Needed") {
		t.Errorf("the alert rule does not route Rotation Repair Needed: %v", rotation.AlertDetailTypes)
	}
}

func TestRepairBackoffMustBeADuration(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "REPAIR_BACKOFF") {
			t.Fatalf("recovered %v, want a panic naming REPAIR_BACKOFF", r)
		}
	}()
	app := awscdk.NewApp(nil)
	rotation.NewRotation(awscdk.NewStack(app, jsii.String("bad"), nil), "R", &rotation.RotationProps{
		LambdaAssetDir: assetDir, Repair: rotation.RepairProps{Backoff: "an hour"}})
}

package rotation_test

import (
	"slices"
	"testing"
)

// Every function role's whole action set, derived from the calls each
// function's code makes (functions/<name> → shared/config → shared/rotation,
// shared/secretstore, shared/ledger, shared/events, shared/fleet,
// shared/native), written out here independently of rotation.Handlers. A
// grant beyond these, or one missing, fails TestActionSets.
//
//	DescribeSecret            secretstore.Describe
//	GetSecretValue            secretstore.Value (parse, master) and Filled
//	ListSecretVersionIds      secretstore.HasVersion (acquire's checkUnlabelled only)
//	PutSecretValue            secretstore.PutPending (create)
//	UpdateSecretVersionStage  secretstore.MoveStage, RemoveStage
//	GetRandomPassword         secretstore.RandomPassword (create)
//	dynamodb:GetItem          ledger.Get, Clone, the login locks
//	dynamodb:PutItem          the Put items of every TransactWriteItems
//	dynamodb:ConditionCheckItem  the login locks' ConditionCheck items (Acquire,
//	                          a journal write that keeps the lease, TakeOverForRepair)
//	dynamodb:Query            ledger.History (table) and RepairQueue (index): repair only
//	events:PutEvents          rotation.publish/outcome (release, compensate) and the repair's
var (
	ledgerRW = []string{"dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem"}
	// Every function: its own log group and active tracing.
	baseActions = []string{"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}

	expectedActions = map[string][]string{
		// acquire: Describe, parse (GetSecretValue), checkUnlabelled (HasVersion),
		// rotateSecretVersion (Filled), dropRefusedVersion (RemoveStage); Ledger.Acquire.
		"acquirelease": append(slices.Clone(ledgerRW), "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
			"secretsmanager:ListSecretVersionIds", "secretsmanager:UpdateSecretVersionStage"),
		// create: Describe, Filled, MoveStage (relabel), parse/master, RandomPassword,
		// PutPending; checkOther (Ledger.Clone); journal.
		"createsecret": append(slices.Clone(ledgerRW), "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
			"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage", "secretsmanager:GetRandomPassword"),
		// set: load (parse, master: GetSecretValue by version), checkOther; journal.
		"setsecret": append(slices.Clone(ledgerRW), "secretsmanager:GetSecretValue"),
		// test: probe (parse); journal.
		"testsecret": append(slices.Clone(ledgerRW), "secretsmanager:GetSecretValue"),
		// finish: Describe, MoveStage, RemoveStage; journal. Publishes nothing.
		"finishsecret": append(slices.Clone(ledgerRW), "secretsmanager:DescribeSecret", "secretsmanager:UpdateSecretVersionStage"),
		// verify: Describe, probe (parse), bake (DescribeAlarms); journal.
		"verify": append(slices.Clone(ledgerRW), "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "cloudwatch:DescribeAlarms"),
		// release: journal, outcome/publish; compensationFailedAction (Describe).
		"releaselease": append(slices.Clone(ledgerRW), "secretsmanager:DescribeSecret", "events:PutEvents"),
		// compensate: Describe, MoveStage, RemoveStage, revertTarget (load); journal, outcome.
		"compensate": append(slices.Clone(ledgerRW), "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
			"secretsmanager:UpdateSecretVersionStage", "events:PutEvents"),
		// repair: RepairQueue, History (Query), TakeOverForRepair, assess (Describe,
		// login/master: GetSecretValue), rollForward and compensate (stage moves), announce.
		"repair": append(slices.Clone(ledgerRW), "dynamodb:Query", "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
			"secretsmanager:UpdateSecretVersionStage", "events:PutEvents"),
		// fleet.Service.List: ListSecrets only.
		"listsecrets": {"secretsmanager:ListSecrets"},
		// fleet.Service.Summarize: no AWS call.
		"fleetsummary": nil,
		// fleet.Service.Report: PutEvents only.
		"fleetreport": {"events:PutEvents"},
		// native.Service: StartExecution, DescribeExecution.
		"nativerotation": {"states:StartExecution", "states:DescribeExecution"},
	}
)

// TestActionSets: each function role allows exactly the actions its code
// calls (plus logs and tracing), in every variant without customer managed
// keys (TestIAM checks the KMS actions those add).
func TestActionSets(t *testing.T) {
	for name, s := range map[string]*synthesized{"defaults": defaults(t), "without the fleet": noFleet(t), "without the native rotation entry": noNative(t)} {
		t.Run(name, func(t *testing.T) {
			d := s.doc
			for fn, id := range d.functions(t) {
				role := ref(d.Resources[id].Properties["Role"])
				var got []string
				for _, st := range d.statements(t, role) {
					got = append(got, st.actions()...)
				}
				slices.Sort(got)
				got = slices.Compact(got)
				want, ok := expectedActions[fn]
				if !ok {
					t.Errorf("%s: no expected action set", fn)
					continue
				}
				want = append(slices.Clone(want), baseActions...)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: actions\n got %v\nwant %v", fn, got, want)
				}
			}
		})
	}
}

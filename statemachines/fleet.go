package statemachines

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

// Fleet is statemachines/fleet.asl.json: rotate every secret a tag selects,
// each through the rotation saga, a bounded number at a time. It is
// generated from rotation.asl.json by FleetDefinition (a test keeps the
// file in step), so the fleet runs the very same saga, not a copy that
// could drift.
//
//go:embed fleet.asl.json
var Fleet []byte

// The fleet's frame. The rotation saga goes, unchanged, into the one branch
// of the Parallel state "Rotate": a Parallel state's Catch turns any failure
// of that secret's saga (its Fail states included) into a result, so one
// secret's failure never stops or rolls back the others. Before it becomes
// a result, ReportFailure announces it (Fleet Rotation Failed), since some
// of the saga's failures announce nothing themselves; a failed report is
// caught too (the fleetreport function's Errors alarm sees it). The Map is a
// Distributed Map: every secret's saga runs as a child execution with its
// own execution ARN (the ledger's lease holder) and its own event history,
// so a fleet of thousands stays under a Standard execution's 25,000-event
// history limit. MaxConcurrency bounds how many rotations run at once: that
// is what keeps the Secrets Manager write rate (a quota shared by the
// account and region) in bounds. Each item's result is kept small (its
// outcome, and the secret and error class of a failure; the details are in
// that secret's ledger journal) because a Distributed Map without a
// ResultWriter returns all results in the state, which is capped at 256 KiB.
//
// The fleet runs in pages (ListSecrets → RotateEach → Summarize, then
// NextPage back to ListSecrets until a page has no Next): listsecrets
// returns at most one page of ARNs (bounded in items and bytes), the Map
// rotates them, Summarize adds their outcomes to the running Totals, and
// NextPage drops the page's ARNs and results. So the state holds one page,
// never the whole fleet, and a fleet of 10,000 (or 100,000) secrets stays
// under the 256 KiB limit; the alternative, an ItemReader over an S3 object
// listsecrets writes (with a ResultWriter for the results), cannot run on
// the local interpreter (aws-local-stepfunctions has neither) and needs a
// bucket, a stand-in for it and more grants. See README "Rotating a fleet".
const fleetFrame = `{
  "Comment": "secretsaga fleet: rotate every secret that carries a tag, each through the rotation saga (generated from rotation.asl.json; do not edit by hand: run go test ./statemachines -update).",
  "StartAt": "FleetDefaults",
  "TimeoutSeconds": 86400,
  "States": {
    "FleetDefaults": {
      "Type": "Pass",
      "Comment": "Input: TagKey, TagValue; optional MaxConcurrency (default 10), Verify (default false), Limit (default 0: no cap), PageSize (default 0: listsecrets' maximum). After and Totals carry the page loop.",
      "Parameters": {
        "merged.$": "States.JsonMerge(States.StringToJson('{\"MaxConcurrency\": 10, \"Verify\": false, \"Limit\": 0, \"PageSize\": 0, \"After\": \"\", \"Totals\": {}}'), $$.Execution.Input, false)"
      },
      "OutputPath": "$.merged",
      "Next": "ListSecrets"
    },
    "ListSecrets": {
      "Type": "Task",
      "Resource": "${ListSecretsFunctionArn}",
      "Parameters": {
        "TagKey.$": "$.TagKey",
        "TagValue.$": "$.TagValue",
        "Limit.$": "$.Limit",
        "PageSize.$": "$.PageSize",
        "After.$": "$.After"
      },
      "ResultPath": "$.selection",
      "TimeoutSeconds": 300,
      "Retry": [RETRY],
      "Catch": [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "SelectionFailed"}
      ],
      "Next": "RotateEach"
    },
    "RotateEach": {
      "Type": "Map",
      "ItemsPath": "$.selection.SecretIds",
      "MaxConcurrencyPath": "$.MaxConcurrency",
      "ItemSelector": {
        "SecretId.$": "$$.Map.Item.Value",
        "Verify.$": "$.Verify"
      },
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Rotate",
        "States": {
          "Rotate": {
            "Type": "Parallel",
            "Branches": [ROTATION],
            "ResultSelector": {
              "State.$": "$[0].State"
            },
            "Catch": [
              {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReportFailure"}
            ],
            "End": true
          },
          "ReportFailure": {
            "Type": "Task",
            "Comment": "Publishes this secret's Fleet Rotation Failed event, however its saga failed: some of the saga's failures (lease held, acquire failed, lease lost during compensation) announce nothing themselves.",
            "Resource": "${FleetReportFunctionArn}",
            "Parameters": {
              "SecretId.$": "$.SecretId",
              "ExecutionArn.$": "$$.Execution.Id",
              "Error.$": "$.error"
            },
            "ResultPath": null,
            "TimeoutSeconds": 60,
            "Retry": [RETRY],
            "Catch": [
              {"ErrorEquals": ["States.ALL"], "ResultPath": "$.reportError", "Next": "RotationFailed"}
            ],
            "Next": "RotationFailed"
          },
          "RotationFailed": {
            "Type": "Pass",
            "Parameters": {
              "SecretId.$": "$.SecretId",
              "Error.$": "$.error.Error"
            },
            "End": true
          }
        }
      },
      "ResultPath": "$.Results",
      "Next": "Summarize"
    },
    "Summarize": {
      "Type": "Task",
      "Comment": "Adds this page's outcomes to the Totals of the pages before.",
      "Resource": "${FleetSummaryFunctionArn}",
      "Parameters": {"Results.$": "$.Results", "Totals.$": "$.Totals"},
      "ResultPath": "$.Totals",
      "TimeoutSeconds": 60,
      "Retry": [RETRY],
      "Catch": [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "SummaryFailed"}
      ],
      "Next": "MorePages"
    },
    "MorePages": {
      "Type": "Choice",
      "Choices": [
        {"Variable": "$.selection.Next", "StringEquals": "", "Next": "Done"}
      ],
      "Default": "NextPage"
    },
    "NextPage": {
      "Type": "Pass",
      "Comment": "Carries only the input and the Totals to the next page: this page's ARNs and results are dropped, so the state does not grow with the fleet.",
      "Parameters": {
        "TagKey.$": "$.TagKey",
        "TagValue.$": "$.TagValue",
        "Limit.$": "$.Limit",
        "PageSize.$": "$.PageSize",
        "MaxConcurrency.$": "$.MaxConcurrency",
        "Verify.$": "$.Verify",
        "After.$": "$.selection.Next",
        "Totals.$": "$.Totals"
      },
      "Next": "ListSecrets"
    },
    "Done": {
      "Type": "Succeed",
      "OutputPath": "$.Totals"
    },
    "SelectionFailed": {
      "Type": "Fail",
      "Comment": "Nothing was rotated (on the first page), or nothing after the pages before (their secrets' outcomes are in their ledger journals and events).",
      "ErrorPath": "$.error.Error",
      "CausePath": "$.error.Cause"
    },
    "SummaryFailed": {
      "Type": "Fail",
      "Comment": "This page's rotations have ended (later pages do not start); only the count failed. Each secret's outcome is in its ledger journal, each failure also in its Fleet Rotation Failed event.",
      "ErrorPath": "$.error.Error",
      "CausePath": "$.error.Cause"
    }
  }
}`

// FleetDefinition generates fleet.asl.json from the rotation saga.
func FleetDefinition() ([]byte, error) {
	var rot struct {
		StartAt string                     `json:"StartAt"`
		States  map[string]json.RawMessage `json:"States"`
	}
	if err := json.Unmarshal(Rotation, &rot); err != nil {
		return nil, fmt.Errorf("rotation.asl.json: %w", err)
	}
	var task struct {
		Retry json.RawMessage `json:"Retry"`
	}
	if err := json.Unmarshal(rot.States["AcquireLease"], &task); err != nil || len(task.Retry) == 0 {
		return nil, fmt.Errorf("rotation.asl.json: AcquireLease has no Retry to reuse")
	}
	branch, err := json.Marshal(map[string]any{"StartAt": rot.StartAt, "States": rot.States})
	if err != nil {
		return nil, err
	}
	retry := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(task.Retry), []byte("[")), []byte("]"))
	frame := bytes.ReplaceAll([]byte(fleetFrame), []byte("[RETRY]"), append(append([]byte("["), retry...), ']'))
	frame = bytes.ReplaceAll(frame, []byte("[ROTATION]"), append(append([]byte("["), branch...), ']'))
	var out bytes.Buffer
	if err := json.Indent(&out, compact(frame), "", "  "); err != nil {
		return nil, fmt.Errorf("fleet frame: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func compact(b []byte) []byte {
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return b // Indent reports the error
	}
	return c.Bytes()
}

package config

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/integration/lambdalocal"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/native"
	"github.com/secretsaga/secretsaga/shared/rotation"
)

// Every function's input, given a field of the wrong JSON type, fails with
// errorType InputError (which the state machine's Catch names) and a message
// that names the field, as Lambda reports it: the very handler the
// function's main passes to lambda.Start, invoked through lambdalocal (which
// runs it with aws-lambda-go's lambda.NewHandler). Before, aws-lambda-go's
// decoding error surfaced as errorType UnmarshalTypeError.
func TestHandlerInputTypeErrors(t *testing.T) {
	svc, fl, nat, eph := &rotation.Service{}, &fleet.Service{}, &native.Service{}, &ephemeral.Service{}
	type bad struct{ payload, field string }
	ctxBad := []bad{{`{"SecretArn":"arn:s","Fencing":"3"}`, `"Fencing"`}, {`{"SecretId":{"a":1}}`, `"SecretId"`}}
	tests := map[string]struct {
		handler any
		bad     []bad
	}{
		"acquirelease": {svc.Acquire, []bad{
			{`{"SecretId":"app/db","Rollback":"false"}`, `"Rollback" of the execution input must be a JSON boolean`},
			{`{"SecretId":"app/db","BakeSeconds":"10"}`, `"BakeSeconds" of the execution input must be a whole JSON number`},
			{`{"SecretId":["app/db"]}`, `"SecretId" of the execution input must be a JSON string, not an array`},
			{`{"SecretId":"app/db","BakeAlarms":"a"}`, `"BakeAlarms"`},
		}},
		"createsecret":    {svc.Create, ctxBad},
		"setsecret":       {svc.Set, ctxBad},
		"testsecret":      {svc.Test, ctxBad},
		"finishsecret":    {svc.Finish, ctxBad},
		"verify":          {svc.Verify, ctxBad},
		"releaselease":    {svc.Release, []bad{{`{"Rotation":{"SecretArn":"arn:s","Fencing":"3"}}`, `"Fencing"`}, {`{"Outcome":1}`, `"Outcome"`}}},
		"compensate":      {svc.Compensate, []bad{{`{"Rotation":{"Rollback":"yes"}}`, `"Rollback"`}, {`{"Mode":["rollback"]}`, `"Mode"`}}},
		"listsecrets":     {fl.List, []bad{{`{"TagKey":"k","TagValue":"v","Limit":"5"}`, `"Limit" of the fleet execution input must be a whole JSON number`}}},
		"fleetsummary":    {fl.Summarize, []bad{{`{"Results":{"a":1}}`, `"Results"`}}},
		"fleetreport":     {fl.Report, []bad{{`{"SecretId":"s","Error":"TestFailedError"}`, `"Error"`}}},
		"repair":          {svc.Repair, []bad{{`{"IgnoreBackoff":"yes"}`, `"IgnoreBackoff" of the repair function's input must be a JSON boolean`}}},
		"ephemeralissue":  {eph.Issue, []bad{{`{"TemplateId":"t","TTL":900}`, `"TTL" of the execution input (TemplateId, TTL, MaxTTL, Owner) must be a JSON string`}}},
		"ephemeralstatus": {eph.Status, []bad{{`{"LeaseId":7}`, `"LeaseId"`}}},
		"ephemeralrevoke": {eph.Revoke, []bad{{`{"LeaseId":"x","IfExists":"yes"}`, `"IfExists"`}}},
		"ephemeralalert":  {eph.Alert, []bad{{`{"LeaseId":"x","Error":"RetryableError"}`, `"Error"`}}},
		"ephemeralsweep":  {eph.Sweep, []bad{{`{"SkipCrossCheck":"yes"}`, `"SkipCrossCheck" of the sweeper's input must be a JSON boolean`}}},
		"nativerotation":  {nat.Handle, []bad{{`{"SecretId":"s","ClientRequestToken":"t","Step":1}`, `"Step" of the rotation event must be a JSON string`}}},
	}
	// Every function in functions/ is covered.
	dirs, err := os.ReadDir("../../functions")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		// accessaudit drops a bad event with a log line instead of
		// failing (EventBridge would retry it): shared/access tests that.
		if d.Name() == "accessaudit" {
			continue
		}
		if _, ok := tests[d.Name()]; d.IsDir() && !ok {
			t.Errorf("function %s has no input test", d.Name())
		}
	}
	srv := lambdalocal.New()
	for name, tt := range tests {
		srv.Register(name, tt.handler, 0)
	}
	url, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	for name, tt := range tests {
		for _, b := range tt.bad {
			t.Run(name+"/"+b.payload, func(t *testing.T) {
				res, err := http.Post(url+"/2015-03-31/functions/"+name+"/invocations", "application/json", strings.NewReader(b.payload))
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				body, _ := io.ReadAll(res.Body)
				var e struct{ ErrorType, ErrorMessage string }
				if err := json.Unmarshal(body, &e); err != nil || res.Header.Get("X-Amz-Function-Error") == "" {
					t.Fatalf("not a function error: %s", body)
				}
				if e.ErrorType != faults.NameInput || !strings.Contains(e.ErrorMessage, b.field) {
					t.Fatalf("errorType %s, message %q; want %s naming %s", e.ErrorType, e.ErrorMessage, faults.NameInput, b.field)
				}
			})
		}
	}
}

package smlocal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The four steps, in the order Secrets Manager invokes a rotation function
// ("createSecret, setSecret, testSecret, finishSecret").
var rotationSteps = []string{"createSecret", "setSecret", "testSecret", "finishSecret"}

// Rotation is one run of a rotation function that RotateSecret started.
type Rotation struct {
	SecretARN   string
	Token       string // the ClientRequestToken: the version being created
	FunctionARN string
	// Immediate is RotateImmediately: false runs only testSecret.
	Immediate bool
	// Steps lists the steps invoked, in order; when Err is set, the last
	// one failed and no later step was invoked.
	Steps []string
	Err   error
}

// FunctionError is a rotation step whose function returned an error
// (X-Amz-Function-Error), or an Invoke the Lambda endpoint refused.
type FunctionError struct {
	Status  int // HTTP status of the Invoke response
	Type    string
	Message string
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("status %d: %s: %s", e.Status, e.Type, e.Message)
}

// SetLambdaEndpoint sets where RotateSecret invokes rotation functions, for
// a stack that starts its Lambda endpoint after this server.
func (s *Server) SetLambdaEndpoint(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lambdaEndpoint = endpoint
}

// WaitRotations waits until every rotation started so far has finished and
// returns all finished rotations, oldest first. RotateSecret returns before
// its rotation runs, as AWS's does ("Configures and starts the asynchronous
// process of rotating the secret"), so tests wait here instead of polling.
// Call it after the RotateSecret calls it should wait for have returned.
func (s *Server) WaitRotations() []Rotation {
	s.running.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Rotation, len(s.rotations))
	for i, r := range s.rotations {
		r.Steps = slices.Clone(r.Steps)
		out[i] = r
	}
	return out
}

type rotationConfig struct {
	configured  bool // RotateSecret or CancelRotateSecret has run
	enabled     bool
	lambdaARN   string
	rules       *rules
	lastRotated time.Time
	next        time.Time // zero when it cannot be computed
	run         int       // id of the run in flight, 0 if none
	cancel      context.CancelFunc
}

func (r *rotationConfig) fill(o *secretOut) {
	if !r.configured {
		return
	}
	enabled := r.enabled
	o.RotationEnabled = &enabled
	o.RotationLambdaARN = r.lambdaARN
	if r.rules != nil {
		o.RotationRules = r.rules.out()
	}
	o.LastRotatedDate = ts(r.lastRotated)
	// "If the secret isn't configured for rotation or rotation has been
	// disabled, Secrets Manager returns null."
	if r.enabled {
		o.NextRotationDate = ts(r.next)
	}
}

type rulesIn struct {
	AutomaticallyAfterDays *int64
	Duration               *string
	ScheduleExpression     *string
}

type rulesOut struct {
	AutomaticallyAfterDays *int64 `json:",omitempty"`
	Duration               string `json:",omitempty"`
	ScheduleExpression     string `json:",omitempty"`
}

// rules is a validated RotationRulesType.
type rules struct {
	days     int64         // AutomaticallyAfterDays, or rate(N days)
	hours    int64         // rate(N hours)
	cron     *cronExpr     // cron(...)
	schedule string        // ScheduleExpression as given
	duration string        // Duration as given
	window   time.Duration // from Duration; 0: the default window
}

func (r *rules) out() *rulesOut {
	o := &rulesOut{Duration: r.duration, ScheduleExpression: r.schedule}
	// "In DescribeSecret and ListSecrets, this value is calculated from the
	// rotation schedule": a rate in days reads back as that many days.
	if r.days > 0 {
		d := r.days
		o.AutomaticallyAfterDays = &d
	}
	return o
}

func constraintErr(value any, member, constraint string) *apiError {
	return errf("ValidationException", "1 validation error detected: Value '%v' at 'rotationRules.%s' failed to satisfy constraint: Member must %s", value, member, constraint)
}

var (
	schedulePattern = regexp.MustCompile(`^[0-9A-Za-z\(\)#\?\*\-/, ]+$`)
	durationPattern = regexp.MustCompile(`^[0-9h]+$`)
	rateExpr        = regexp.MustCompile(`^rate\((\d+) (hours?|days?)\)$`)
	durationValue   = regexp.MustCompile(`^([0-9]+)h$`)
)

// parseRules validates RotationRules as the API reference's
// RotationRulesType does; nil in gives nil rules (keep what is stored).
func parseRules(in *rulesIn) (*rules, *apiError) {
	if in == nil || (in.AutomaticallyAfterDays == nil && in.ScheduleExpression == nil && in.Duration == nil) {
		return nil, nil
	}
	r := &rules{}
	// AutomaticallyAfterDays: "Valid Range: Minimum value of 1. Maximum
	// value of 1000."
	if d := in.AutomaticallyAfterDays; d != nil {
		if *d < 1 {
			return nil, constraintErr(*d, "automaticallyAfterDays", "have value greater than or equal to 1")
		}
		if *d > 1000 {
			return nil, constraintErr(*d, "automaticallyAfterDays", "have value less than or equal to 1000")
		}
		r.days = *d
	}
	// ScheduleExpressionType: length 1-256, pattern [0-9A-Za-z\(\)#\?\*\-\/, ]+.
	if e := in.ScheduleExpression; e != nil {
		if len(*e) < 1 || len(*e) > 256 {
			return nil, constraintErr(*e, "scheduleExpression", "have length between 1 and 256")
		}
		if !schedulePattern.MatchString(*e) {
			return nil, constraintErr(*e, "scheduleExpression", `satisfy regular expression pattern: [0-9A-Za-z\(\)#\?\*\-\/, ]+`)
		}
	}
	// DurationType: length 2-3, pattern [0-9h]+.
	if d := in.Duration; d != nil {
		if len(*d) < 2 || len(*d) > 3 {
			return nil, constraintErr(*d, "duration", "have length between 2 and 3")
		}
		if !durationPattern.MatchString(*d) {
			return nil, constraintErr(*d, "duration", "satisfy regular expression pattern: [0-9h]+")
		}
	}
	// "In RotateSecret, you can set the rotation schedule in RotationRules
	// with AutomaticallyAfterDays or ScheduleExpression, but not both."
	// The message is AWS's, recorded.
	if in.AutomaticallyAfterDays != nil && in.ScheduleExpression != nil {
		return nil, invalidParam("You cannot specify both rotation frequency and schedule expression together.")
	}
	if in.AutomaticallyAfterDays == nil && in.ScheduleExpression == nil {
		return nil, invalidParam("RotationRules must set AutomaticallyAfterDays or ScheduleExpression; Duration alone is not a schedule.")
	}
	if e := in.ScheduleExpression; e != nil {
		r.schedule = *e
		if m := rateExpr.FindStringSubmatch(*e); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			switch {
			case err != nil || n < 1:
				return nil, invalidParam("The rate in ScheduleExpression %q must be a positive number.", *e)
			case strings.HasPrefix(m[2], "hour"):
				// "You can rotate a secret as often as every four hours."
				if n < 4 {
					return nil, invalidParam("ScheduleExpression %q rotates more often than every four hours, the shortest interval Secrets Manager allows.", *e)
				}
				r.hours = n
			default:
				if n > 1000 {
					return nil, invalidParam("ScheduleExpression %q exceeds 1000 days.", *e)
				}
				r.days = n
			}
		} else if inner, ok := strings.CutPrefix(*e, "cron("); ok && strings.HasSuffix(inner, ")") {
			c, err := parseCron(strings.TrimSuffix(inner, ")"))
			if err != nil {
				return nil, invalidParam("Invalid cron expression %q: %v.", *e, err)
			}
			r.cron = c
		} else {
			return nil, invalidParam("ScheduleExpression %q must be a rate() or cron() expression, for example rate(10 days) or cron(0 16 1,15 * ? *).", *e)
		}
	}
	if d := in.Duration; d != nil {
		n := 0
		if m := durationValue.FindStringSubmatch(*d); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if n < 1 || n > 24 {
			return nil, invalidParam("Duration %q must be a number of hours from 1h to 24h.", *d)
		}
		r.duration, r.window = *d, time.Duration(n)*time.Hour
		// "The rotation window must not extend into the next UTC day or
		// into the next rotation window."
		if r.hours > 0 && int64(n) > r.hours {
			return nil, invalidParam("Duration %q extends into the next rotation window of %q.", *d, r.schedule)
		}
		if r.cron != nil && r.cron.fixedHour >= 0 && r.cron.fixedHour+n > 24 {
			return nil, invalidParam("Duration %q extends the rotation window of %q into the next UTC day.", *d, r.schedule)
		}
	}
	return r, nil
}

// nextWindow returns the last instant of the first rotation window that
// starts after from ("The next rotation is scheduled to occur on or before
// this date"), or the zero time when the schedule has no such window the
// emulator can compute.
func (r *rules) nextWindow(from time.Time) time.Time {
	from = from.UTC()
	day := from.Truncate(24 * time.Hour)
	var start time.Time
	var daily bool // windows in days close at the end of the UTC day
	switch {
	case r.days > 0:
		// "Secrets Manager schedules the date by adding the rotation
		// interval (number of days) to the actual date of the last
		// rotation"; a rate() window "starts at midnight".
		start, daily = day.AddDate(0, 0, int(r.days)), true
	case r.hours > 0:
		every := time.Duration(r.hours) * time.Hour
		start = day.Add((from.Sub(day)/every + 1) * every)
		if next := day.Add(24 * time.Hour); start.After(next) {
			start = next // rate windows restart at midnight
		}
	case r.cron != nil:
		var ok bool
		if start, ok = r.cron.next(from); !ok {
			return time.Time{}
		}
		daily = r.cron.fixedHour >= 0
	default:
		return time.Time{}
	}
	end := start.Add(time.Hour) // "For a rate in hours, the default rotation window closes after one hour"
	switch {
	case r.window > 0:
		end = start.Add(r.window)
	case daily:
		end = start.Truncate(24 * time.Hour).Add(24 * time.Hour)
	}
	return end.Add(-time.Second)
}

// --- RotateSecret and CancelRotateSecret ----------------------------------

type rotateIn struct {
	SecretId           *string
	ClientRequestToken *string
	RotationLambdaARN  *string
	RotationRules      *rulesIn
	RotateImmediately  *bool
}

type rotateTarget struct {
	sec      *secret
	fn       string
	endpoint string
	retry    any // the response to an idempotent retry, if this is one
}

// target resolves what a RotateSecret would rotate, or why it must not.
// Callers hold s.mu.
func (s *Server) target(in *rotateIn) (rotateTarget, *apiError) {
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return rotateTarget{}, err
	}
	// ClientRequestToken: "You only need to specify this value if you
	// implement your own retry logic and you want to ensure that Secrets
	// Manager doesn't attempt to create a secret version twice." A retry
	// answers as the first call did and starts nothing.
	if v := sec.versions[*in.ClientRequestToken]; v != nil {
		return rotateTarget{retry: rotateOut{sec.arn, sec.name, v.id}}, nil
	}
	fn := sec.rot.lambdaARN
	if in.RotationLambdaARN != nil {
		fn = *in.RotationLambdaARN
	}
	if fn == "" {
		// Recorded from AWS (aws secretsmanager rotate-secret on a secret
		// never given a function).
		return rotateTarget{}, errf("InvalidRequestException", "No Lambda rotation function ARN is associated with this secret.")
	}
	// "If the AWSPENDING staging label is present but not attached to the
	// same version as AWSCURRENT, then any later invocation of RotateSecret
	// assumes that a previous rotation request is still in progress and
	// returns an error." The message is AWS's, recorded.
	if p := sec.holder(stagePending); p != nil && p != sec.holder(stageCurrent) {
		return rotateTarget{}, errf("InvalidRequestException", "A previous rotation isn't complete. That rotation will be reattempted.")
	}
	if s.closed {
		return rotateTarget{}, errf("InternalServiceError", "the Secrets Manager emulator is shutting down")
	}
	if s.lambdaEndpoint == "" {
		return rotateTarget{}, errf("InternalServiceError", "smlocal has no Lambda endpoint to invoke %s: set Options.LambdaEndpoint or call SetLambdaEndpoint", fn)
	}
	return rotateTarget{sec: sec, fn: fn, endpoint: s.lambdaEndpoint}, nil
}

type rotateOut struct {
	ARN, Name string
	VersionId string
}

func (s *Server) rotateSecret(body []byte) (any, *apiError) {
	var in rotateIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	rl, err := parseRules(in.RotationRules)
	if err != nil {
		return nil, err
	}
	if err := requireToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	// The function check calls the Lambda endpoint, so it runs without the
	// lock; the target is resolved again under the lock afterwards, and
	// checked again if it changed meanwhile.
	checked := ""
	var t rotateTarget
	for {
		s.mu.Lock()
		t, err = s.target(&in)
		if err != nil || t.retry != nil || t.fn == checked {
			break
		}
		s.mu.Unlock()
		if err := s.checkFunction(t.endpoint, t.fn); err != nil {
			return nil, err
		}
		checked = t.fn
	}
	defer s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if t.retry != nil {
		return t.retry, nil
	}

	// "If you include the configuration parameters, the operation sets the
	// values for the secret and then immediately starts a rotation."
	sec, now := t.sec, s.now()
	sec.rot.configured, sec.rot.enabled, sec.rot.lambdaARN = true, true, t.fn
	if rl != nil {
		sec.rot.rules = rl
	}
	if sec.rot.rules != nil {
		base := sec.rot.lastRotated
		if base.IsZero() {
			base = now
		}
		sec.rot.next = sec.rot.rules.nextWindow(base)
	}
	// "During rotation, Secrets Manager creates an AWSPENDING version ID
	// before creating the new secret version": a version without a value.
	token := *in.ClientRequestToken
	v := &version{id: token, created: now}
	sec.versions[token] = v
	sec.order = append(sec.order, token)
	sec.attach(v, stagePending)
	sec.changed = now
	sec.prune()

	immediate := in.RotateImmediately == nil || *in.RotateImmediately
	steps := rotationSteps
	if !immediate {
		// "If you set RotateImmediately to false, Secrets Manager tests the
		// rotation configuration by running the testSecret step of the
		// Lambda rotation function. This test creates an AWSPENDING version
		// of the secret and then removes it."
		steps = []string{"testSecret"}
	}
	s.runSeq++
	id := s.runSeq
	ctx, cancel := context.WithCancel(s.base)
	sec.rot.run, sec.rot.cancel = id, cancel
	r := Rotation{SecretARN: sec.arn, Token: token, FunctionARN: t.fn, Immediate: immediate}
	s.running.Add(1)
	go s.rotate(ctx, cancel, id, r, steps, t.endpoint)
	return rotateOut{sec.arn, sec.name, token}, nil
}

// rotate invokes the steps in order and stops at the first that fails, as
// Secrets Manager does. It runs without s.mu: the function calls back into
// this server.
func (s *Server) rotate(ctx context.Context, cancel context.CancelFunc, id int, r Rotation, steps []string, endpoint string) {
	defer s.running.Done()
	defer cancel()
	// Recent rotation events carry RotationToken besides the three keys
	// AWS's templates read ("SecretId", "ClientRequestToken", "Step").
	rotationToken := uuid.NewString()
	for _, step := range steps {
		r.Steps = append(r.Steps, step)
		payload, _ := json.Marshal(map[string]string{
			"Step": step, "SecretId": r.SecretARN, "ClientRequestToken": r.Token, "RotationToken": rotationToken,
		})
		if err := s.invoke(ctx, endpoint, r.FunctionARN, payload, "RequestResponse"); err != nil {
			r.Err = fmt.Errorf("rotation of %s: step %s: %w", r.SecretARN, step, err)
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec, ok := s.byARN[r.SecretARN]; ok {
		if sec.rot.run == id {
			sec.rot.run, sec.rot.cancel = 0, nil
		}
		switch {
		case !r.Immediate:
			// The test version is removed whatever the test found; on
			// failure, AWS leaves the labels of a real rotation as they
			// are ("the AWSPENDING staging label might be attached to an
			// empty secret version").
			if v := sec.versions[r.Token]; v != nil {
				v.remove(stagePending)
			}
		case r.Err == nil:
			sec.rot.lastRotated = s.now()
			if sec.rot.rules != nil {
				sec.rot.next = sec.rot.rules.nextWindow(sec.rot.lastRotated)
			}
		}
	}
	s.rotations = append(s.rotations, r)
}

// invoke calls Lambda's Invoke operation (POST
// /2015-03-31/functions/{FunctionName}/invocations).
func (s *Server) invoke(ctx context.Context, endpoint, fn string, payload []byte, invocationType string) error {
	u := strings.TrimSuffix(endpoint, "/") + "/2015-03-31/functions/" + url.PathEscape(fn) + "/invocations"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Invocation-Type", invocationType)
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 && resp.Header.Get("X-Amz-Function-Error") == "" {
		return nil
	}
	fe := &FunctionError{Status: resp.StatusCode}
	var e struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
		Type         string `json:"Type"`
		Message      string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		fe.Type, fe.Message = e.ErrorType, e.ErrorMessage
		if fe.Type == "" {
			fe.Type, fe.Message = e.Type, e.Message
		}
	}
	if fe.Type == "" {
		fe.Type = resp.Header.Get("X-Amz-Function-Error")
	}
	return fe
}

// checkFunction makes sure the rotation function can be invoked, with a
// DryRun Invoke: "When you add a Lambda rotation function ARN to your
// secret, Secrets Manager checks the permissions of the function", and the
// caller gets "access denied" when it cannot.
func (s *Server) checkFunction(endpoint, fn string) *apiError {
	err := s.invoke(s.base, endpoint, fn, []byte("{}"), "DryRun")
	if err == nil {
		return nil
	}
	return errf("AccessDeniedException", "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.")
}

func (s *Server) cancelRotateSecret(body []byte) (any, *apiError) {
	var in idIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	// "Turns off automatic rotation, and if a rotation is currently in
	// progress, cancels the rotation." Labels stay where they are: "You
	// might need to remove the staging label AWSPENDING from the partially
	// created version."
	sec.rot.configured, sec.rot.enabled = true, false
	if sec.rot.cancel != nil {
		sec.rot.cancel()
	}
	out := struct {
		ARN, Name string
		// "The unique identifier of the version of the secret created
		// during the rotation. This version might not be complete".
		VersionId string `json:",omitempty"`
	}{ARN: sec.arn, Name: sec.name}
	if p := sec.holder(stagePending); p != nil && p != sec.holder(stageCurrent) {
		out.VersionId = p.id
	}
	return out, nil
}

// --- cron() ---------------------------------------------------------------

// cronExpr is a Secrets Manager cron() expression: six fields, minutes
// hours day-of-month month day-of-week year, as in EventBridge.
type cronExpr struct {
	fields [6]map[int]bool // nil: any value ("*" or "?")
	// special is set when a field uses L, W or #: the expression is
	// accepted, but the emulator does not compute its next window.
	special bool
	// fixedHour is the hour when the hours field is one number (a
	// schedule in days), else -1.
	fixedHour int
}

var cronRanges = [6][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {1, 7}, {1970, 2199}}

var cronNames = [6]map[string]int{
	3: {"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12},
	4: {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7},
}

func parseCron(expr string) (*cronExpr, error) {
	parts := strings.Fields(expr)
	if len(parts) != 6 {
		return nil, fmt.Errorf("want 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(parts))
	}
	c := &cronExpr{fixedHour: -1}
	for i, p := range parts {
		if p == "*" || p == "?" {
			continue
		}
		if (i == 2 || i == 4) && strings.ContainsAny(p, "LW#") {
			c.special = true
			continue
		}
		set := map[int]bool{}
		for _, item := range strings.Split(p, ",") {
			lo, hi, step := cronRanges[i][0], cronRanges[i][1], 1
			rng, st, hasStep := strings.Cut(item, "/")
			if hasStep {
				n, err := strconv.Atoi(st)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("bad step %q", item)
				}
				step = n
			}
			if rng != "*" {
				a, b, isRange := strings.Cut(rng, "-")
				var err error
				if lo, err = cronValue(i, a); err != nil {
					return nil, err
				}
				switch {
				case isRange:
					if hi, err = cronValue(i, b); err != nil {
						return nil, err
					}
				case !hasStep:
					hi = lo
				}
			}
			if lo > hi {
				return nil, fmt.Errorf("empty range %q", item)
			}
			for v := lo; v <= hi; v += step {
				set[v] = true
			}
		}
		c.fields[i] = set
	}
	if h := c.fields[1]; len(h) == 1 {
		for v := range h {
			c.fixedHour = v
		}
	}
	return c, nil
}

func cronValue(field int, s string) (int, error) {
	if v, ok := cronNames[field][strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < cronRanges[field][0] || v > cronRanges[field][1] {
		return 0, fmt.Errorf("value %q out of range %d-%d", s, cronRanges[field][0], cronRanges[field][1])
	}
	return v, nil
}

func (c *cronExpr) match(field, v int) bool { return c.fields[field] == nil || c.fields[field][v] }

// next is the first minute after from that the expression names, within
// five years.
func (c *cronExpr) next(from time.Time) (time.Time, bool) {
	if c.special {
		return time.Time{}, false
	}
	first := from.Truncate(time.Minute).Add(time.Minute)
	day := first.Truncate(24 * time.Hour)
	for d := 0; d < 5*366; d++ {
		t := day.AddDate(0, 0, d)
		if !c.match(5, t.Year()) || !c.match(3, int(t.Month())) || !c.match(2, t.Day()) || !c.match(4, int(t.Weekday())+1) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !c.match(1, h) {
				continue
			}
			for m := 0; m < 60; m++ {
				at := t.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
				if c.match(0, m) && !at.Before(first) {
					return at, true
				}
			}
		}
	}
	return time.Time{}, false
}

// Package smlocal is an in-process AWS Secrets Manager emulator that speaks
// the real awsJson1.1 wire protocol, so the product's code paths run through
// the unmodified aws-sdk-go-v2 client (serialisation, typed errors, retries)
// instead of through a hand-written fake interface.
//
// It models the parts of Secrets Manager that rotation depends on: versions
// (including the empty AWSPENDING version RotateSecret creates), staging
// labels and their AWSCURRENT/AWSPREVIOUS bookkeeping, idempotent
// ClientRequestTokens, RotateSecret driving a rotation function through a
// Lambda Invoke endpoint, scheduled deletion, and write throttling. Each
// behaviour's test names the AWS API reference sentence or the recorded AWS
// response it follows; README.md lists what is not modelled.
package smlocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Staging labels Secrets Manager itself manages.
const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
	stagePending  = "AWSPENDING"
)

const (
	maxSecretSize = 65536
	// AWS keeps at most about 100 versions and drops deprecated (unlabelled)
	// ones beyond that; mirroring it keeps long-running demos bounded.
	maxVersions = 100
	maxBodySize = 4 << 20
)

// Options configures a Server.
type Options struct {
	Region, AccountID string // defaults "us-east-1", "000000000000"
	// WriteRPS, when > 0, limits PutSecretValue, UpdateSecretVersionStage and
	// UpdateSecret combined (like AWS's shared write quota) with a token
	// bucket of burst max(1, WriteRPS); excess requests get
	// ThrottlingException. 0 means unlimited.
	WriteRPS float64
	// OnCall, if set, is called for every request with the operation name.
	OnCall func(op string)
	// Now, if set, replaces time.Now for timestamps in responses.
	Now func() time.Time
	// LambdaEndpoint is the base URL of a Lambda Invoke API
	// ("http://127.0.0.1:PORT", as integration/lambdalocal serves it).
	// RotateSecret invokes rotation functions there. It may also be set
	// after Start with SetLambdaEndpoint.
	LambdaEndpoint string
	// Trail, if set, receives the CloudTrail record of every call served
	// (trail.go), as EventBridge delivers it: the local stack puts it on
	// integration/eventslocal's default bus.
	Trail func(TrailRecord)
	// Principals maps a request's SigV4 access key id to the principal ARN
	// its records name (an IAM user, a role, whose requests then come from
	// an assumed-role session, or an assumed-role session ARN); other keys
	// are DefaultPrincipal (default arn:aws:iam::ACCOUNT:user/smlocal-default).
	Principals       map[string]string
	DefaultPrincipal string
}

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	opts Options
	srv  *http.Server

	mu      sync.Mutex
	secrets map[string]*secret // by name
	// byARN and byPartial index secrets by ARN and by ARN without its
	// random suffix, and pending holds those scheduled for deletion, so
	// that a lookup costs the same with 10,000 secrets as with ten (the
	// fleet bench); add and remove keep them with secrets.
	byARN, byPartial map[string]*secret
	pending          map[*secret]bool
	// listed caches ListSecrets' selection (the matching secrets in
	// creation order) per filter set; listGen counts the changes that can
	// alter one (a secret created, removed, tagged, untagged, described,
	// deleted or restored), so a fleet's listing, which asks for the same
	// selection page after page while rotations change only versions,
	// filters the account once instead of at every call. Answers are as
	// without it.
	listed  map[string]listing
	listGen uint64
	seq     int
	calls   map[string]int

	// The limiter runs on the real clock even when Options.Now is injected:
	// throttling is about how fast the client actually calls, and a frozen
	// test clock would otherwise never refill the bucket.
	tokens     float64
	lastFill   time.Time
	writeClock func() time.Time // time.Now; tests make it tick per request

	// Rotation runs (see rotation.go). lambdaEndpoint is guarded by mu.
	lambdaEndpoint string
	httpClient     *http.Client
	base           context.Context // cancelled by Close: ends in-flight rotations
	cancel         context.CancelFunc
	running        sync.WaitGroup
	closed         bool
	runSeq         int
	rotations      []Rotation        // finished runs, oldest first
	principals     map[string]string // SetPrincipal's, guarded by mu
}

type tag struct {
	Key   string
	Value string
}

type version struct {
	id string
	// hasValue is false for the version RotateSecret creates before it
	// invokes the rotation function: AWS's reference says "During rotation,
	// Secrets Manager creates an AWSPENDING version ID before creating the
	// new secret version", and "When rotation is unsuccessful, the
	// AWSPENDING staging label might be attached to an empty secret version".
	hasValue bool
	str      *string
	bin      []byte
	stages   []string
	created  time.Time
	accessed time.Time // day of the last GetSecretValue that returned it
}

type secret struct {
	seq          int
	arn, name    string
	description  string
	kmsKeyID     string
	tags         []tag
	versions     map[string]*version
	order        []string // version ids, oldest first
	created      time.Time
	changed      time.Time
	accessed     time.Time
	deleted      time.Time // zero unless scheduled for deletion
	deletionDate time.Time
	rot          rotationConfig
	policy       string // resource policy (policy.go)
}

// Start listens on a loopback port and serves until Close. It returns the
// base URL to use as the SDK's BaseEndpoint.
func Start(o Options) (*Server, string, error) {
	s := newServer(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, "http://" + ln.Addr().String(), nil
}

func newServer(o Options) *Server {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "000000000000"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{opts: o, secrets: map[string]*secret{}, byARN: map[string]*secret{}, byPartial: map[string]*secret{}, pending: map[*secret]bool{}, calls: map[string]int{}}
	s.tokens = max(1, o.WriteRPS)
	s.writeClock = time.Now
	s.lastFill = s.writeClock()
	s.lambdaEndpoint = o.LambdaEndpoint
	s.httpClient = &http.Client{}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

// Close cancels rotations still running (their current Invoke is
// abandoned, as a caller's would be), waits for them, then stops the
// listener and drops open connections.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.running.Wait()
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Calls returns how many requests each operation has received, including
// rejected and throttled ones, so tests can observe SDK retries.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetCalls zeroes the call counters.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

// Handler returns the protocol handler, for use with httptest.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

type apiError struct {
	typ, msg string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func errf(typ, format string, args ...any) *apiError {
	return &apiError{typ: typ, msg: fmt.Sprintf(format, args...)}
}

func invalidParam(format string, args ...any) *apiError {
	return errf("InvalidParameterException", format, args...)
}

var (
	errNotFound = &apiError{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
	errDeleted  = &apiError{"InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion."}
	errThrottle = &apiError{"ThrottlingException", "Rate exceeded"}
	// Recorded from AWS for a name outside the allowed characters, on every
	// operation that takes a name or SecretId.
	errInvalidName = &apiError{"ValidationException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"}
	// Recorded from AWS for a raw request (no SDK to fill the idempotency
	// token) that creates a version without ClientRequestToken.
	errNoToken = &apiError{"InvalidRequestException", "You must provide a ClientRequestToken value. We recommend a UUID-type value."}
)

type opFunc func(s *Server, body []byte) (any, *apiError)

var ops = map[string]opFunc{
	"CreateSecret":             (*Server).createSecret,
	"DescribeSecret":           (*Server).describeSecret,
	"GetSecretValue":           (*Server).getSecretValue,
	"PutSecretValue":           (*Server).putSecretValue,
	"UpdateSecret":             (*Server).updateSecret,
	"UpdateSecretVersionStage": (*Server).updateSecretVersionStage,
	"ListSecretVersionIds":     (*Server).listSecretVersionIDs,
	"ListSecrets":              (*Server).listSecrets,
	"TagResource":              (*Server).tagResource,
	"UntagResource":            (*Server).untagResource,
	"DeleteSecret":             (*Server).deleteSecret,
	"RestoreSecret":            (*Server).restoreSecret,
	"GetRandomPassword":        (*Server).getRandomPassword,
	"CancelRotateSecret":       (*Server).cancelRotateSecret,
	"PutResourcePolicy":        (*Server).putResourcePolicy,
	"GetResourcePolicy":        (*Server).getResourcePolicy,
	"DeleteResourcePolicy":     (*Server).deleteResourcePolicy,
}

// unlocked names the operations that take s.mu themselves, because they
// call out (RotateSecret checks its function through the Lambda endpoint).
var unlocked = map[string]opFunc{
	"RotateSecret": (*Server).rotateSecret,
}

// throttled names the operations sharing AWS's combined write quota.
var throttled = map[string]bool{
	"PutSecretValue":           true,
	"UpdateSecretVersionStage": true,
	"UpdateSecret":             true,
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if w.Header().Get("X-Amzn-RequestId") == "" {
		w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	writeJSON(w, http.StatusBadRequest, map[string]string{"__type": e.typ, "message": e.msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	if !ok || op == "" {
		writeError(w, errf("UnknownOperationException", "missing or foreign X-Amz-Target %q", r.Header.Get("X-Amz-Target")))
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	// Outside the lock so a callback may inspect the server.
	if s.opts.OnCall != nil {
		s.opts.OnCall(op)
	}
	fn, ok := ops[op]
	selfLocking := false
	if !ok {
		fn, ok = unlocked[op]
		selfLocking = ok
	}
	if !ok || r.Method != http.MethodPost {
		writeError(w, errf("UnknownOperationException", "operation %s is not supported", op))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		writeError(w, errf("SerializationException", "could not read request body"))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		writeError(w, errf("SerializationException", "request body is not valid JSON"))
		return
	}
	// From here on the call is served, so CloudTrail records it, denied or
	// failed alike (trail.go).
	c := s.newCall(r, op)
	c.body = body
	w.Header().Set("X-Amzn-RequestId", c.requestID)
	out, apiErr := s.call(c, fn, selfLocking)
	s.record(c, out, apiErr)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// call runs one operation: the resource policy's explicit Deny first, then
// the write quota, then the operation.
func (s *Server) call(c *call, fn opFunc, selfLocking bool) (any, *apiError) {
	s.mu.Lock()
	if e := s.denied(c.op, c.body, c.principal); e != nil {
		s.mu.Unlock()
		return nil, e
	}
	if selfLocking {
		s.mu.Unlock()
		return fn(s, c.body)
	}
	defer s.mu.Unlock()
	if throttled[c.op] && !s.allowWrite() {
		return nil, errThrottle
	}
	return fn(s, c.body)
}

// allowWrite takes one token from the write bucket. Callers hold s.mu.
func (s *Server) allowWrite() bool {
	rate := s.opts.WriteRPS
	if rate <= 0 {
		return true
	}
	now := s.writeClock()
	s.tokens = min(max(1, rate), s.tokens+now.Sub(s.lastFill).Seconds()*rate)
	s.lastFill = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errf("SerializationException", "unexpected type for field %s", te.Field)
		}
		return errf("SerializationException", "malformed request body")
	}
	return nil
}

// epoch marshals as fractional epoch seconds, the awsJson1.1 timestamp form.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(e).UnixMilli())/1000, 'f', -1, 64)), nil
}

func ts(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

func (s *Server) now() time.Time { return s.opts.Now() }

// --- lookup ---------------------------------------------------------------

// purgeExpired forgets secrets whose recovery window has passed, as AWS does.
func (s *Server) purgeExpired() {
	now := s.now()
	for sec := range s.pending {
		if !now.Before(sec.deletionDate) {
			s.remove(sec)
		}
	}
}

// listing is one cached ListSecrets selection.
type listing struct {
	gen     uint64
	secrets []*secret
}

// selectionChanged drops the cached ListSecrets selections: a secret came,
// went, or changed what the filters match (name, description, tags,
// deletion).
func (s *Server) selectionChanged() { s.listGen++ }

// add makes sec known by its name and ARNs.
func (s *Server) add(sec *secret) {
	s.selectionChanged()
	s.secrets[sec.name] = sec
	s.byARN[sec.arn] = sec
	s.byPartial[sec.arn[:len(sec.arn)-7]] = sec
}

// remove forgets sec.
func (s *Server) remove(sec *secret) {
	s.selectionChanged()
	delete(s.secrets, sec.name)
	delete(s.byARN, sec.arn)
	delete(s.byPartial, sec.arn[:len(sec.arn)-7])
	delete(s.pending, sec)
}

// find resolves a SecretId given as name, full ARN, or partial ARN (the ARN
// without its random six-character suffix).
func (s *Server) find(id *string) (*secret, *apiError) {
	if id == nil || *id == "" {
		return nil, invalidParam("SecretId is required.")
	}
	if !strings.HasPrefix(*id, "arn:") && !validName(*id) {
		return nil, errInvalidName
	}
	s.purgeExpired()
	if strings.HasPrefix(*id, "arn:") {
		if sec, ok := s.byARN[*id]; ok {
			return sec, nil
		}
		if sec, ok := s.byPartial[*id]; ok {
			return sec, nil
		}
		return nil, errNotFound
	}
	if sec, ok := s.secrets[*id]; ok {
		return sec, nil
	}
	return nil, errNotFound
}

func (s *Server) findLive(id *string) (*secret, *apiError) {
	sec, err := s.find(id)
	if err != nil {
		return nil, err
	}
	if !sec.deleted.IsZero() {
		return nil, errDeleted
	}
	return sec, nil
}

func (sec *secret) holder(stage string) *version {
	for _, id := range sec.order {
		v := sec.versions[id]
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

func (v *version) remove(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
}

func (v *version) add(stage string) {
	if !slices.Contains(v.stages, stage) {
		v.stages = append(v.stages, stage)
	}
}

// attach gives stage to v, taking it from its previous holder. Moving
// AWSCURRENT demotes the old current version to AWSPREVIOUS, the bookkeeping
// rotation relies on for rollback.
func (sec *secret) attach(v *version, stage string) {
	old := sec.holder(stage)
	if old == v {
		return
	}
	if old != nil {
		old.remove(stage)
	}
	if stage == stageCurrent && old != nil {
		if p := sec.holder(stagePrevious); p != nil {
			p.remove(stagePrevious)
		}
		old.add(stagePrevious)
	}
	v.add(stage)
}

func (sec *secret) stageMap() map[string][]string {
	m := map[string][]string{}
	for _, id := range sec.order {
		v := sec.versions[id]
		if len(v.stages) > 0 {
			m[id] = slices.Clone(v.stages)
		}
	}
	return m
}

// prune drops the oldest deprecated versions once over the AWS version cap.
func (sec *secret) prune() {
	for len(sec.order) > maxVersions {
		i := slices.IndexFunc(sec.order, func(id string) bool { return len(sec.versions[id].stages) == 0 })
		if i < 0 {
			return
		}
		delete(sec.versions, sec.order[i])
		sec.order = slices.Delete(sec.order, i, i+1)
	}
}

// --- validation -----------------------------------------------------------

func validName(n string) bool {
	if n == "" || len(n) > 512 {
		return false
	}
	for _, c := range n {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("/_+=.@-", c):
		default:
			return false
		}
	}
	return true
}

func validToken(tok *string) *apiError {
	if tok != nil && (len(*tok) < 32 || len(*tok) > 64) {
		return invalidParam("ClientRequestToken must be between 32 and 64 characters long.")
	}
	return nil
}

// requireToken rejects a request that would create a version without a
// ClientRequestToken. The SDKs always send one (an idempotency token they
// generate), so only raw requests get here.
func requireToken(tok *string) *apiError {
	if tok == nil || *tok == "" {
		return errNoToken
	}
	return nil
}

// checkValue enforces AWS's one-of and size rules; required says whether a
// value must be present at all.
func checkValue(str *string, bin []byte, required bool) *apiError {
	if str != nil && bin != nil {
		return invalidParam("You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if str == nil && bin == nil {
		if required {
			return errf("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
		}
		return nil
	}
	if str != nil && len(*str) > maxSecretSize {
		return invalidParam("SecretString exceeds maximum size of %d bytes.", maxSecretSize)
	}
	if len(bin) > maxSecretSize {
		return invalidParam("SecretBinary exceeds maximum size of %d bytes.", maxSecretSize)
	}
	return nil
}

func sameValue(v *version, str *string, bin []byte) bool {
	if !v.hasValue {
		return false
	}
	if (v.str == nil) != (str == nil) {
		return false
	}
	if str != nil {
		return *v.str == *str
	}
	return bytes.Equal(v.bin, bin)
}

// putVersion stores a new version under token (callers have required it),
// recognises an idempotent retry of one, or gives the empty version
// RotateSecret created for token its value: the rotation function's
// createSecret step does exactly that (PutSecretValue with the event's
// ClientRequestToken and VersionStages [AWSPENDING]).
func (s *Server) putVersion(sec *secret, token string, str *string, bin []byte, stages []string) (*version, *apiError) {
	v, exists := sec.versions[token]
	if exists && v.hasValue {
		if sameValue(v, str, bin) {
			return v, nil // "the request is ignored"
		}
		return nil, errf("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
	}
	if len(stages) == 0 {
		stages = []string{stageCurrent}
		// Recorded from AWS: without VersionStages, when the AWSCURRENT
		// version also carries AWSPENDING (a finished rotation, as AWS's
		// templates leave it), the old version keeps only AWSPREVIOUS.
		if old := sec.holder(stageCurrent); old != nil && old.id != token {
			old.remove(stagePending)
		}
	}
	if !exists {
		v = &version{id: token, created: s.now()}
		sec.versions[token] = v
		sec.order = append(sec.order, token)
	}
	v.hasValue = true
	if str != nil {
		c := *str
		v.str = &c
	} else {
		v.bin = slices.Clone(bin)
	}
	for _, st := range stages {
		sec.attach(v, st)
	}
	sec.changed = s.now()
	sec.prune()
	return v, nil
}

// --- operations -----------------------------------------------------------

func (s *Server) createSecret(body []byte) (any, *apiError) {
	var in struct {
		Name               *string
		Description        *string
		KmsKeyId           *string
		SecretString       *string
		SecretBinary       []byte
		ClientRequestToken *string
		Tags               []tag
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Name == nil || *in.Name == "" {
		return nil, invalidParam("Name is required.")
	}
	if !validName(*in.Name) {
		return nil, errInvalidName
	}
	if err := validToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary, false); err != nil {
		return nil, err
	}
	if in.SecretString != nil || in.SecretBinary != nil {
		if err := requireToken(in.ClientRequestToken); err != nil {
			return nil, err
		}
	}
	s.purgeExpired()
	if old, ok := s.secrets[*in.Name]; ok {
		if !old.deleted.IsZero() {
			return nil, errf("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		return nil, errf("ResourceExistsException", "The operation failed because the secret %s already exists.", *in.Name)
	}
	now := s.now()
	s.seq++
	sec := &secret{
		seq:      s.seq,
		name:     *in.Name,
		arn:      s.arnFor(*in.Name),
		versions: map[string]*version{},
		created:  now,
		changed:  now,
	}
	if in.Description != nil {
		sec.description = *in.Description
	}
	if in.KmsKeyId != nil {
		sec.kmsKeyID = *in.KmsKeyId
	}
	sec.tags = mergeTags(nil, in.Tags)
	out := struct {
		ARN, Name string
		VersionId string `json:",omitempty"`
	}{ARN: sec.arn, Name: sec.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		v, err := s.putVersion(sec, *in.ClientRequestToken, in.SecretString, in.SecretBinary, nil)
		if err != nil {
			return nil, err
		}
		out.VersionId = v.id
	}
	s.add(sec)
	return out, nil
}

type secretOut struct {
	ARN         string
	Name        string
	Description string `json:",omitempty"`
	KmsKeyId    string `json:",omitempty"`
	// RotationEnabled is absent until rotation has been configured
	// (recorded from AWS: DescribeSecret of a never-rotated secret has no
	// RotationEnabled field at all).
	RotationEnabled   *bool     `json:",omitempty"`
	RotationLambdaARN string    `json:",omitempty"`
	RotationRules     *rulesOut `json:",omitempty"`
	LastRotatedDate   *epoch    `json:",omitempty"`
	NextRotationDate  *epoch    `json:",omitempty"`
	// Tags is [] rather than absent for a secret without tags (recorded
	// from AWS's DescribeSecret).
	Tags                   []tag
	VersionIdsToStages     map[string][]string `json:",omitempty"`
	SecretVersionsToStages map[string][]string `json:",omitempty"`
	CreatedDate            *epoch              `json:",omitempty"`
	LastChangedDate        *epoch              `json:",omitempty"`
	LastAccessedDate       *epoch              `json:",omitempty"`
	DeletedDate            *epoch              `json:",omitempty"`
}

func (sec *secret) out() secretOut {
	o := secretOut{
		ARN:              sec.arn,
		Name:             sec.name,
		Description:      sec.description,
		KmsKeyId:         sec.kmsKeyID,
		Tags:             append([]tag{}, sec.tags...),
		CreatedDate:      ts(sec.created),
		LastChangedDate:  ts(sec.changed),
		LastAccessedDate: ts(sec.accessed),
		DeletedDate:      ts(sec.deleted),
	}
	sec.rot.fill(&o)
	return o
}

type idIn struct {
	SecretId *string
}

func (s *Server) describeSecret(body []byte) (any, *apiError) {
	var in idIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	o := sec.out()
	o.VersionIdsToStages = sec.stageMap()
	return o, nil
}

func (s *Server) getSecretValue(body []byte) (any, *apiError) {
	var in struct {
		SecretId     *string
		VersionId    *string
		VersionStage *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	var v *version
	switch {
	case in.VersionId != nil:
		v = sec.versions[*in.VersionId]
		if v == nil {
			return nil, errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", *in.VersionId)
		}
		if in.VersionStage != nil && !slices.Contains(v.stages, *in.VersionStage) {
			return nil, errf("InvalidRequestException", "You provided a VersionStage that is not associated to the provided VersionId.")
		}
		if !v.hasValue {
			return nil, errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", *in.VersionId)
		}
	default:
		stage := stageCurrent
		if in.VersionStage != nil {
			stage = *in.VersionStage
		}
		v = sec.holder(stage)
		if v == nil || !v.hasValue {
			return nil, errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	// AWS reports access dates to the day.
	day := s.now().UTC().Truncate(24 * time.Hour)
	sec.accessed, v.accessed = day, day
	return struct {
		ARN           string
		Name          string
		VersionId     string
		SecretString  *string `json:",omitempty"`
		SecretBinary  []byte  `json:",omitempty"`
		VersionStages []string
		CreatedDate   *epoch
	}{sec.arn, sec.name, v.id, v.str, v.bin, slices.Clone(v.stages), ts(v.created)}, nil
}

type versionOut struct {
	ARN, Name     string
	VersionId     string
	VersionStages []string
}

func (s *Server) putSecretValue(body []byte) (any, *apiError) {
	var in struct {
		SecretId           *string
		ClientRequestToken *string
		SecretString       *string
		SecretBinary       []byte
		VersionStages      []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary, true); err != nil {
		return nil, err
	}
	if err := requireToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	v, err := s.putVersion(sec, *in.ClientRequestToken, in.SecretString, in.SecretBinary, in.VersionStages)
	if err != nil {
		return nil, err
	}
	return versionOut{sec.arn, sec.name, v.id, slices.Clone(v.stages)}, nil
}

func (s *Server) updateSecret(body []byte) (any, *apiError) {
	var in struct {
		SecretId           *string
		ClientRequestToken *string
		Description        *string
		KmsKeyId           *string
		SecretString       *string
		SecretBinary       []byte
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary, false); err != nil {
		return nil, err
	}
	if in.SecretString != nil || in.SecretBinary != nil {
		if err := requireToken(in.ClientRequestToken); err != nil {
			return nil, err
		}
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	out := struct {
		ARN, Name string
		VersionId string `json:",omitempty"`
	}{ARN: sec.arn, Name: sec.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		v, err := s.putVersion(sec, *in.ClientRequestToken, in.SecretString, in.SecretBinary, nil)
		if err != nil {
			return nil, err
		}
		out.VersionId = v.id
	}
	if in.Description != nil {
		sec.description = *in.Description
		s.selectionChanged()
	}
	if in.KmsKeyId != nil {
		sec.kmsKeyID = *in.KmsKeyId
	}
	sec.changed = s.now()
	return out, nil
}

func (s *Server) updateSecretVersionStage(body []byte) (any, *apiError) {
	var in struct {
		SecretId            *string
		VersionStage        *string
		MoveToVersionId     *string
		RemoveFromVersionId *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.VersionStage == nil || *in.VersionStage == "" {
		return nil, invalidParam("VersionStage is required.")
	}
	if in.MoveToVersionId == nil && in.RemoveFromVersionId == nil {
		return nil, invalidParam("You must specify MoveToVersionId or RemoveFromVersionId.")
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	stage := *in.VersionStage
	holder := sec.holder(stage)
	var from *version
	if in.RemoveFromVersionId != nil {
		from = sec.versions[*in.RemoveFromVersionId]
		if from == nil {
			return nil, errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret version: %s", *in.RemoveFromVersionId)
		}
	}
	out := struct{ ARN, Name string }{sec.arn, sec.name}
	if in.MoveToVersionId != nil {
		to := sec.versions[*in.MoveToVersionId]
		if to == nil {
			return nil, errf("ResourceNotFoundException", "Secrets Manager can't find the specified secret version: %s", *in.MoveToVersionId)
		}
		if holder == to {
			return out, nil
		}
		if holder != nil && from == nil {
			return nil, invalidParam("The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", stage, holder.id)
		}
		if holder != nil && from != holder {
			return nil, invalidParam("The parameter RemoveFromVersionId doesn't match. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", stage, holder.id)
		}
		if holder == nil && from != nil {
			return nil, invalidParam("Staging label %s is not attached to version %s.", stage, from.id)
		}
		sec.attach(to, stage)
	} else {
		if from != holder {
			return nil, invalidParam("Staging label %s is not attached to version %s.", stage, from.id)
		}
		from.remove(stage)
	}
	sec.changed = s.now()
	return out, nil
}

// page slices n items by an opaque offset token.
func page(n int, maxResults *int32, token *string) (lo, hi int, next *string, err *apiError) {
	limit := 100
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 100 {
			return 0, 0, nil, invalidParam("MaxResults must be between 1 and 100.")
		}
		limit = int(*maxResults)
	}
	if token != nil && *token != "" {
		raw, decErr := base64.RawURLEncoding.DecodeString(*token)
		off, convErr := strconv.Atoi(strings.TrimPrefix(string(raw), "off:"))
		if decErr != nil || convErr != nil || !strings.HasPrefix(string(raw), "off:") || off < 0 || off > n {
			return 0, 0, nil, errf("InvalidNextTokenException", "The NextToken value is invalid.")
		}
		lo = off
	}
	hi = min(n, lo+limit)
	if hi < n {
		t := base64.RawURLEncoding.EncodeToString([]byte("off:" + strconv.Itoa(hi)))
		next = &t
	}
	return lo, hi, next, nil
}

func (s *Server) listSecretVersionIDs(body []byte) (any, *apiError) {
	var in struct {
		SecretId          *string
		IncludeDeprecated bool
		MaxResults        *int32
		NextToken         *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	type entry struct {
		VersionId        string
		VersionStages    []string `json:",omitempty"`
		CreatedDate      *epoch
		KmsKeyIds        []string `json:",omitempty"`
		LastAccessedDate *epoch   `json:",omitempty"`
	}
	// Recorded from AWS: KmsKeyIds names the key that encrypts the version,
	// "DefaultEncryptionKey" when the secret has no customer key.
	keys := []string{"DefaultEncryptionKey"}
	if sec.kmsKeyID != "" {
		keys = []string{sec.kmsKeyID}
	}
	all := []entry{}
	for _, id := range sec.order {
		v := sec.versions[id]
		if len(v.stages) == 0 && !in.IncludeDeprecated {
			continue
		}
		e := entry{VersionId: v.id, VersionStages: slices.Clone(v.stages), CreatedDate: ts(v.created), LastAccessedDate: ts(v.accessed)}
		// An empty version has nothing encrypted, so it names no key (not
		// recorded from AWS).
		if v.hasValue {
			e.KmsKeyIds = slices.Clone(keys)
		}
		all = append(all, e)
	}
	lo, hi, next, err := page(len(all), in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	return struct {
		ARN, Name string
		Versions  []entry
		NextToken *string `json:",omitempty"`
	}{sec.arn, sec.name, all[lo:hi], next}, nil
}

type filter struct {
	Key    string
	Values []string
}

// matchOne applies AWS's filter semantics: prefix match per value, a leading
// "!" negates, values within one filter are ORed. split turns a value into
// the words any of which may match (the "all" key); fold makes the match
// case-insensitive.
func matchOne(candidates, values []string, split func(string) []string, fold bool) bool {
	if fold {
		for i, c := range candidates {
			candidates[i] = strings.ToLower(c)
		}
	}
	for _, val := range values {
		neg := strings.HasPrefix(val, "!")
		val = strings.TrimPrefix(val, "!")
		if fold {
			val = strings.ToLower(val)
		}
		hit := slices.ContainsFunc(split(val), func(w string) bool {
			return slices.ContainsFunc(candidates, func(c string) bool { return strings.HasPrefix(c, w) })
		})
		if hit != neg {
			return true
		}
	}
	return false
}

// searchWords splits text into words as the console search does: "The words
// are separated by any change from uppercase to lowercase, from letter to
// number, or from number/letter to punctuation."
func searchWords(text string) []string {
	var words []string
	var cur []rune
	kind := func(r rune) int {
		switch {
		case r >= 'a' && r <= 'z':
			return 1
		case r >= 'A' && r <= 'Z':
			return 2
		case r >= '0' && r <= '9':
			return 3
		}
		return 0
	}
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	prev := 0
	for _, r := range text {
		k := kind(r)
		switch {
		case k == 0:
			flush()
		// "credsDatabase" splits before the capital; "Database" stays one word.
		case prev != 0 && k != prev && !(prev == 2 && k == 1):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
		prev = k
	}
	flush()
	return words
}

func (sec *secret) matches(filters []filter) bool {
	whole := func(v string) []string { return []string{v} }
	for _, f := range filters {
		var cand []string
		split, fold := whole, false
		switch f.Key {
		case "name":
			cand = []string{sec.name}
		case "description":
			// "Prefix match, not case-sensitive", and recorded from AWS:
			// the prefix may start any word of the description, not only
			// the first.
			cand, fold = strings.Fields(sec.description), true
		case "tag-key":
			for _, t := range sec.tags {
				cand = append(cand, t.Key)
			}
		case "tag-value":
			for _, t := range sec.tags {
				cand = append(cand, t.Value)
			}
		case "all":
			// "Breaks the filter value string into words and then searches
			// all attributes for matches. Not case-sensitive."
			for _, a := range append([]string{sec.name, sec.description}, tagStrings(sec.tags)...) {
				cand = append(cand, searchWords(a)...)
			}
			split, fold = searchWords, true
		}
		if !matchOne(cand, f.Values, split, fold) {
			return false
		}
	}
	return true
}

func tagStrings(tags []tag) []string {
	var out []string
	for _, t := range tags {
		out = append(out, t.Key, t.Value)
	}
	return out
}

var filterKeys = []string{"name", "description", "tag-key", "tag-value", "all", "primary-region", "owning-service"}

func (s *Server) listSecrets(body []byte) (any, *apiError) {
	var in struct {
		Filters                []filter
		MaxResults             *int32
		NextToken              *string
		IncludePlannedDeletion bool
		SortOrder              string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	for _, f := range in.Filters {
		if !slices.Contains(filterKeys, f.Key) {
			return nil, errf("ValidationException", "Filters.Key %q is not valid.", f.Key)
		}
	}
	s.purgeExpired()
	list := s.selection(in.Filters, in.IncludePlannedDeletion, in.SortOrder == "desc")
	lo, hi, next, err := page(len(list), in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	entries := []secretOut{}
	for _, sec := range list[lo:hi] {
		o := sec.out()
		o.SecretVersionsToStages = sec.stageMap()
		entries = append(entries, o)
	}
	return struct {
		SecretList []secretOut
		NextToken  *string `json:",omitempty"`
	}{entries, next}, nil
}

// selection is the secrets ListSecrets lists for these filters, in
// creation order (which keeps paging stable across calls), from the cache
// while nothing it depends on changed.
func (s *Server) selection(filters []filter, planned, desc bool) []*secret {
	k, _ := json.Marshal(struct {
		F       []filter
		P, Desc bool
	}{filters, planned, desc})
	key := string(k)
	if c, ok := s.listed[key]; ok && c.gen == s.listGen {
		return c.secrets
	}
	var list []*secret
	for _, sec := range s.secrets {
		if !sec.deleted.IsZero() && !planned {
			continue
		}
		if sec.matches(filters) {
			list = append(list, sec)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if desc {
			return list[i].seq > list[j].seq
		}
		return list[i].seq < list[j].seq
	})
	if s.listed == nil || len(s.listed) >= 64 {
		s.listed = map[string]listing{}
	}
	s.listed[key] = listing{gen: s.listGen, secrets: list}
	return list
}

func mergeTags(have, add []tag) []tag {
	for _, t := range add {
		if i := slices.IndexFunc(have, func(h tag) bool { return h.Key == t.Key }); i >= 0 {
			have[i].Value = t.Value
		} else {
			have = append(have, t)
		}
	}
	return have
}

func (s *Server) tagResource(body []byte) (any, *apiError) {
	var in struct {
		SecretId *string
		Tags     []tag
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Tags == nil {
		return nil, invalidParam("Tags is required.")
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.tags = mergeTags(sec.tags, in.Tags)
	sec.changed = s.now()
	s.selectionChanged()
	return struct{}{}, nil
}

func (s *Server) untagResource(body []byte) (any, *apiError) {
	var in struct {
		SecretId *string
		TagKeys  []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.TagKeys == nil {
		return nil, invalidParam("TagKeys is required.")
	}
	sec, err := s.findLive(in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.tags = slices.DeleteFunc(sec.tags, func(t tag) bool { return slices.Contains(in.TagKeys, t.Key) })
	sec.changed = s.now()
	s.selectionChanged()
	return struct{}{}, nil
}

func (s *Server) deleteSecret(body []byte) (any, *apiError) {
	var in struct {
		SecretId                   *string
		RecoveryWindowInDays       *int64
		ForceDeleteWithoutRecovery *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if force && in.RecoveryWindowInDays != nil {
		return nil, invalidParam("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, invalidParam("RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	sec, err := s.find(in.SecretId)
	now := s.now()
	if err == errNotFound && force {
		// Recorded from AWS: a forced delete of a secret that does not
		// exist succeeds with Name, ARN and DeletionDate.
		name, arn := s.ghost(*in.SecretId)
		return deleteOut{arn, name, ts(now)}, nil
	}
	if err != nil {
		return nil, err
	}
	if force {
		s.remove(sec)
		return deleteOut{sec.arn, sec.name, ts(now)}, nil
	}
	if !sec.deleted.IsZero() {
		return nil, errf("InvalidRequestException", "You can't perform this operation on the secret because it was already scheduled for deletion.")
	}
	sec.deleted = now
	sec.deletionDate = now.Add(time.Duration(days) * 24 * time.Hour)
	s.selectionChanged()
	s.pending[sec] = true
	return deleteOut{sec.arn, sec.name, ts(sec.deletionDate)}, nil
}

type deleteOut struct {
	ARN, Name    string
	DeletionDate *epoch
}

// ghost names a secret that does not exist: the name and ARN of SecretId as
// the caller gave it (an ARN as is, its name being what follows
// "secret:"), or, for a name, the ARN a secret of that name would have.
func (s *Server) ghost(id string) (name, arn string) {
	if strings.HasPrefix(id, "arn:") {
		_, name, _ = strings.Cut(id, ":secret:")
		return name, id
	}
	return id, s.arnFor(id)
}

func (s *Server) arnFor(name string) string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.opts.Region, s.opts.AccountID, name, randomSuffix())
}

func (s *Server) restoreSecret(body []byte) (any, *apiError) {
	var in idIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.deleted, sec.deletionDate = time.Time{}, time.Time{}
	s.selectionChanged()
	delete(s.pending, sec)
	return struct{ ARN, Name string }{sec.arn, sec.name}, nil
}

const (
	lowerChars  = "abcdefghijklmnopqrstuvwxyz"
	upperChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars  = "0123456789"
	punctChars  = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	alnumChars  = lowerChars + upperChars + digitChars
	maxPassword = 4096
)

func (s *Server) getRandomPassword(body []byte) (any, *apiError) {
	var in struct {
		PasswordLength          *int64
		ExcludeCharacters       string
		ExcludeNumbers          bool
		ExcludeLowercase        bool
		ExcludeUppercase        bool
		ExcludePunctuation      bool
		IncludeSpace            bool
		RequireEachIncludedType *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	length := int64(32)
	if in.PasswordLength != nil {
		length = *in.PasswordLength
	}
	if length < 4 || length > maxPassword {
		return nil, invalidParam("PasswordLength must be between 4 and %d.", maxPassword)
	}
	keep := func(set string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(in.ExcludeCharacters, r) {
				return -1
			}
			return r
		}, set)
	}
	var classes []string
	for _, c := range []struct {
		excluded bool
		set      string
	}{{in.ExcludeLowercase, lowerChars}, {in.ExcludeUppercase, upperChars}, {in.ExcludeNumbers, digitChars}, {in.ExcludePunctuation, punctChars}} {
		if c.excluded {
			continue
		}
		if k := keep(c.set); k != "" {
			classes = append(classes, k)
		}
	}
	all := strings.Join(classes, "")
	if in.IncludeSpace && !strings.Contains(in.ExcludeCharacters, " ") {
		all += " "
	}
	if all == "" {
		return nil, invalidParam("The parameters exclude every character; no password can be generated.")
	}
	requireEach := in.RequireEachIncludedType == nil || *in.RequireEachIncludedType
	pw := make([]byte, 0, length)
	if requireEach {
		if int64(len(classes)) > length {
			return nil, invalidParam("PasswordLength is too short to include every required character type.")
		}
		for _, c := range classes {
			pw = append(pw, c[randIntn(len(c))])
		}
	}
	for int64(len(pw)) < length {
		pw = append(pw, all[randIntn(len(all))])
	}
	// Shuffle so the per-class characters are not always at the front.
	for i := len(pw) - 1; i > 0; i-- {
		j := randIntn(i + 1)
		pw[i], pw[j] = pw[j], pw[i]
	}
	return struct{ RandomPassword string }{string(pw)}, nil
}

func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		// crypto/rand.Reader does not fail on supported platforms.
		panic(err)
	}
	return int(v.Int64())
}

func randomSuffix() string {
	b := make([]byte, 6)
	for i := range b {
		b[i] = alnumChars[randIntn(len(alnumChars))]
	}
	return string(b)
}

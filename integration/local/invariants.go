package local

import (
	"context"
	"encoding/json"

	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/config"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

func (e *Env) value(ctx context.Context, secretARN, versionID, stage string) (*secret.Value, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: &secretARN}
	if versionID != "" {
		in.VersionId = &versionID
	}
	if stage != "" {
		in.VersionStage = &stage
	}
	out, err := e.SMClient.GetSecretValue(ctx, in)
	if err != nil {
		return nil, err
	}
	return secret.Parse(aws.ToString(out.SecretString))
}

func (e *Env) verify(ctx context.Context, v *secret.Value) error {
	eng, err := config.Engines(nil).Lookup(v.Engine)
	if err != nil {
		return err
	}
	return eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(v)})
}

// Stages returns version id → stages, including versions with no stage.
func (e *Env) Stages(ctx context.Context, secretARN string) (map[string][]string, error) {
	out := map[string][]string{}
	p := secretsmanager.NewListSecretVersionIdsPaginator(e.SMClient, &secretsmanager.ListSecretVersionIdsInput{
		SecretId: &secretARN, IncludeDeprecated: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			out[aws.ToString(v.VersionId)] = v.VersionStages
		}
	}
	return out, nil
}

func holders(stages map[string][]string, stage string) []string {
	var ids []string
	for id, ss := range stages {
		for _, s := range ss {
			if s == stage {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// CheckInvariants asserts DESIGN.md's five invariants for a secret after
// executions have ended, and returns every violation (none: safe).
//
//  1. Exactly one version carries AWSCURRENT.
//  2. The AWSCURRENT value authenticates against the target.
//  3. No version carries AWSPENDING.
//  4. The ledger's last record agrees with the secret (FINISHED ⇔ AWSCURRENT
//     is the token; ROLLED_BACK ⇔ AWSCURRENT is the recorded previous) and
//     the lease is released, except COMPENSATION_FAILED, which holds it and
//     must have raised the alert event.
//  5. No password of any version appears in a log line, event, ledger item,
//     execution output, error or cause.
//
// A COMPENSATION_FAILED end state is exempt from 2 and 3 (it is the alerted
// "unknown state"), never from 1, 4 or 5. Invariant 6 is about several
// secrets at once: CheckLogins.
func (e *Env) CheckInvariants(ctx context.Context, secretARN string, execs ...*sfnlocal.Execution) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	stages, err := e.Stages(ctx, secretARN)
	if err != nil {
		return []string{"list versions: " + err.Error()}
	}
	lease, leased, err := e.Ledger.Get(ctx, secretARN)
	if err != nil {
		return []string{"read lease: " + err.Error()}
	}
	compFailed := leased && lease.State == ledger.CompensationFailed
	bad = append(bad, e.secretInvariants(ctx, secretARN, stages, compFailed)...)
	current := holders(stages, "AWSCURRENT")
	// 4
	if leased {
		hist, err := e.Ledger.History(ctx, secretARN)
		if err != nil {
			fail("invariant 4: read journal: %v", err)
		} else if len(hist) == 0 || hist[len(hist)-1].State != lease.State || hist[len(hist)-1].Fencing != lease.Fencing {
			fail("invariant 4: the journal's last record does not match the lease (state %s)", lease.State)
		}
		cur := ""
		if len(current) == 1 {
			cur = current[0]
		}
		switch lease.State {
		case ledger.Finished:
			if cur != lease.Token {
				fail("invariant 4: ledger says FINISHED but AWSCURRENT is %s, not the token %s", cur, lease.Token)
			}
		case ledger.RolledBack:
			if cur != lease.PreviousVersion {
				fail("invariant 4: ledger says ROLLED_BACK but AWSCURRENT is %s, not the recorded previous %s", cur, lease.PreviousVersion)
			}
		case ledger.Abandoned:
			if cur == lease.Token {
				fail("invariant 4: ledger says ABANDONED but AWSCURRENT is this rotation's token")
			}
		case ledger.CompensationFailed:
			if lease.Holder == "" {
				fail("invariant 4: COMPENSATION_FAILED released the lease")
			}
			if !e.alerted(secretARN, lease.Token) {
				fail("invariant 4: COMPENSATION_FAILED without a %q event", events.CompensationFailed)
			}
		default:
			fail("invariant 4: the ledger's last record is %s, not a terminal state", lease.State)
		}
		if lease.State != ledger.CompensationFailed && lease.Holder != "" {
			fail("invariant 4: lease still held by %s in state %s", lease.Holder, lease.State)
		}
	}
	// 5
	if leaks := e.leaks(ctx, secretARN, stages, execs); len(leaks) > 0 {
		fail("invariant 5: passwords found in %s", strings.Join(leaks, ", "))
	}
	return bad
}

// secretInvariants are invariants 1 to 3: the secret's own state and
// whether it logs in. COMPENSATION_FAILED is exempt from 2 and 3.
func (e *Env) secretInvariants(ctx context.Context, secretARN string, stages map[string][]string, compFailed bool) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	// 1
	current := holders(stages, "AWSCURRENT")
	if len(current) != 1 {
		fail("invariant 1: %d versions carry AWSCURRENT", len(current))
	}
	// 2
	if len(current) == 1 && !compFailed {
		if err := e.CanLogin(ctx, secretARN, current[0], ""); err != nil {
			fail("invariant 2: AWSCURRENT (%s) does not authenticate: %v", current[0], err)
		}
	}
	// 2, for alternating users: the previous user keeps working too.
	if prev := holders(stages, "AWSPREVIOUS"); len(current) == 1 && len(prev) == 1 && !compFailed {
		if v, err := e.value(ctx, secretARN, current[0], ""); err == nil && v.MasterARN != "" {
			if err := e.CanLogin(ctx, secretARN, prev[0], ""); err != nil {
				fail("invariant 2: alternating users, AWSPREVIOUS (%s) no longer logs in: %v", prev[0], err)
			}
		}
	}
	// 3
	if p := holders(stages, "AWSPENDING"); len(p) > 0 && !compFailed {
		fail("invariant 3: AWSPENDING is on %v after the executions ended", p)
	}
	return bad
}

func (e *Env) alerted(secretARN, token string) bool {
	for _, ev := range e.Events.Entries() {
		var d events.Detail
		if ev.DetailType == events.CompensationFailed && json.Unmarshal(ev.Detail, &d) == nil && d.SecretARN == secretARN && d.VersionID == token {
			return true
		}
	}
	return false
}

// leaks searches every output the product produced for every password any
// version of the secret holds.
func (e *Env) leaks(ctx context.Context, secretARN string, stages map[string][]string, execs []*sfnlocal.Execution) []string {
	haystacks := e.outputs(ctx)
	for _, x := range execs {
		if x == nil {
			continue
		}
		raw, _ := json.Marshal(x)
		haystacks["execution "+x.Arn] = string(raw) + x.Error + x.Cause
	}
	return find(e.passwords(ctx, secretARN, stages), haystacks)
}

// passwords are the passwords of the secret's versions and of every
// version of the master secrets they name (masterarn: the alternating
// strategy's administrator, whose password the product reads too), those
// long enough to be told apart from ordinary text.
func (e *Env) passwords(ctx context.Context, secretARN string, stages map[string][]string) []string {
	var pws []string
	masters := map[string]bool{}
	for id := range stages {
		v, err := e.value(ctx, secretARN, id, "")
		if err != nil {
			continue
		}
		if len(v.Password.Reveal()) >= 8 {
			pws = append(pws, v.Password.Reveal())
		}
		if v.MasterARN != "" && v.MasterARN != secretARN {
			masters[v.MasterARN] = true
		}
	}
	for m := range masters {
		ms, err := e.Stages(ctx, m)
		if err != nil {
			continue
		}
		for id := range ms {
			if v, err := e.value(ctx, m, id, ""); err == nil && len(v.Password.Reveal()) >= 8 {
				pws = append(pws, v.Password.Reveal())
			}
		}
	}
	return pws
}

// find names the haystacks that hold any of pws, sorted.
func find(pws []string, haystacks map[string]string) []string {
	var found []string
	forms := make([][]string, len(pws))
	for i, pw := range pws {
		forms[i] = spellings(pw)
	}
	for where, text := range haystacks {
	search:
		for _, fs := range forms {
			for _, f := range fs {
				if strings.Contains(text, f) {
					found = append(found, where)
					break search
				}
			}
		}
	}
	sort.Strings(found)
	return found
}

// spellings are the ways pw appears in what the product writes: as is, and
// as JSON writes it in logs, events, ledger items and execution histories
// (encoding/json and log/slog escape < > & as \u003c and so on, and " and
// \ with a backslash; a generated password may hold any of them).
func spellings(pw string) []string {
	out := []string{pw}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, html := range []bool{true, false} {
		b.Reset()
		enc.SetEscapeHTML(html)
		if enc.Encode(pw) == nil {
			q := strings.TrimSpace(b.String())
			if q = q[1 : len(q)-1]; q != pw && !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out
}

// outputs is everything the product wrote that a person or system can read:
// log lines, this process's stdout and stderr (with CaptureStdio: what a
// handler prints there is in CloudWatch Logs in Lambda), events (CloudTrail's
// records included), ledger
// items, and every execution the runner ran.
func (e *Env) outputs(ctx context.Context) map[string]string {
	haystacks := map[string]string{"logs": e.Logs.String()}
	if e.Stdout != nil {
		haystacks["stdout"] = e.Stdout.String()
	}
	if e.Stderr != nil {
		haystacks["stderr"] = e.Stderr.String()
	}
	evs, _ := json.Marshal(e.Events.Entries())
	haystacks["events"] = string(evs)
	// CloudTrail's records of every Secrets Manager call (what the access
	// audit reads) must hold no value either.
	trail, _ := json.Marshal(e.Events.ServiceEntries())
	haystacks["cloudtrail records"] = string(trail)
	if e.XRay != nil {
		// The built functions' traces (segment documents) too.
		haystacks["x-ray segments"] = e.XRay.Raw()
	}
	var items []map[string]ddbtypes.AttributeValue
	p := dynamodb.NewScanPaginator(e.DDB, &dynamodb.ScanInput{TableName: aws.String(Table)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			haystacks["ledger items"] = "scan failed: " + err.Error()
			break
		}
		items = append(items, page.Items...)
	}
	raw, _ := json.Marshal(items)
	haystacks["ledger items"] += string(raw)
	e.mu.Lock()
	for _, x := range e.executions {
		raw, _ := json.Marshal(x)
		haystacks["executions"] += string(raw) + x.Error + x.Cause
	}
	e.mu.Unlock()
	return haystacks
}

// CreatedSecrets returns every secret CreateSecret made, masters included.
func (e *Env) CreatedSecrets() []string {
	e.createdMu.Lock()
	defer e.createdMu.Unlock()
	return append([]string(nil), e.created...)
}

// LeakScan searches every output of the whole run (logs, stdout and stderr,
// events, the ledger table, every execution's events, errors and output),
// gathered once, for the password of every version each secret ever had:
// secretARNs and every secret the Env created (masters included). It
// returns how many secrets and passwords it searched for and, by secret,
// where any was found.
func (e *Env) LeakScan(ctx context.Context, secretARNs []string) (secrets, passwords int, leaks map[string][]string) {
	haystacks := e.outputs(ctx)
	n, found := 0, map[string][]string{}
	var all []string
	seen := map[string]bool{}
	for _, arn := range append(append([]string(nil), secretARNs...), e.CreatedSecrets()...) {
		if !seen[arn] {
			seen[arn] = true
			all = append(all, arn)
		}
	}
	for _, arn := range all {
		stages, err := e.Stages(ctx, arn)
		e.createdMu.Lock()
		pws, gone := e.gone[arn]
		e.createdMu.Unlock()
		if err != nil && !gone {
			found[arn] = []string{"list versions: " + err.Error()}
			continue
		}
		if !gone {
			pws = e.passwords(ctx, arn, stages)
		}
		n += len(pws)
		if f := find(pws, haystacks); len(f) > 0 {
			found[arn] = f
		}
	}
	return len(all), n, found
}

// CheckLogins asserts invariant 6 across secrets: at most one rotation
// changes a given database login at a time, whichever secrets name it. A
// rotation may change its login from its write-ahead SET_STARTED record to
// its terminal record (or until now, if it has none); of secrets whose
// AWSCURRENT names the same login (engine, host, port, user; with masterarn,
// either user of the pair), no two such spans may overlap. The logins are
// read from the secrets' values, not from the ledger's lock items, so the
// check does not take the product's word for which secrets share a login.
func (e *Env) CheckLogins(ctx context.Context, secretARNs []string) []string {
	type span struct {
		secret   string
		fencing  int64
		from, to int64
	}
	var bad []string
	byLogin := map[string][]span{}
	names := map[string]string{}
	for _, arn := range secretARNs {
		v, err := e.value(ctx, arn, "", "AWSCURRENT")
		if err != nil {
			bad = append(bad, fmt.Sprintf("invariant 6: read %s: %v", arn, err))
			continue
		}
		eng, err := config.Engines(nil).Lookup(v.Engine)
		if err != nil {
			continue // not a login: nothing to serialize
		}
		users := []string{v.Username}
		if v.MasterARN != "" {
			users = append(users, secret.AlternateUsername(v.Username))
		}
		hist, err := e.Ledger.History(ctx, arn)
		if err != nil {
			bad = append(bad, fmt.Sprintf("invariant 6: read the journal of %s: %v", arn, err))
			continue
		}
		spans := map[int64]*span{}
		var order []int64
		for _, r := range hist {
			s := spans[r.Fencing]
			if r.State == ledger.SetStarted && s == nil {
				s = &span{secret: arn, fencing: r.Fencing, from: r.At, to: math.MaxInt64}
				spans[r.Fencing] = s
				order = append(order, r.Fencing)
			}
			if s != nil && r.State.Terminal() {
				s.to = r.At
			}
		}
		for _, u := range users {
			lg := ledger.Login{Engine: eng.Name(), Host: v.Host, Port: v.Port, User: u}
			names[lg.Key()] = lg.String()
			for _, f := range order {
				byLogin[lg.Key()] = append(byLogin[lg.Key()], *spans[f])
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(byLogin)) {
		ss := byLogin[key]
		for i, a := range ss {
			for _, b := range ss[i+1:] {
				if a.secret != b.secret && a.from < b.to && b.from < a.to {
					bad = append(bad, fmt.Sprintf("invariant 6: rotation #%d of %s and rotation #%d of %s changed login %s at the same time",
						a.fencing, a.secret, b.fencing, b.secret, names[key]))
				}
			}
		}
	}
	return bad
}

// ForceDelete deletes a secret without a recovery window
// (ForceDeleteWithoutRecovery), after recording the passwords of its
// versions (masters included) so that the leak scan still searches for
// them once Secrets Manager has forgotten them.
func (e *Env) ForceDelete(ctx context.Context, secretARN string) error {
	stages, err := e.Stages(ctx, secretARN)
	if err != nil {
		return err
	}
	pws := e.passwords(ctx, secretARN, stages)
	e.createdMu.Lock()
	if e.gone == nil {
		e.gone = map[string][]string{}
	}
	e.gone[secretARN] = pws
	e.createdMu.Unlock()
	_, err = e.SMClient.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: &secretARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
	return err
}

package ledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Login is one database login: what a rotation changes. Several secrets
// may name the same login (one login copied into a secret per app or per
// region); each rotation of any of them changes the password all the
// others depend on, so the ledger serializes rotations per login, not only
// per secret (DESIGN.md invariant 6).
type Login struct {
	Engine string // the engine's canonical name (target.Engine.Name), not the secret's alias
	Host   string
	Port   int
	User   string
}

// Key is the login's lock item partition key. The host is case-folded (DNS
// names are case-insensitive) and the user escaped, so that a user name
// holding '#' or spaces cannot make two logins share a key or break the
// space-separated list Lease.Logins keeps.
func (l Login) Key() string {
	return "LOGIN#" + l.Engine + "#" + strings.ToLower(l.Host) + "#" + strconv.Itoa(l.Port) + "#" + url.PathEscape(l.User)
}

// loginName is Login.String of the login a lock key names ("" if key is
// not one): a lock released without being read first keeps its name.
func loginName(key string) string {
	parts := strings.Split(key, "#")
	if len(parts) != 5 || parts[0] != "LOGIN" {
		return ""
	}
	port, err := strconv.Atoi(parts[3])
	user, uerr := url.PathUnescape(parts[4])
	if err != nil || uerr != nil {
		return ""
	}
	return Login{Engine: parts[1], Host: parts[2], Port: port, User: user}.String()
}

// newRev is a lock item's next compare-and-swap value: random, so that a
// write that did not read the item first (taking a free lock, releasing
// one's own) needs no counter, and a reader's "rev = what I read" still
// fails on any write since its read.
func newRev() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}

// freeLocks are the writes that take next's login locks in Acquire's
// transaction without reading them: each only if it is free (never taken,
// or released). A lock that is held, even by a lease that has expired, makes
// the transaction fail, and Acquire's next attempt reads it (lockLogins).
func (l *Ledger) freeLocks(next Lease, names map[string]string, now time.Time) ([]types.TransactWriteItem, error) {
	var items []types.TransactWriteItem
	for _, key := range next.LoginKeys() {
		name := names[key]
		if name == "" {
			name = loginName(key)
		}
		lk := LoginLock{PK: key, SK: loginLockSK, Login: name, Secret: next.Secret, Fencing: next.Fencing, Holder: next.Holder,
			Token: next.Token, At: now.UnixMilli(), Rev: newRev()}
		item, err := attributevalue.MarshalMap(lk)
		if err != nil {
			return nil, err
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &l.table, Item: item,
			ConditionExpression: aws.String("attribute_not_exists(pk) OR attribute_not_exists(holder)")}})
	}
	return items, nil
}

// String names the login for people: engine://user@host:port (never a
// password: a Login holds none).
func (l Login) String() string {
	return fmt.Sprintf("%s://%s@%s:%d", l.Engine, l.User, strings.ToLower(l.Host), l.Port)
}

const loginLockSK = "LOCK"

// LoginLock is the lock item of one login. It is taken in the same
// transaction as a secret's lease and names that lease (secret, fencing,
// holder): it is held exactly as long as that lease is (released with it,
// kept with it after COMPENSATION_FAILED, free once it expires), so a lock
// item whose lease has moved on is stale, whatever it says.
type LoginLock struct {
	PK    string `dynamodbav:"pk"`
	SK    string `dynamodbav:"sk"`
	Login string `dynamodbav:"login"` // Login.String()
	// Secret, Fencing and Holder are the lease that holds (or last held)
	// the login; Holder is empty once released.
	Secret  string `dynamodbav:"secret"`
	Fencing int64  `dynamodbav:"fencing"`
	Holder  string `dynamodbav:"holder,omitempty"`
	Token   string `dynamodbav:"token"`
	At      int64  `dynamodbav:"at"` // Unix milliseconds of the last change
	// Rev is the item's own compare-and-swap counter.
	Rev int64 `dynamodbav:"rev"`
}

// LoginHeldError says a login is being changed by another secret's rotation.
type LoginHeldError struct {
	Login  string // Login.String()
	Secret string // the other secret's ARN
	Holder string // its execution
	State  State
	Until  time.Time // zero: held until an operator acts
}

func (e *LoginHeldError) Error() string {
	msg := fmt.Sprintf("database login %s is locked by the rotation of secret %s (execution %s, state %s)", e.Login, e.Secret, e.Holder, e.State)
	if e.State == CompensationFailed {
		return msg + "; that rotation ended COMPENSATION_FAILED, so the login's password is unknown until the repair function (or an operator) repairs that secret (secretctl status " + e.Secret + ")"
	}
	return msg + " until " + e.Until.Format(time.RFC3339) + " at the latest; rotate this secret after it ends, or give each secret its own login"
}

// loginKeys returns the distinct lock keys of logins, sorted.
func loginKeys(logins []Login) []string {
	keys := make([]string, 0, len(logins))
	for _, l := range logins {
		if k := l.Key(); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// LoginKeys are the lock keys of the logins this lease holds.
func (l Lease) LoginKeys() []string { return strings.Fields(l.Logins) }

func (l *Ledger) getLoginLock(ctx context.Context, key string) (LoginLock, bool, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &l.table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: key},
			"sk": &types.AttributeValueMemberS{Value: loginLockSK},
		},
	})
	if err != nil {
		return LoginLock{}, false, fmt.Errorf("read login lock: %w", err)
	}
	if out.Item == nil {
		return LoginLock{}, false, nil
	}
	var lk LoginLock
	if err := attributevalue.UnmarshalMap(out.Item, &lk); err != nil {
		return LoginLock{}, false, &DecodeError{Reason: "login lock does not decode: " + err.Error()}
	}
	return lk, true, nil
}

// LoginLockState is a login lock and whether it holds now.
type LoginLockState struct {
	LoginLock
	Key string
	// Held: the lease the lock names still holds it (running, or kept
	// after COMPENSATION_FAILED).
	Held bool
	// Owner is that lease as read now (zero if it has none).
	Owner Lease
}

// LoginLocks reads the lock items of keys (a lease's LoginKeys) and decides,
// from the leases they name, whether each still holds; keys with no item
// are left out.
func (l *Ledger) LoginLocks(ctx context.Context, keys []string) ([]LoginLockState, error) {
	var out []LoginLockState
	for _, k := range keys {
		lk, ok, err := l.getLoginLock(ctx, k)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		st := LoginLockState{LoginLock: lk, Key: k}
		if lk.Holder != "" {
			owner, ok, err := l.Get(ctx, lk.Secret)
			if err != nil {
				return nil, err
			}
			st.Owner = owner
			st.Held = ok && lockHeld(lk, owner, l.now())
		}
		out = append(out, st)
	}
	return out, nil
}

// lockHeld reports whether owner, the lease lk names, still holds lk at now.
func lockHeld(lk LoginLock, owner Lease, now time.Time) bool {
	return lk.Holder != "" && owner.Fencing == lk.Fencing && owner.Holder == lk.Holder && owner.Held(now)
}

// lockLogins reads the lock items of next's logins and returns the writes
// that take them for next in Acquire's transaction, or a *LoginHeldError
// if another secret's lease still holds one. A lock whose lease has ended
// or expired is taken over; its lease then gets a condition check (its
// fencing and journal sequence as read), so that a holder that was only
// slow, and journals in the meantime, makes the takeover read again.
func (l *Ledger) lockLogins(ctx context.Context, next Lease, names map[string]string, now time.Time) ([]types.TransactWriteItem, error) {
	var items []types.TransactWriteItem
	checked := map[string]bool{}
	for _, key := range next.LoginKeys() {
		cur, exists, err := l.getLoginLock(ctx, key)
		if err != nil {
			return nil, err
		}
		if exists && cur.Holder != "" && cur.Secret != next.Secret {
			owner, ok, err := l.Get(ctx, cur.Secret)
			if err != nil {
				return nil, err
			}
			if ok && lockHeld(cur, owner, now) {
				return nil, &LoginHeldError{Login: cur.Login, Secret: cur.Secret, Holder: cur.Holder, State: owner.State, Until: untilTime(owner)}
			}
			if ok && owner.Fencing == cur.Fencing && owner.Holder == cur.Holder && !checked[cur.Secret] {
				checked[cur.Secret] = true
				items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
					TableName: &l.table, Key: leaseKey(cur.Secret),
					ConditionExpression:       aws.String("fencing = :f AND seq = :s"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":f": num(owner.Fencing), ":s": num(owner.Seq)},
				}})
			}
		}
		name := names[key]
		if name == "" {
			name = cur.Login // a lease taken over keeps its logins, not their names
		}
		lk := LoginLock{PK: key, SK: loginLockSK, Login: name, Secret: next.Secret, Fencing: next.Fencing, Holder: next.Holder,
			Token: next.Token, At: now.UnixMilli(), Rev: newRev()}
		item, err := attributevalue.MarshalMap(lk)
		if err != nil {
			return nil, err
		}
		put := &types.Put{TableName: &l.table, Item: item}
		if exists {
			put.ConditionExpression = aws.String("rev = :rev")
			put.ExpressionAttributeValues = map[string]types.AttributeValue{":rev": num(cur.Rev)}
		} else {
			put.ConditionExpression = aws.String("attribute_not_exists(pk)")
		}
		items = append(items, types.TransactWriteItem{Put: put})
	}
	return items, nil
}

// loginOps are the writes an Append of lease makes to its login locks: on
// release, each lock is freed (written without a holder, conditioned on
// still being this lease's: no read is needed, the lease names everything
// the item holds); otherwise each is only checked to still be this lease's. Either way a rotation whose login lock another
// secret took over (after its lease expired) is fenced: nothing it journals
// lands, so it cannot touch the login either.
func (l *Ledger) loginOps(ctx context.Context, lease Lease, release bool, now time.Time) ([]types.TransactWriteItem, error) {
	var items []types.TransactWriteItem
	for _, key := range lease.LoginKeys() {
		mine := map[string]types.AttributeValue{
			":s": &types.AttributeValueMemberS{Value: lease.Secret}, ":f": num(lease.Fencing),
			":h": &types.AttributeValueMemberS{Value: lease.Holder},
		}
		cond := aws.String("secret = :s AND fencing = :f AND holder = :h")
		if !release {
			items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				TableName: &l.table, Key: map[string]types.AttributeValue{
					"pk": &types.AttributeValueMemberS{Value: key}, "sk": &types.AttributeValueMemberS{Value: loginLockSK},
				},
				ConditionExpression: cond, ExpressionAttributeValues: mine,
			}})
			continue
		}
		freed := LoginLock{PK: key, SK: loginLockSK, Login: loginName(key), Secret: lease.Secret, Fencing: lease.Fencing,
			Token: lease.Token, At: now.UnixMilli(), Rev: newRev()}
		item, err := attributevalue.MarshalMap(freed)
		if err != nil {
			return nil, err
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: &l.table, Item: item, ConditionExpression: cond, ExpressionAttributeValues: mine,
		}})
	}
	return items, nil
}

func leaseKey(secretARN string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk(secretARN)},
		"sk": &types.AttributeValueMemberS{Value: leaseSK},
	}
}

package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// fakeSM is an in-memory Secrets Manager holding one secret's versions, with
// AWS's GetSecretValue answers for missing stages and deleted secrets.
type fakeSM struct {
	mu       sync.Mutex
	name     string
	values   map[string]*string  // version id -> SecretString (nil: no value, like RotateSecret's empty AWSPENDING)
	stages   map[string][]string // version id -> stages
	calls    map[string]int      // stage -> calls
	err      error               // returned by every call when set
	deleted  bool
	gate     chan struct{} // when set, calls wait for it to close
	gateOnly string        // when set, only calls for this stage wait
	inFlight int
	maxIn    int
	// onCall, when set, runs as a call for a stage arrives, before it is
	// answered (without f.mu held): a rotation's step between two reads.
	onCall func(stage string)
}

func newFake(name string) *fakeSM {
	return &fakeSM{name: name, values: map[string]*string{}, stages: map[string][]string{}, calls: map[string]int{}}
}

// put stores a version carrying stages, taking them from other versions.
func (f *fakeSM) put(id string, value *string, stages ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for v, st := range f.stages {
		f.stages[v] = slices.DeleteFunc(st, func(s string) bool { return slices.Contains(stages, s) })
	}
	f.values[id] = value
	f.stages[id] = stages
}

func (f *fakeSM) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	stage := aws.ToString(in.VersionStage)
	if f.onCall != nil {
		f.onCall(stage)
	}
	f.mu.Lock()
	f.calls[stage]++
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	gate := f.gate
	if f.gateOnly != "" && f.gateOnly != stage {
		gate = nil
	}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inFlight--; f.mu.Unlock() }()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.err != nil:
		return nil, f.err
	case aws.ToString(in.SecretId) != f.name:
		return nil, &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	case f.deleted:
		return nil, &types.InvalidRequestException{Message: aws.String("You can't perform this operation on the secret because it was marked for deletion.")}
	}
	for id, st := range f.stages {
		if slices.Contains(st, stage) {
			if f.values[id] == nil {
				break
			}
			return &secretsmanager.GetSecretValueOutput{
				Name: aws.String(f.name), VersionId: aws.String(id), SecretString: f.values[id],
				VersionStages: slices.Clone(st),
			}, nil
		}
	}
	return nil, &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret value for staging label: " + stage)}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// errThrottled stands for a transient Secrets Manager failure.
var errThrottled = errors.New("ThrottlingException: Rate exceeded")

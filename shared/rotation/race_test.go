package rotation

import (
	"context"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// Finish's stage move is a compare-and-swap on the version recorded at
// acquire. Here another writer moves AWSCURRENT after finish has read the
// stages and before it moves them: the move must be refused (it names the
// recorded version, which no longer holds AWSCURRENT), and neither finish
// nor the compensation that follows may undo the other writer's version.
// Passing whoever holds AWSCURRENT at the time of the move instead would
// put the token over the other writer's version.
func TestFinishIsACompareAndSwapOnTheRecordedVersion(t *testing.T) {
	const foreign = "foreign-0000000000000000000000000000"
	for _, mode := range []string{ModeAbandon, ModeRollback} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			rc := f.acquire(t)
			s := f.svc
			f.steps(t, rc, s.Create, s.Set, s.Test)
			f.sm.beforeMove = func() {
				// The other writer knows the password the database has now.
				f.sm.mu.Lock()
				f.sm.values[foreign] = f.sm.values[token]
				f.sm.mu.Unlock()
				if err := f.sm.MoveStage(context.Background(), arn, "AWSCURRENT", foreign, v1); err != nil {
					t.Error(err)
				}
			}
			_, err := s.Finish(context.Background(), rc)
			if faults.Name(err) != faults.NameConflict {
				t.Fatalf("finish = %v, want ConflictError", err)
			}
			if f.sm.beforeMove != nil {
				t.Fatal("the other writer never ran")
			}
			if got := f.sm.holder("AWSCURRENT"); got != foreign {
				t.Fatalf("AWSCURRENT is on %s after finish, want the other writer's %s", got, foreign)
			}
			// The state machine abandons on a conflict; a rollback must
			// come to the same end.
			out, err := s.Compensate(context.Background(), CloseInput{Rotation: rc, Mode: mode, Error: &TaskError{Error: faults.NameConflict}})
			if mode == ModeRollback && faults.Name(err) != faults.NameConflict || mode == ModeAbandon && err != nil {
				t.Fatalf("compensate (%s) = %+v, %v", mode, out, err)
			}
			if f.last() != ledger.Abandoned {
				t.Fatalf("journal ends %s, want ABANDONED", f.last())
			}
			if got := f.sm.holder("AWSCURRENT"); got != foreign || f.sm.holder("AWSPREVIOUS") != v1 || f.sm.holder("AWSPENDING") != "" {
				t.Fatalf("AWSCURRENT %q AWSPREVIOUS %q AWSPENDING %q: someone else's version was undone or AWSPENDING left",
					got, f.sm.holder("AWSPREVIOUS"), f.sm.holder("AWSPENDING"))
			}
			if f.db.sets != 1 {
				t.Fatalf("the target was changed %d times; the other writer's password must stay", f.db.sets)
			}
		})
	}
}

// takeOverAtNextWrite has another execution take the lease over right
// before the next journal write: the step has read the lease (or trusted
// the one the previous step left), then its lease expired and was taken.
func (f *fixture) takeOverAtNextWrite() {
	f.led.beforeAppend = func() {
		f.led.mu.Lock()
		defer f.led.mu.Unlock()
		l := f.led.lease[arn]
		l.Holder, l.Fencing, l.Token, l.Seq = "arn:other", l.Fencing+1, "99999999-2222-3333-4444-555555555555", 1
		f.led.lease[arn] = l
	}
}

// A zombie's finish reads a lease that is still its own; then the lease is
// taken over; then the zombie writes. Its write-ahead journal entry is
// conditioned on the fencing token and is refused, so it never moves
// AWSCURRENT. (Taking the lease over before finish reads it only exercises
// the read-side check.)
func TestZombieFinishIsFencedAtItsWrite(t *testing.T) {
	f := newFixture(t)
	rc := f.acquire(t)
	s := f.svc
	f.steps(t, rc, s.Create, s.Set, s.Test)
	journal := len(f.led.journal)
	f.takeOverAtNextWrite()
	_, err := s.Finish(context.Background(), rc)
	if faults.Name(err) != faults.NameConflict {
		t.Fatalf("zombie finish = %v, want ConflictError", err)
	}
	if f.led.beforeAppend != nil {
		t.Fatal("the takeover never ran")
	}
	if f.sm.holder("AWSCURRENT") != v1 || len(f.led.journal) != journal {
		t.Fatalf("the zombie wrote: AWSCURRENT on %s, journal %d → %d", f.sm.holder("AWSCURRENT"), journal, len(f.led.journal))
	}
}

// Create and set are fenced the same way: each step's first write is its
// write-ahead record (CREATED before the version is stored, SET_STARTED
// before the password changes), conditioned on the fencing token, so a
// zombie whose lease was taken over between its read and its write stores
// nothing and changes nothing. (This is why those records cannot be folded
// into a later step's write, as FINISH_DONE and SET_DONE are.)
func TestZombieIsFencedAtItsWriteAhead(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before []func(*Service) func(context.Context, Context) (StepOutput, error)
		step   func(*Service) func(context.Context, Context) (StepOutput, error)
	}{
		{"create", nil, func(s *Service) func(context.Context, Context) (StepOutput, error) { return s.Create }},
		{"set", []func(*Service) func(context.Context, Context) (StepOutput, error){
			func(s *Service) func(context.Context, Context) (StepOutput, error) { return s.Create },
		}, func(s *Service) func(context.Context, Context) (StepOutput, error) { return s.Set }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rc := f.acquire(t)
			for _, b := range tt.before {
				f.steps(t, rc, b(f.svc))
			}
			journal, versions, sets := len(f.led.journal), len(f.sm.generated), f.db.sets
			f.takeOverAtNextWrite()
			if _, err := tt.step(f.svc)(context.Background(), rc); faults.Name(err) != faults.NameConflict {
				t.Fatalf("zombie %s = %v, want ConflictError", tt.name, err)
			}
			if f.led.beforeAppend != nil {
				t.Fatal("the takeover never ran")
			}
			if len(f.led.journal) != journal || len(f.sm.generated) != versions || f.db.sets != sets {
				t.Fatalf("the zombie changed something: journal %d → %d, versions stored %d → %d, password changes %d → %d",
					journal, len(f.led.journal), versions, len(f.sm.generated), sets, f.db.sets)
			}
		})
	}
}

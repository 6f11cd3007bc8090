package main

import (
	"math"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
)

// Two pages of a Map of two rotations at a time, each rotation one Task
// (AcquireLease) with 10 ms of the interpreter's on either side.
func TestFleetTimeline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var ev []sfnlocal.Event
	add := func(ms int, typ, state string, it int) {
		ev = append(ev, sfnlocal.Event{Time: at(ms), Type: typ, State: state, Iteration: it})
	}
	rotation := func(start, task int, it int) {
		add(start, "MapIterationStarted", "RotateEach", it)
		add(start+10, "StateEntered", "AcquireLease", it)
		add(start+10+task, "StateExited", "AcquireLease", it)
		add(start+20+task, "MapIterationSucceeded", "RotateEach", it)
	}
	// Page 1 (0–400 ms): iterations 1 and 2 from 0, 3 when 1 ends (at
	// 120), iteration 2 ends at 220, 3 at 400: one in flight from 220.
	add(0, "StateEntered", "RotateEach", 0)
	rotation(0, 100, 1)
	rotation(0, 200, 2)
	rotation(120, 260, 3)
	add(400, "StateExited", "RotateEach", 0)
	add(400, "StateEntered", "ListSecrets", 0)
	add(500, "StateExited", "ListSecrets", 0)
	// Page 2 (500–700 ms): two rotations of 200 ms in parallel; the
	// iteration numbers start over.
	add(500, "StateEntered", "RotateEach", 0)
	rotation(500, 180, 1)
	rotation(500, 180, 2)
	add(700, "StateExited", "RotateEach", 0)

	tl := fleetTimeline(ev, "RotateEach", 2)
	if tl.Rotation.MinMs != 120 || tl.Rotation.MaxMs != 280 || tl.Rotation.P50Ms != 200 {
		t.Errorf("rotation %+v, want min 120, p50 200, max 280", tl.Rotation)
	}
	if s := tl.Steps["AcquireLease"]; s.MinMs != 100 || s.MaxMs != 260 {
		t.Errorf("AcquireLease %+v", s)
	}
	if tl.Between.MinMs != 20 || tl.Between.MaxMs != 20 {
		t.Errorf("between %+v, want 20 ms each", tl.Between)
	}
	// 120+220+280+200+200 = 1020 ms of rotations over 700 ms.
	if math.Abs(tl.InFlight-1020.0/700) > 1e-9 {
		t.Errorf("in flight %v, want %v", tl.InFlight, 1020.0/700)
	}
	if len(tl.Pages) != 2 {
		t.Fatalf("pages %+v", tl.Pages)
	}
	if p := tl.Pages[0]; p.Rotations != 3 || p.Seconds != 0.4 || math.Abs(p.TailSeconds-0.18) > 1e-9 {
		t.Errorf("page 1 %+v, want 3 rotations in 0.4 s, 0.18 s of tail", p)
	}
	if p := tl.Pages[1]; p.Rotations != 2 || p.Seconds != 0.2 || p.TailSeconds != 0 {
		t.Errorf("page 2 %+v, want 2 rotations in 0.2 s, no tail", p)
	}
	// Windows of 350 ms: rotations end at 120, 220, 400, 700, 700.
	if len(tl.Windows) != 2 || tl.Windows[0].Ended != 2 || tl.Windows[1].Ended != 3 {
		t.Errorf("windows %+v", tl.Windows)
	}
	// Tasks end at 110 and 210 ms (100 and 200 ms long), then 390, 690, 690.
	if tl.Windows[0].TaskMs != 150 || tl.Windows[1].TaskMs != (260+180+180)/3.0 {
		t.Errorf("task means %v, %v; want 150, %v", tl.Windows[0].TaskMs, tl.Windows[1].TaskMs, (260+180+180)/3.0)
	}
}

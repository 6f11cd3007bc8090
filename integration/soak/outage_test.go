package main

import (
	"testing"
	"time"
)

func TestOutage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type req struct {
		ok bool
		ms int
	}
	for _, tt := range []struct {
		name string
		reqs []req
		end  int
		want time.Duration
	}{
		{"never down", []req{{true, 0}, {true, 10}}, 20, 0},
		{"one outage, first failure to next success", []req{{true, 0}, {false, 10}, {false, 20}, {true, 50}}, 60, 40 * time.Millisecond},
		{"the longest of two", []req{{false, 0}, {true, 30}, {false, 40}, {true, 45}}, 60, 30 * time.Millisecond},
		{"still down at the end: counted to the end", []req{{true, 0}, {false, 10}}, 110, 100 * time.Millisecond},
		{"down from the first request", []req{{false, 5}, {true, 25}}, 30, 20 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var o outage
			for _, r := range tt.reqs {
				o.record(r.ok, at(r.ms))
			}
			o.end(at(tt.end))
			if o.longest != tt.want {
				t.Errorf("longest %v, want %v", o.longest, tt.want)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	for _, strategy := range []string{"single user", "alternating users"} {
		s := schedule(strategy, nil)
		seen := map[kind]bool{}
		for _, k := range s[:6] {
			seen[k] = true
		}
		for _, k := range []kind{kindSuccess, kindTestFails, kindBake, kindLostReply, kindCrash} {
			if !seen[k] {
				t.Errorf("%s: the first six rotations have no %q: a short soak would miss it", strategy, k)
			}
		}
		if got := seen[kindOperator]; got != (strategy == "single user") {
			t.Errorf("%s: operator rollback in the first six: %v", strategy, got)
		}
	}
}

package main

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/secretsaga/secretsaga/integration/latency"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
)

// timeline is where a fleet execution's time went, from its events: the
// rotations (Map iterations) and their Task states, per page and over
// time. By Little's law the fleet's rate is the rotations in flight over
// a rotation's duration, so it shows which of the two fell short.
type timeline struct {
	// Rotation is a Map iteration's duration, start to end.
	Rotation stat `json:"rotation"`
	// InFlight is the mean number of rotations running (their summed
	// durations over the wall time): at most MaxConcurrency.
	InFlight float64 `json:"meanRotationsInFlight"`
	// Steps are the Task states' durations as the state machine saw them
	// (the Lambda invoke round trip included), by state.
	Steps map[string]stat `json:"steps"`
	// Between is the time of a rotation outside its Task states (Pass,
	// Choice, the interpreter's own work), per rotation.
	Between stat       `json:"betweenTasksPerRotation"`
	Pages   []pageTime `json:"pages"`
	// Windows split the Map's running time into equal spans: does the
	// rate fall as the run goes on?
	Windows []window `json:"windows"`
}

type pageTime struct {
	Rotations int     `json:"rotations"`
	Seconds   float64 `json:"seconds"`
	// TailSeconds is how long the page ran with fewer rotations in flight
	// than it had at its fullest (the page barrier: the last ones run
	// while no new one starts).
	TailSeconds float64 `json:"tailSeconds"`
	PerSecond   float64 `json:"rotationsPerSecond"`
}

type window struct {
	StartSeconds float64 `json:"startSeconds"`
	Ended        int     `json:"rotationsEnded"`
	PerSecond    float64 `json:"rotationsPerSecond"`
	// MeanMs is the mean duration of the rotations that ended in it.
	MeanMs   float64 `json:"meanRotationMs"`
	InFlight float64 `json:"meanRotationsInFlight"`
	// TaskMs is the mean duration of the Task states that ended in it,
	// as the state machine saw them; HandlerMs, of the handler runs
	// behind them (the rest is the invoke's round trip through the
	// interpreter and the Lambda endpoint); TransactMs and GetItemMs, of
	// the ledger's DynamoDB calls.
	TaskMs     float64 `json:"meanTaskMs"`
	HandlerMs  float64 `json:"meanHandlerMs,omitempty"`
	TransactMs float64 `json:"meanTransactWriteItemsMs,omitempty"`
	GetItemMs  float64 `json:"meanGetItemMs,omitempty"`

	from, to time.Time
}

type span struct{ start, end time.Time }

// fleetTimeline reads the events of the Map state mapState (the fleet's
// RotateEach), each of whose runs is one page.
func fleetTimeline(events []sfnlocal.Event, mapState string, windows int) timeline {
	type key struct {
		page, iteration int
		state           string
	}
	var t timeline
	page := -1
	var pages []span
	iters := map[key]*span{}
	var order []key
	entered := map[key]time.Time{}
	steps := map[string][]time.Duration{}
	inTasks := map[key]time.Duration{} // by page and iteration
	var tasks []span
	for _, ev := range events {
		if ev.State == mapState && ev.Iteration == 0 {
			switch ev.Type {
			case "StateEntered":
				page++
				pages = append(pages, span{start: ev.Time})
			case "StateExited", "StateFailed":
				if page >= 0 {
					pages[page].end = ev.Time
				}
			}
			continue
		}
		if ev.Iteration == 0 || page < 0 {
			continue
		}
		it := key{page: page, iteration: ev.Iteration}
		switch ev.Type {
		case "MapIterationStarted":
			iters[it] = &span{start: ev.Time}
			order = append(order, it)
		case "MapIterationSucceeded", "MapIterationFailed":
			if s := iters[it]; s != nil {
				s.end = ev.Time
			}
		case "StateEntered":
			if isTask(ev.State) {
				entered[key{page, ev.Iteration, ev.State}] = ev.Time
			}
		case "StateExited", "StateFailed":
			k := key{page, ev.Iteration, ev.State}
			if start, ok := entered[k]; ok {
				d := ev.Time.Sub(start)
				steps[ev.State] = append(steps[ev.State], d)
				tasks = append(tasks, span{start, ev.Time})
				inTasks[it] += d
				delete(entered, k)
			}
		}
	}
	var rotations, between []time.Duration
	var spans []span
	var spanPage []int
	for _, it := range order {
		s := iters[it]
		if s.end.IsZero() {
			continue
		}
		d := s.end.Sub(s.start)
		rotations = append(rotations, d)
		between = append(between, max(0, d-inTasks[it]))
		spans = append(spans, *s)
		spanPage = append(spanPage, it.page)
	}
	if len(rotations) == 0 || len(pages) == 0 {
		return t
	}
	t.Rotation, t.Between = stats(rotations), stats(between)
	t.Steps = map[string]stat{}
	for name, ds := range steps {
		t.Steps[name] = stats(ds)
	}
	first, last := pages[0].start, pages[len(pages)-1].end
	if !last.After(first) {
		return t
	}
	t.InFlight = busy(spans, first, last) / last.Sub(first).Seconds()
	for p, ps := range pages {
		var in []span
		for i, sp := range spans {
			if spanPage[i] == p {
				in = append(in, sp)
			}
		}
		pt := pageTime{Rotations: len(in), Seconds: ps.end.Sub(ps.start).Seconds()}
		if pt.Seconds > 0 {
			pt.PerSecond = float64(pt.Rotations) / pt.Seconds
		}
		pt.TailSeconds = tail(in, ps.end)
		t.Pages = append(t.Pages, pt)
	}
	width := last.Sub(first) / time.Duration(max(1, windows))
	for w := range windows {
		from := first.Add(time.Duration(w) * width)
		to := from.Add(width)
		win := window{StartSeconds: from.Sub(first).Seconds(), from: from, to: to}
		if w == windows-1 {
			win.to = to.Add(time.Millisecond) // the run's last instant
		}
		var sum time.Duration
		for _, s := range spans {
			// The last window holds the run's end.
			if !s.end.Before(from) && (s.end.Before(to) || w == windows-1 && !s.end.After(to)) {
				win.Ended++
				sum += s.end.Sub(s.start)
			}
		}
		win.PerSecond = float64(win.Ended) / width.Seconds()
		if win.Ended > 0 {
			win.MeanMs = float64(sum.Microseconds()) / 1000 / float64(win.Ended)
		}
		win.InFlight = busy(spans, from, to) / width.Seconds()
		var taskSum time.Duration
		n := 0
		for _, s := range tasks {
			if !s.end.Before(win.from) && s.end.Before(win.to) {
				taskSum += s.end.Sub(s.start)
				n++
			}
		}
		if n > 0 {
			win.TaskMs = float64(taskSum.Microseconds()) / 1000 / float64(n)
		}
		t.Windows = append(t.Windows, win)
	}
	return t
}

// busy is the summed time the spans overlap [from, to), in seconds.
func busy(spans []span, from, to time.Time) float64 {
	var sum time.Duration
	for _, s := range spans {
		a, b := s.start, s.end
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			sum += b.Sub(a)
		}
	}
	return sum.Seconds()
}

// tail is how long before end the page's rotations in flight last fell
// below the most it ever had, and stayed below: the page barrier's cost.
func tail(spans []span, end time.Time) float64 {
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.start, 1}, edge{s.end, -1})
	}
	sort.SliceStable(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].d < edges[j].d // ends first: a start at the same instant replaces it
		}
		return edges[i].at.Before(edges[j].at)
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.d
		peak = max(peak, n)
	}
	var lastFull time.Time
	n = 0
	for _, e := range edges {
		n += e.d
		if n == peak {
			lastFull = e.at
		}
	}
	// The last instant at the peak is a start; the peak held until the
	// next edge.
	for _, e := range edges {
		if e.at.After(lastFull) {
			return end.Sub(e.at).Seconds()
		}
	}
	return 0
}

func printTimeline(w io.Writer, t timeline) {
	if t.Rotation.MaxMs == 0 {
		return
	}
	fmt.Fprintf(w, "rotation (Map iteration)\tp50 %.0f ms\tp99 %.0f ms\tmax %.0f ms\n", t.Rotation.P50Ms, t.Rotation.P99Ms, t.Rotation.MaxMs)
	fmt.Fprintf(w, "rotations in flight (mean)\t%.1f\n", t.InFlight)
	fmt.Fprintf(w, "  outside Task states, per rotation\tp50 %.0f ms\tp99 %.0f ms\n", t.Between.P50Ms, t.Between.P99Ms)
	names := make([]string, 0, len(t.Steps))
	for n := range t.Steps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := t.Steps[n]
		fmt.Fprintf(w, "  %s (as the Task saw it)\tp50 %.0f ms\tp99 %.0f ms\n", n, s.P50Ms, s.P99Ms)
	}
	for i, p := range t.Pages {
		fmt.Fprintf(w, "page %d\t%d rotations in %.1f s (%.1f/s), %.1f s below full concurrency at its end\n", i+1, p.Rotations, p.Seconds, p.PerSecond, p.TailSeconds)
	}
	fmt.Fprintf(w, "over time\trotations/s\trotation ms\tin flight\tTask ms\thandler ms\tTransactWriteItems ms\tGetItem ms\n")
	for _, win := range t.Windows {
		fmt.Fprintf(w, "  from %.0f s\t%.1f\t%.0f\t%.1f\t%.0f\t%.0f\t%.1f\t%.1f\n", win.StartSeconds, win.PerSecond, win.MeanMs, win.InFlight, win.TaskMs, win.HandlerMs, win.TransactMs, win.GetItemMs)
	}
}

// rotationFunctions are the functions the fleet's rotations invoke.
var rotationFunctions = []string{"acquirelease", "createsecret", "setsecret", "testsecret", "finishsecret", "releaselease"}

// addCalls fills in the windows' figures from rec.
func (t *timeline) addCalls(rec *latency.Recorder) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for i := range t.Windows {
		w := &t.Windows[i]
		m, _ := rec.Mean("DynamoDB.TransactWriteItems", w.from, w.to)
		w.TransactMs = ms(m)
		m, _ = rec.Mean("DynamoDB.GetItem", w.from, w.to)
		w.GetItemMs = ms(m)
		var sum time.Duration
		total := 0
		for _, f := range rotationFunctions {
			m, n := rec.Mean("Lambda."+f, w.from, w.to)
			sum += m * time.Duration(n)
			total += n
		}
		if total > 0 {
			w.HandlerMs = ms(sum / time.Duration(total))
		}
	}
}

package cli

import (
	"flag"
	"fmt"
)

var historyCmd = &command{
	name: "history", args: "<secret>",
	short: "show a secret's rotation journal as a timeline",
	long: `Shows the ledger's journal of a secret, oldest first: one line per state
transition of every rotation (time, rotation number = fencing token, sequence,
state, actor, the rotation's version id, error class, detail).

<secret> is the secret's name or ARN.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		last := fs.Int("last", 0, "show only the last `N` rotations (0: all)")
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "secret")
			if err == nil && *last < 0 {
				err = usagef("--last must not be negative")
			}
			if err == nil {
				err = e.history(id, *last)
			}
			if err != nil {
				return e.fail("history", err)
			}
			return ExitOK
		}
	},
}

func (e *env) history(id string, lastN int) error {
	if err := e.needSM(); err != nil {
		return err
	}
	if err := e.needDB(); err != nil {
		return err
	}
	s, err := e.describe(id)
	if err != nil {
		return err
	}
	hist, err := e.ledger().History(e.ctx, s.ARN)
	if err != nil {
		return err
	}
	recs := make([]record, 0, len(hist))
	for _, r := range hist {
		recs = append(recs, toRecord(r))
	}
	if lastN > 0 {
		var fencings []int64
		for _, r := range recs {
			if len(fencings) == 0 || fencings[len(fencings)-1] != r.Rotation {
				fencings = append(fencings, r.Rotation)
			}
		}
		if len(fencings) > lastN {
			min := fencings[len(fencings)-lastN]
			i := 0
			for i < len(recs) && recs[i].Rotation < min {
				i++
			}
			recs = recs[i:]
		}
	}
	if e.json() {
		return writeJSON(e.stdout, struct {
			Secret  string   `json:"secret"`
			ARN     string   `json:"arn"`
			Records []record `json:"records"`
		}{s.Name, s.ARN, recs})
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stdout, "%s: no rotations journaled\n", s.Name)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s (%s)\n\n", s.Name, s.ARN)
	t := newTable(e.stdout, "TIME", "ROTATION", "SEQ", "STATE", "ACTOR", "VERSION", "ERROR", "DETAIL")
	prev := int64(-1)
	for _, r := range recs {
		rot := ""
		if r.Rotation != prev {
			rot = fmt.Sprintf("#%d", r.Rotation)
			prev = r.Rotation
		} else {
			rot = "  "
		}
		ver := r.Version
		t.row(fmtTime(r.Time), rot, fmt.Sprint(r.Seq), r.State, r.Actor, ver, r.ErrorClass, r.Detail)
	}
	t.flush()
	return nil
}

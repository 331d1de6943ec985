package workflowapi

import (
	"context"
	"fmt"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/workflow"
)

// The demo workflow kind: trivial arithmetic steps that any member may run,
// to see chains, groups and chords at work (and to load-test the engine).

// DemoValue is the output of a demo step.
type DemoValue struct {
	Value int `json:"value"`
}

// DemoArgs are a demo step's arguments: its number, and whether it fails.
type DemoArgs struct {
	N    int  `json:"n"`
	Fail bool `json:"fail,omitempty"`
}

type demoKinds struct {
	// add outputs n plus its inputs (a chain's steps).
	add workflow.Kind[DemoArgs, DemoValue, DemoValue]
	// square outputs n² (a group's steps, a chord's header).
	square workflow.Kind[DemoArgs, DemoValue, DemoValue]
	// sum outputs the sum of its inputs (a chord's callback).
	sum workflow.Kind[DemoArgs, DemoValue, DemoValue]
}

func defineDemo(reg *workflow.Registry) demoKinds {
	failed := func(a DemoArgs) error {
		if a.Fail {
			return workflow.Permanent(fmt.Errorf("step %d failed on request", a.N))
		}
		return nil
	}
	opts := workflow.StepOptions{MaxAttempts: 3}
	return demoKinds{
		add: workflow.Define(reg, "demo.add", func(_ context.Context, a DemoArgs, in []DemoValue) (DemoValue, error) {
			v := a.N
			for _, x := range in {
				v += x.Value
			}
			return DemoValue{Value: v}, failed(a)
		}, opts),
		square: workflow.Define(reg, "demo.square", func(_ context.Context, a DemoArgs, _ []DemoValue) (DemoValue, error) {
			return DemoValue{Value: a.N * a.N}, failed(a)
		}, opts),
		sum: workflow.Define(reg, "demo.sum", func(_ context.Context, a DemoArgs, in []DemoValue) (DemoValue, error) {
			v := 0
			for _, x := range in {
				v += x.Value
			}
			return DemoValue{Value: v}, failed(a)
		}, opts),
	}
}

// DemoSpec asks for a demo workflow.
type DemoSpec struct {
	Kind     string `json:"kind" enum:"chain,group,chord" doc:"chain: n steps each adding its number to its predecessor's output; group: the squares of 1..n, as a list; chord: the squares of 1..n, then their sum"`
	N        int    `json:"n" minimum:"1" maximum:"100" doc:"Number of steps (a chord has one more: its callback)"`
	FailStep int    `json:"fail_step,omitempty" minimum:"0" maximum:"101" doc:"Make this step (1-based; n+1 is a chord's callback) fail"`
	Policy   string `json:"policy,omitempty" enum:"fail_fast,continue" doc:"What a failed step does to the rest (default fail_fast)"`
}

// graph builds the demo workflow.
func (k demoKinds) graph(s DemoSpec) (*workflow.Graph, error) {
	if s.N < 1 || s.N > 100 {
		return nil, apperr.InvalidField("n", "must be between 1 and 100")
	}
	last := s.N
	if s.Kind == "chord" {
		last++
	}
	if s.FailStep < 0 || s.FailStep > last {
		return nil, apperr.InvalidField("fail_step", "must name a step, 1 to %d", last)
	}
	args := func(i int) DemoArgs { return DemoArgs{N: i, Fail: i == s.FailStep} }
	calls := func(kind workflow.Kind[DemoArgs, DemoValue, DemoValue], name string) []workflow.Call {
		cs := make([]workflow.Call, s.N)
		for i := range cs {
			cs[i] = kind.Call(fmt.Sprintf("%s %d", name, i+1), args(i+1))
		}
		return cs
	}
	switch s.Kind {
	case "chain":
		return workflow.Chain(calls(k.add, "add")...), nil
	case "group":
		return workflow.Group(calls(k.square, "square")...), nil
	case "chord":
		if s.FailStep == 0 {
			return k.chord(s.N), nil
		}
		return workflow.Chord(calls(k.square, "square"), k.sum.Call("sum", args(last))), nil
	}
	return nil, apperr.InvalidField("kind", "must be chain, group or chord")
}

// chord is the demo chord of n steps: the squares of 1..n, then their sum.
func (k demoKinds) chord(n int) *workflow.Graph {
	header := make([]workflow.Call, n)
	for i := range header {
		header[i] = k.square.Call(fmt.Sprintf("square %d", i+1), DemoArgs{N: i + 1})
	}
	return workflow.Chord(header, k.sum.Call("sum", DemoArgs{N: n + 1}))
}

// DemoChord defines the demo step kinds on reg and returns the builder of
// the demo chord of n steps, for chords larger than the API allows (the
// load test's; up to workflow.MaxSteps - 1). The steps run wherever the
// workflow module is built: in every Beacon worker.
func DemoChord(reg *workflow.Registry) func(n int) *workflow.Graph {
	return defineDemo(reg).chord
}

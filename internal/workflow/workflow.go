// Package workflow runs workflows on River: a workflow is a DAG of steps
// persisted in PostgreSQL, each step a River job. Chain, Group and Chord
// build the usual shapes; Graph.Add builds any DAG. It knows no domain: a
// domain defines typed step kinds (Define) on a Registry, builds graphs of
// them and starts them with an Engine.
//
// Guarantees (see docs/workflows.md):
//   - A step's output is stored, its job completed and its ready dependents
//     enqueued in one transaction; a dependent is enqueued exactly once,
//     whatever the concurrency, processes or crashes (a pending_deps
//     counter decremented under the step's row lock).
//   - A step is completed at most once: a rerun of a step already finished
//     (River rescued a job whose worker was only slow) changes nothing.
//   - A workflow ends exactly once, as succeeded, failed, cancelled or
//     timed_out, announced on DoneChannel and realtime at commit.
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/beaconhq/beacon/internal/apperr"
)

// State of a workflow.
type State string

// Workflow states; every state but running is final.
const (
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
	StateTimedOut  State = "timed_out"
)

// States lists the workflow states.
var States = []State{StateRunning, StateSucceeded, StateFailed, StateCancelled, StateTimedOut}

// StepState of a step.
type StepState string

// Step states. A step is pending until its dependencies have succeeded,
// enqueued (its job waits or runs) until it succeeds or fails; the steps a
// failure or a cancel leaves unrun are cancelled.
const (
	StepPending   StepState = "pending"
	StepEnqueued  StepState = "enqueued"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepCancelled StepState = "cancelled"
)

// StepStates lists the step states.
var StepStates = []StepState{StepPending, StepEnqueued, StepSucceeded, StepFailed, StepCancelled}

// Policy says what a step's failure does to the rest of its workflow.
type Policy string

const (
	// FailFast fails the workflow at the first failed step and cancels the
	// steps not finished.
	FailFast Policy = "fail_fast"
	// Continue cancels only what depends on the failed step; the other
	// steps run, and the workflow fails once all have ended.
	Continue Policy = "continue"
)

// Limits.
const (
	// MaxOutput bounds a step's output (its JSON); a larger output fails
	// the step.
	MaxOutput = 64 << 10
	// MaxArgs bounds a step's arguments (their JSON).
	MaxArgs = 16 << 10
	// MaxSteps bounds a workflow's steps.
	MaxSteps = 10000
	// MaxDeadline bounds a workflow's deadline.
	MaxDeadline = 7 * 24 * time.Hour
)

// StepFunc is a step kind's work: its arguments and the outputs of its
// dependencies (in the order they were given) in, its output out. An error
// is retried by River up to the kind's MaxAttempts, unless Permanent.
type StepFunc[A, I, O any] func(ctx context.Context, args A, inputs []I) (O, error)

// StepOptions tune a step kind.
type StepOptions struct {
	// MaxAttempts of each step's job (default 3).
	MaxAttempts int
	// Timeout of one attempt (default: River's, one minute).
	Timeout time.Duration
	// Queue of the steps' jobs (default: the engine's).
	Queue string
}

// StepInfo is the step a step function runs for.
type StepInfo struct {
	WorkflowID int64
	Step       int
	Name       string
	// Attempt is this run's number, from 1; at MaxAttempts an error fails
	// the step.
	Attempt, MaxAttempts int
}

// LastAttempt reports whether an error now fails the step rather than
// being retried.
func (i StepInfo) LastAttempt() bool { return i.Attempt >= i.MaxAttempts }

type stepInfoKey struct{}

// StepFrom returns the step that ctx runs, inside a step function.
func StepFrom(ctx context.Context) (StepInfo, bool) {
	i, ok := ctx.Value(stepInfoKey{}).(StepInfo)
	return i, ok
}

// Permanent marks err as one that retrying cannot fix: the step fails at
// once, whatever attempts are left.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Registry holds step kinds; an Engine runs the steps of its registry.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]*stepKind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]*stepKind{}} }

type stepKind struct {
	name string
	opts StepOptions
	// run decodes the arguments and inputs, runs the function and encodes
	// its output.
	run func(ctx context.Context, args json.RawMessage, inputs []json.RawMessage) (json.RawMessage, error)
}

func (r *Registry) lookup(kind string) (*stepKind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.kinds[kind]
	return k, ok
}

var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,99}$`)

// Kind is a typed step kind: Call makes steps of it.
type Kind[A, I, O any] struct{ name string }

// Name is the kind's name.
func (k Kind[A, I, O]) Name() string { return k.name }

// Call returns a step of this kind named name, with args.
func (k Kind[A, I, O]) Call(name string, args A) Call {
	return Call{Name: name, Kind: k.name, args: args}
}

// Define registers a step kind on r: fn runs each step of the kind. It
// panics on a bad or duplicate name (a programming error, like
// river.AddWorker).
func Define[A, I, O any](r *Registry, name string, fn StepFunc[A, I, O], opts StepOptions) Kind[A, I, O] {
	if !kindPattern.MatchString(name) {
		panic(fmt.Sprintf("workflow: step kind %q: want lowercase letters, digits, '.', '_' and '-'", name))
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.MaxAttempts > 100 {
		panic(fmt.Sprintf("workflow: step kind %q: MaxAttempts over 100", name))
	}
	k := &stepKind{name: name, opts: opts,
		run: func(ctx context.Context, rawArgs json.RawMessage, rawInputs []json.RawMessage) (json.RawMessage, error) {
			var args A
			if err := json.Unmarshal(rawArgs, &args); err != nil {
				return nil, Permanent(fmt.Errorf("decode arguments: %w", err))
			}
			inputs := make([]I, len(rawInputs))
			for i, raw := range rawInputs {
				if err := json.Unmarshal(raw, &inputs[i]); err != nil {
					return nil, Permanent(fmt.Errorf("decode input %d: %w", i, err))
				}
			}
			out, err := fn(ctx, args, inputs)
			if err != nil {
				return nil, err
			}
			raw, err := json.Marshal(out)
			if err != nil {
				return nil, Permanent(fmt.Errorf("encode output: %w", err))
			}
			if len(raw) > MaxOutput {
				return nil, Permanent(fmt.Errorf("output is %d bytes, over the limit of %d", len(raw), MaxOutput))
			}
			return raw, nil
		}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[name]; dup {
		panic(fmt.Sprintf("workflow: step kind %q defined twice", name))
	}
	r.kinds[name] = k
	return Kind[A, I, O]{name: name}
}

// Call is a step to add to a graph: a kind, a name (shown in the API and
// River's UI) and arguments.
type Call struct {
	Name string
	Kind string
	// Delay is how long the step waits, once its dependencies have
	// succeeded (or the workflow started), before it runs (After).
	Delay time.Duration
	args  any
}

// MaxDelay bounds a step's delay.
const MaxDelay = 24 * time.Hour

// After returns c delayed by d: its job is scheduled d after the step
// becomes ready, so spaced steps hold no worker while they wait.
func (c Call) After(d time.Duration) Call {
	c.Delay = d
	return c
}

// Ref names a step of a graph, for the steps that depend on it.
type Ref int

// Graph is a workflow's steps and the edges between them. A step depends on
// steps added before it, so a graph has no cycle.
type Graph struct {
	steps      []graphStep
	result     []Ref
	resultList bool
	resultSet  bool
	err        error
}

type graphStep struct {
	call Call
	args json.RawMessage
	deps []Ref
}

// Add adds a step that runs once every step of deps has succeeded, with
// their outputs as inputs, in this order.
func (g *Graph) Add(c Call, deps ...Ref) Ref {
	ref := Ref(len(g.steps))
	for _, d := range deps {
		if d < 0 || d >= ref {
			g.fail(fmt.Errorf("step %q depends on an unknown step %d", c.Name, d))
		}
	}
	raw, err := json.Marshal(c.args)
	if err != nil {
		g.fail(fmt.Errorf("step %q: encode arguments: %w", c.Name, err))
	} else if len(raw) > MaxArgs {
		g.fail(fmt.Errorf("step %q: arguments are %d bytes, over %d", c.Name, len(raw), MaxArgs))
	}
	g.steps = append(g.steps, graphStep{call: c, args: raw, deps: append([]Ref(nil), deps...)})
	return ref
}

// SetResult makes the workflow's result the output of ref, or with list the
// list of the outputs of refs. By default it is the list of the outputs of
// the steps nothing depends on.
func (g *Graph) SetResult(list bool, refs ...Ref) {
	for _, r := range refs {
		if r < 0 || int(r) >= len(g.steps) {
			g.fail(fmt.Errorf("result names an unknown step %d", r))
		}
	}
	if !list && len(refs) != 1 {
		g.fail(errors.New("a single result needs exactly one step"))
	}
	g.result, g.resultList, g.resultSet = append([]Ref(nil), refs...), list, true
}

// Len is the number of steps.
func (g *Graph) Len() int { return len(g.steps) }

func (g *Graph) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// Chain runs calls one after the other, each getting its predecessor's
// output as its one input; the result is the last output.
func Chain(calls ...Call) *Graph {
	g := &Graph{}
	prev := Ref(-1)
	for i, c := range calls {
		if i == 0 {
			prev = g.Add(c)
		} else {
			prev = g.Add(c, prev)
		}
	}
	if len(calls) > 0 {
		g.SetResult(false, prev)
	}
	return g
}

// Group runs calls in parallel; the result is the list of their outputs, in
// the order of calls.
func Group(calls ...Call) *Graph {
	g := &Graph{}
	refs := make([]Ref, len(calls))
	for i, c := range calls {
		refs[i] = g.Add(c)
	}
	g.SetResult(true, refs...)
	return g
}

// Chord runs header in parallel, then callback with all their outputs as its
// inputs, in the order of header; the result is the callback's output.
func Chord(header []Call, callback Call) *Graph {
	g := Group(header...)
	refs := g.result
	g.SetResult(false, g.Add(callback, refs...))
	return g
}

// validate checks a graph before it is stored.
func (g *Graph) validate(reg *Registry) error {
	if g.err != nil {
		return apperr.Errorf(apperr.Invalid, "workflow: %v", g.err)
	}
	if len(g.steps) == 0 || len(g.steps) > MaxSteps {
		return apperr.Errorf(apperr.Invalid, "workflow: a workflow has 1 to %d steps, not %d", MaxSteps, len(g.steps))
	}
	for _, s := range g.steps {
		if l := len(s.call.Name); l < 1 || l > 100 {
			return apperr.Errorf(apperr.Invalid, "workflow: a step name has 1 to 100 characters")
		}
		if s.call.Delay < 0 || s.call.Delay > MaxDelay {
			return apperr.Errorf(apperr.Invalid, "workflow: step %q: a delay is between 0 and %s", s.call.Name, MaxDelay)
		}
		if _, ok := reg.lookup(s.call.Kind); !ok {
			return fmt.Errorf("workflow: step %q: kind %q is not defined on this engine", s.call.Name, s.call.Kind)
		}
	}
	return nil
}

// resultRefs returns the result steps and whether the result is a list.
func (g *Graph) resultRefs() ([]Ref, bool) {
	if g.resultSet {
		return g.result, g.resultList
	}
	hasDependents := make([]bool, len(g.steps))
	for _, s := range g.steps {
		for _, d := range s.deps {
			hasDependents[d] = true
		}
	}
	var sinks []Ref
	for i, has := range hasDependents {
		if !has {
			sinks = append(sinks, Ref(i))
		}
	}
	return sinks, true
}

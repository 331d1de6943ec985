package workflow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/workflow"
)

type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct{ river.WorkerDefaults[noopArgs] }

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// BenchmarkChord1000 measures a chord of 1,000 steps from its start to its
// callback's completion, and 1,000 bare River jobs (one InsertMany, trivial
// work) from their insert to the last one's completion, on the same client
// and database: the ratio is the workflow's overhead.
//
//	scripts/with-testdb.sh go test -run '^$' -bench Chord1000 -benchtime 3x ./internal/workflow/
func BenchmarkChord1000(b *testing.B) {
	const n = 1000
	env := newEnv(b)
	client, _ := work(b, env.pool, env.eng, workOpts{workers: 50, addWorkers: func(w *river.Workers) {
		river.AddWorker(w, noopWorker{})
	}})
	completed, cancel := client.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	waiter := workflow.NewWaiter(env.eng)
	header := make([]workflow.Call, n)
	for i := range header {
		header[i] = env.k.square.Call(fmt.Sprintf("square %d", i), NumArgs{N: i})
	}
	bare := make([]river.InsertManyParams, n)
	for i := range bare {
		bare[i] = river.InsertManyParams{Args: noopArgs{}, InsertOpts: &river.InsertOpts{Queue: workflow.DefaultQueue}}
	}
	var chordTotal, bareTotal time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		id := env.start(b, workflow.Start{Graph: workflow.Chord(header, env.k.collect.Call("collect", struct{}{}))})
		state, err := waiter.Wait(context.Background(), id, 5*time.Minute)
		require.NoError(b, err)
		require.Equal(b, workflow.StateSucceeded, state)
		chordTotal += time.Since(start)

		for len(completed) > 0 { // the chord's events
			<-completed
		}
		start = time.Now()
		_, err = client.InsertMany(context.Background(), bare)
		require.NoError(b, err)
		timeout := time.After(5 * time.Minute)
		for done := 0; done < n; {
			select {
			case ev := <-completed:
				if ev.Job.Kind == "bench_noop" {
					done++
				}
			case <-timeout:
				b.Fatalf("%d of %d bare jobs completed in 5 minutes", done, n)
			}
		}
		bareTotal += time.Since(start)
	}
	b.StopTimer()
	chord := chordTotal.Seconds() / float64(b.N)
	bareS := bareTotal.Seconds() / float64(b.N)
	b.ReportMetric(chord, "s/chord")
	b.ReportMetric(bareS, "s/1000-bare-jobs")
	b.ReportMetric(chord/bareS, "ratio")
	b.ReportMetric((chord-bareS)/(n+1)*1e6, "us-overhead/step")
}

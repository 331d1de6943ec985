package monitors

// NewCheckWorker returns the CheckWorker AddWorkers registers (with its
// groups), for rivertest, which works a worker outside any river.Workers.
func NewCheckWorker(d Deps) *CheckWorker { return newCheckWorker(d) }

//go:build unix && !linux

package tokenpipe

// yieldCPU lets another thread that is ready to run on this CPU run now:
// a reader spinning for a token, while the peer that writes it waits for
// the same CPU, would otherwise spin on until the scheduler preempts it.
// Here it does nothing: not every Unix offers sched_yield through package
// syscall, and Linux is where it was measured to pay.
func yieldCPU() {}

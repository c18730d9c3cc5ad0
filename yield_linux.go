package tokenpipe

import "syscall"

// yieldCPU lets another thread that is ready to run on this CPU run now:
// a reader spinning for a token, while the peer that writes it waits for
// the same CPU, would otherwise spin on until the scheduler preempts it.
// sched_yield(2) returns at once when nothing else waits for the CPU.
func yieldCPU() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

//go:build unix && !linux

package tokenpipe

// machineIdle reports that this system cannot say how long its CPUs have
// been idle (Linux reads /proc/stat): the spinner then tries spinning after
// each parked spell, and its windows alone stop it.
func machineIdle() idleSample { return idleSample{at: int64(monotonic()), state: idleUnknown} }

// yieldThread does nothing here.
func yieldThread() {}

package tokenpipe

// Internals that the tests in package tokenpipe_test check directly.
var ParseEndValue = parseEndValue

const MaxEndValue = uint64(maxEndValue)

// InterruptedReads returns how many reads were interrupted for another
// reader's context so far.
func InterruptedReads() int64 { return interruptedReads.Load() }

// EndHandle returns the descriptor or handle behind an open end.
func EndHandle(e *TokenPipeEnd) uintptr { return e.f.Load().sys.handle() }

// ResetReports forgets, as a new process would, that Ready or Fail reported
// and which NOTIFY_SOCKET they took, for tests that report in-process.
func ResetReports() {
	reportMu.Lock()
	reportMade = false
	reportMu.Unlock()
	notifyMu.Lock()
	notifyTaken = ""
	notifyMu.Unlock()
}

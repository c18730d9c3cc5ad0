package tokenpipe

import (
	"syscall"
	"testing"
	"time"
)

// Internals that the tests in package tokenpipe_test check directly.
var ParseEndValue = parseEndValue

const MaxEndValue = uint64(maxEndValue)

// InterruptedReads returns how many reads were interrupted for another
// reader's context so far.
func InterruptedReads() int64 { return interruptedReads.Load() }

// EndHandle returns the descriptor or handle behind an open end.
func EndHandle(e *TokenPipeEnd) uintptr { return e.f.Load().sys.handle() }

// OSHandle returns the descriptor or handle behind an open end.
func OSHandle(t testing.TB, e *TokenPipeEnd) uintptr {
	t.Helper()
	return EndHandle(e)
}

// Descriptors counts a process's open descriptors (handles, on Windows), as
// OpenDescriptors finds them.
type Descriptors struct {
	Pipes, Sockets, Pidfds int // the kinds that the ends, the handshake and its socket open
	All                    int // every descriptor, of whatever kind; on Windows every pipe (see OpenDescriptors)
}

// RawPipe (export_unix_test.go, export_windows_test.go) makes a pipe as a
// parent that is not written in Go hands one end down: bare descriptors
// (handles, on Windows), inheritable and blocking, that no *os.File or end
// holds. The end named by give, ReadEnd or WriteEnd, is returned as a bare
// number, for FromEnv, Ready or Fail to take (or the test to close); the
// other as an *os.File, closed when the test ends.
const (
	ReadEnd  = 0
	WriteEnd = 1
)

// WriteAll writes p whole through e, as Ready writes its report.
func WriteAll(e *TokenPipeEnd, p []byte) error { return e.writeAll("TokenWrite", p) }

// Pending reports whether a read from e would return at once, without
// taking anything from the pipe.
func Pending(e *TokenPipeEnd) bool { return e.pending() }

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

// The sd_notify layer's internals, for the tests in package tokenpipe_test,
// which run helpers in child processes.

// NotifyListener is the parent's sd_notify socket.
type NotifyListener struct{ l *notifyListener }

// NotifyResult is what a NotifyListener decided.
type NotifyResult struct {
	Ready  bool
	Errno  int
	Status string
	Err    error
}

// ListenNotify listens as StartAndWait does for a child started with attr.
func ListenNotify(attr *syscall.SysProcAttr) (*NotifyListener, error) {
	l, err := listenNotify(attr)
	if err != nil {
		return nil, err
	}
	return &NotifyListener{l}, nil
}

func (n *NotifyListener) Addr() string { return n.l.addr }
func (n *NotifyListener) Close() error { return n.l.close() }

// Await waits up to d for the first decisive result; ok is false if none
// came. With d zero it does not wait.
func (n *NotifyListener) Await(d time.Duration) (r NotifyResult, ok bool) {
	var res notifyResult
	select {
	case res = <-n.l.decision:
	default:
		if d == 0 {
			return NotifyResult{}, false
		}
		select {
		case res = <-n.l.decision:
		case <-time.After(d):
			return NotifyResult{}, false
		}
	}
	return NotifyResult{res.state.ready, res.state.errno, res.state.status, res.err}, true
}

func SendNotify(addr string, msg []byte) error { return sendNotify(addr, msg) }

func FormatNotify(status string, errno int, ready bool) []byte {
	return formatNotify(status, errno, ready)
}

const MaxNotifyMessage = maxNotifyMessage

// NotifyState is what sd_notify datagrams say, as the listener reads them.
type NotifyState struct {
	Ready, Failed bool
	Errno         int
	Value, Status string
}

// ParseNotify reads the datagrams, in order, as the listener does.
func ParseNotify(datagrams ...string) NotifyState {
	var s notifyState
	for _, d := range datagrams {
		s.parse([]byte(d))
	}
	return NotifyState{s.ready, s.failed, s.errno, s.value, s.status}
}

// Decided reports whether the datagrams read decide the wait. (The
// literal names every field of notifyState: one added there stops this
// from compiling until NotifyState has it too.)
func (s NotifyState) Decided() bool {
	state := notifyState{s.Ready, s.Failed, s.Errno, s.Value, s.Status}
	return state.decided()
}

const NotifySupported = notifySupported

// ExitWatch watches a child's exit without reaping it.
type ExitWatch struct{ w *exitWatch }

func WatchExit(pid int) (*ExitWatch, error) {
	w, err := watchExit(pid)
	if err != nil {
		return nil, err
	}
	return &ExitWatch{w}, nil
}

func (w *ExitWatch) Exited() <-chan struct{} { return w.w.exitedChan() }
func (w *ExitWatch) Close()                  { w.w.close() }

// Drain reads what is queued and stops the listener's goroutine; Decided
// then says, without waiting, whether that decided.
func (n *NotifyListener) Drain() { n.l.drain() }

func (n *NotifyListener) Decided() (NotifyResult, bool) { return n.Await(0) }

package tokenpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The handshake in one call on each side: Ready or Fail in the daemon,
// StartAndWait in the parent. It is built on the exported API only.
//
// Wire format, the same on every OS (see "Wire format" in the README):
//
//	ready:  token 1, the message, '\n', then the end is closed
//	failed: token 0, the reason (no '\n' anywhere), then the end is closed
//
// A Bitcoin-style child (token 1 or 0, then close) is understood, and a ready
// report is also a readiness notification to supervisors that wait for a
// newline on a descriptor (s6's notification-fd, OpenRC's notify=fd:N), while
// a failure report, having no newline, never reads as ready to them.

// ErrChildFailed is matched by the error StartAndWait returns when the child
// reported failure with Fail (or any token other than 1).
var ErrChildFailed = errors.New("child reported failure")

// ErrChildExited is matched by the error StartAndWait returns when the pipe
// reached end of stream without a report: the child, and every process that
// inherited its end, exited or closed the end without a word.
var ErrChildExited = errors.New("child exited without a report")

const (
	tokenFailed = 0
	tokenReady  = 1

	// maxMessage is how many bytes of a message or reason travel: Ready and
	// Fail cut longer ones, and StartAndWait reads no more.
	maxMessage = 4096

	// reapDelay is the cmd.WaitDelay StartAndWait sets, when the caller left
	// it zero, before it waits for a child on an error path (see StartAndWait).
	reapDelay = time.Second
)

// Ready tells the parent that started this process with StartAndWait (or a
// supervisor that waits for a newline on a descriptor, such as s6) that it is
// ready: it takes the end exported under env with FromEnv, writes token 1, msg
// and '\n', and closes the end. msg is free text for the parent, typically
// the address the daemon listens on; newlines in it become spaces, invalid
// UTF-8 becomes U+FFFD, and it is cut at 4 KiB, on a UTF-8 boundary.
//
// On Unix, when NOTIFY_SOCKET is set (systemd with Type=notify,
// start-stop-daemon --notify-await, or StartAndWait), Ready also sends
// "STATUS=msg" and "READY=1" there in one sd_notify datagram (no STATUS= if
// msg is empty; it is cut to fit systemd's 4 KiB), and then unsets
// NOTIFY_SOCKET, so that the daemon's own children do not report for it. It
// never waits for the supervisor to answer. On Windows NOTIFY_SOCKET is
// ignored: there are no datagram AF_UNIX sockets there.
//
// Ready reports on every channel present and succeeds if one took the
// report. When neither is present (the daemon was run by hand) it fails with
// an error matching ErrNotExported, and so does every call after the first,
// Ready or Fail, from any goroutine: only one report ever goes out. When every
// channel present failed, the error names each: a bad value of env gives
// FromEnv's error (os.ErrInvalid); a parent that has gone away gives an error
// matching io.ErrClosedPipe; a NOTIFY_SOCKET that is not an absolute path or
// an @abstract name (Linux) gives one matching os.ErrInvalid, and one that
// nobody listens on the system's error (ENOENT, ECONNREFUSED). In every case
// the end is closed when Ready returns. It blocks only while the parent is
// slow to read a long message, or while the supervisor's queue is full (at
// most 5 seconds).
func Ready(env, msg string) error {
	return report("Ready", env, tokenReady, msg, 0)
}

// Fail tells the parent that started this process with StartAndWait that it
// failed to start, and why: it takes the end exported under env with FromEnv,
// writes token 0 and reason's text, and closes the end. The text has no
// newline (newlines become spaces), so a supervisor that waits for one never
// takes a failure for readiness; invalid UTF-8 becomes U+FFFD, and it is cut
// at 4 KiB, on a UTF-8 boundary. A nil reason, like an empty text, sends no
// text: the parent's error then says "no reason given".
//
// When NOTIFY_SOCKET is set (Unix), Fail also sends "STATUS=reason" and a
// non-zero ERRNO=: the errno that reason wraps, if it wraps a syscall.Errno
// (errors.As), or else 5 (EIO), as sd_notify has no other way to say
// "failed"; start-stop-daemon --notify-await then fails at once, printing the
// errno's text, instead of waiting out its timeout. systemd records the errno
// but does not fail the unit for it: exit after Fail.
//
// Errors and blocking are as for Ready; only the first report goes out.
func Fail(env string, reason error) error {
	text, errno := describe(reason)
	return report("Fail", env, tokenFailed, text, errno)
}

// describe returns reason's text and the errno Fail sends for it. A reason
// whose methods panic (a nil pointer in a non-nil error, typically) is
// described as fmt would, "<nil>" or "%!v(PANIC=...)", rather than taking
// the daemon down while it reports.
func describe(reason error) (text string, errno int) {
	if reason == nil {
		return "", errnoOf(nil)
	}
	defer func() {
		if recover() != nil {
			errno = errnoOf(nil)
		}
	}()
	text = fmt.Sprint(reason) // recovers a panicking Error method itself
	return text, errnoOf(reason)
}

// checkReportEnv checks the name of the variable that carries a handshake's
// end: as for ExportTo, and never NOTIFY_SOCKET, which StartAndWait sets for
// the sd_notify channel and Ready and Fail read as such.
func checkReportEnv(op, env string) error {
	if err := checkEnvName(op, env); err != nil {
		return err
	}
	if envKeyEqual(env, notifySocketEnv) {
		return fmt.Errorf("tokenpipe: %s: %s is the sd_notify socket's variable, not a name for the end: %w", op, env, os.ErrInvalid)
	}
	return nil
}

// reportMu makes each report go out on every channel before another call
// looks for one, so that only the first report goes out, on all of them.
var reportMu sync.Mutex

// report sends one report on every channel present: the end exported under
// env, and the socket NOTIFY_SOCKET names. It succeeds if one took it.
func report(op, env string, token byte, text string, errno int) error {
	if err := checkReportEnv(op, env); err != nil {
		return err
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	text = cleanMessage(text)
	pipeErr := reportPipe(env, token, text)
	notified, notifyErr := notifyReport(text, errno, token == tokenReady)
	switch {
	case pipeErr == nil || notified:
		return nil
	case notifyErr == nil:
		return &opError{op, pipeErr}
	case errors.Is(pipeErr, ErrNotExported):
		return &opError{op, notifyErr}
	}
	return &opError{op, errors.Join(pipeErr, notifyErr)}
}

// reportPipe takes the end exported under env and writes one report to it.
func reportPipe(env string, token byte, text string) error {
	e, err := FromEnv(env)
	if err != nil {
		return err
	}
	// One write: the report is in the pipe whole at once (pipes take up to
	// PIPE_BUF, 4 KiB, in one piece, and more in one system call where they
	// have room), so that a reader that has seen the child exit finds all
	// of it, and it costs one system call, not one a byte.
	report := make([]byte, 0, 1+len(text)+1)
	report = append(append(report, token), text...)
	if token == tokenReady {
		report = append(report, '\n')
	}
	werr := e.writeAll("TokenWrite", report)
	if cerr := e.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// cleanMessage makes text what the wire format allows: valid UTF-8, no
// newline, at most maxMessage bytes, cut on a UTF-8 boundary.
func cleanMessage(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "\n", " ")
	if len(text) <= maxMessage {
		return text
	}
	return string(trimPartialRune([]byte(text[:maxMessage])))
}

// trimPartialRune drops an incomplete UTF-8 sequence from the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// StartAndWait starts cmd with the write end of a new token pipe exported
// under the environment variable env, and waits until the child reports with
// Ready or Fail, the pipe reaches end of stream, or ctx ends. It closes its own
// copy of the write end whether or not Start worked, so a dying child is
// always noticed. It adds to cmd.Env, and to cmd.ExtraFiles (Unix) or
// cmd.SysProcAttr.AdditionalInheritedHandles (Windows), keeping what is there
// (see ExportTo).
//
// A report is token 1 followed by a message up to '\n' or end of stream
// (ready), or any other token followed by a reason up to end of stream
// (failed); see the README for the wire format. At most 4 KiB of either is
// read, and text is returned as valid UTF-8 with newlines made spaces. The
// outcomes:
//
//   - Ready: (msg, nil). The child keeps running and belongs to the caller,
//     who must cmd.Wait for it or cmd.Process.Release it. Token 1 is the
//     child's word that it is ready: a child that writes it and then exits
//     before the newline (or a Bitcoin-style child: token 1, then close) is
//     ready too, with the message it got out. A message longer than 4 KiB is
//     cut there and the pipe closed, so that a child writing on sees a broken
//     pipe instead of hanging StartAndWait.
//   - Failed: StartAndWait reads the reason (4 KiB at most; then it closes the
//     pipe, and the child's further writes fail) up to end of stream or, as a
//     process the child started before it reported may hold its end open
//     for ever, until the child has exited and what the pipe holds is read
//     (all of a report that Fail wrote, which it does in one call). It
//     returns the reason as msg and an error matching ErrChildFailed whose
//     text has the reason, or "no reason given".
//   - End of stream first: StartAndWait waits for the child to exit and
//     returns an error matching ErrChildExited whose text has the child's
//     exit status ("exit status 3", "signal: killed"). With a child that
//     double-forks, the grandchild that holds the end reports, or exits, in
//     its place; the status is still the child's.
//   - ctx ends before a report has begun: StartAndWait kills the child,
//     waits for it, and returns an error matching ctx.Err(). If ctx has ended
//     already, cmd is not started and is left as it was (like a Cmd never
//     started, it keeps pipes made by StdinPipe and the like open). If
//     token 1 has come, the child is ready, with the part of its message
//     that came: so a child that writes token 1 and keeps its end open
//     without a newline (`printf '\001' >&"$FD"; exec server` in a shell,
//     where the server inherits the end) is ready when ctx ends. If a
//     failure token has come, the child is killed and reaped, and the error
//     matches ErrChildFailed and ctx.Err(), with the part of the reason
//     that came. "Has come" means: is in the pipe when StartAndWait sees
//     ctx end; it then reads that, without waiting for more, and decides.
//   - cmd fails to start: that error, wrapped.
//
// Waiting for the exit after a failure report or end of stream is also
// bounded by ctx: a child that closes its end and lives on is killed when ctx
// ends, and the error then matches ctx.Err() as well. StartAndWait kills only
// the child it started, never a grandchild.
//
// # sd_notify (Unix)
//
// StartAndWait also makes a datagram socket in a new private directory (mode
// 0700, in os.TempDir() or, if that path is too long for a socket address,
// /tmp) and sets NOTIFY_SOCKET to it in the child's environment, replacing
// any value there, so that a child that speaks sd_notify (through Ready and
// Fail, libsystemd, systemd-notify; Redis with --supervised systemd) is
// understood as well. The first report on either channel decides:
//
//   - READY=1: (msg, nil) with the last STATUS= as msg.
//   - ERRNO= with a positive number before READY=1: as a failure report, with
//     the last STATUS= as the reason and msg; the error also has the errno's
//     text and matches the syscall.Errno. (ERRNO= and READY=1 in one datagram
//     are a failure.)
//   - A report on the pipe that has begun, or is waiting to be read, when a
//     datagram decides, is the first, so that a Go child's Ready or Fail,
//     which writes the pipe before it sends, gives the same result whichever
//     StartAndWait reads first.
//
// Every descriptor a datagram carries is closed at once (so systemd-notify's
// BARRIER=1 is answered); datagrams longer than 4 KiB or holding a NUL byte,
// lines that are not READY=1, STATUS= or ERRNO=, and (Linux, where the kernel
// attaches the sender's credentials) datagrams from another user are
// ignored. The socket and its directory are removed before StartAndWait
// returns, on every path; if they cannot be made, StartAndWait fails and
// starts nothing.
//
// The child's death is still seen through the pipe, whose end the child
// inherits even if it speaks only sd_notify. But a daemon may close its
// inherited descriptors at start-up and report later, so on Linux (5.4 and
// later, with a pidfd, which does not reap the child), the BSDs and macOS
// (kqueue) the end of the pipe is not taken for the child's exit while the
// child is alive: StartAndWait waits for its report, its exit or the end of
// ctx. Elsewhere (Solaris, illumos, AIX) it is, as without sd_notify. A child
// that sends READY=1 and then exits is ready, as one that writes token 1 and
// exits is. EXTEND_TIMEOUT_USEC= does not move ctx's deadline, and MAINPID=,
// WATCHDOG= and the rest are ignored.
//
// In every error case but bad arguments and Start failing, the child has been
// waited for (cmd.ProcessState is set), and StartAndWait leaves no descriptor
// or goroutine behind. Because cmd.Wait also waits for the goroutines that
// copy a non-*os.File cmd.Stdin, Stdout or Stderr, which a grandchild holding
// those pipes would keep open forever, StartAndWait sets cmd.WaitDelay to one
// second before it waits, if it is zero; set it yourself to choose another
// bound.
//
// A nil ctx or cmd, a cmd already started, or an empty env or one containing
// '=' or NUL give an error matching os.ErrInvalid; cmd is not started and is
// left as it was.
func StartAndWait(ctx context.Context, cmd *exec.Cmd, env string) (msg string, err error) {
	const op = "StartAndWait"
	switch {
	case ctx == nil:
		return "", fmt.Errorf("tokenpipe: %s: nil context: %w", op, os.ErrInvalid)
	case cmd == nil:
		return "", fmt.Errorf("tokenpipe: %s: nil *exec.Cmd: %w", op, os.ErrInvalid)
	case cmd.Process != nil:
		return "", fmt.Errorf("tokenpipe: %s: %s: command already started: %w", op, cmd.Path, os.ErrInvalid)
	}
	if err := checkReportEnv(op, env); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("tokenpipe: %s: %s: not started: %w", op, cmd.Path, err)
	}
	h := &handshake{cmd: cmd}
	if notifySupported {
		if h.notify, err = listenNotify(cmd.SysProcAttr); err != nil {
			return "", &opError{op, err}
		}
		defer h.notify.close()
		setEnv(cmd, notifySocketEnv, h.notify.addr)
	}
	if h.r, err = startExported(cmd, env); err != nil {
		return "", &opError{op, err}
	}
	if h.notify != nil {
		// Right after Start, before anyone can reap the child.
		switch h.exit, err = watchExit(cmd.Process.Pid); {
		case err == nil:
			defer h.exit.close()
		case !errors.Is(err, errors.ErrUnsupported):
			h.r.Close()
			h.killAndReap()
			return "", fmt.Errorf("tokenpipe: %s: %s: watching for its exit: %w (killed it: %s)", op, cmd.Path, err, h.status())
		}
	}
	msg, err = h.wait(ctx)
	if err != nil {
		return msg, fmt.Errorf("tokenpipe: %s: %s: %w", op, cmd.Path, err)
	}
	return msg, nil
}

// startExported starts cmd with the write end of a new pipe exported under
// env and returns the read end. Whatever fails, it leaves nothing open.
func startExported(cmd *exec.Cmd, env string) (*TokenPipeEnd, error) {
	p, err := Make()
	if err != nil {
		return nil, err
	}
	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
	if err := w.ExportTo(cmd, env); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	err = cmd.Start()
	w.Close() // whether or not Start worked: now only the child holds a write end
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	return r, nil
}

// reportKind is what a report says.
type reportKind int

const (
	reportReady reportKind = iota + 1
	reportFailed
)

// pipeReport is what readReport returned.
type pipeReport struct {
	kind  reportKind
	token byte
	text  string
	err   error
}

// handshake is one StartAndWait under way.
type handshake struct {
	cmd    *exec.Cmd
	r      *TokenPipeEnd   // the read end; closed when wait returns
	notify *notifyListener // the child's NOTIFY_SOCKET (Unix), or nil
	exit   *exitWatch      // sees the child exit, where notify is set and the OS can
	reaped chan struct{}   // closed once cmd.Wait has returned; nil until startReap
}

// wait is StartAndWait's event loop. Each source of news (the pipe, the
// sd_notify socket, the child's exit) runs in a goroutine of its own that
// sends one result; wait selects on those and ctx, and stops and joins every
// goroutine before it returns (the socket's and the exit watch's in
// StartAndWait).
//
// The first report on either channel decides. A report on the pipe that is
// under way, or waiting to be read, when a datagram decides is the first:
// the daemon's Ready and Fail write the pipe before the socket, and the pipe
// carries the message whole, so the outcome does not depend on which of the
// two is read first.
func (h *handshake) wait(ctx context.Context) (string, error) {
	pipe := make(chan pipeReport, 1)
	readerDone := make(chan struct{})
	var pipeStarted atomic.Bool
	tokenRead := make(chan byte, 1)
	d := newPipeReader(h.r)
	defer d.drain() // releases its context
	go func() {
		defer close(readerDone)
		var rep pipeReport
		rep.kind, rep.token, rep.text, rep.err = readReport(d, &pipeStarted, tokenRead)
		pipe <- rep
	}()
	// A failure reason has no end but end of stream, which a process the
	// child started before it reported may hold off for ever; so the
	// child's exit ends it too, the child being waited for as soon as a
	// failure token comes, and the reason is then what the pipe holds.
	// Fail writes its report in one call, so that is all of it, whoever
	// wrote it; a reason written in pieces by a grandchild, after the
	// child's exit, may be cut at a pause. (Telling that writer from the
	// child by when the child exited cannot be done without a race that
	// would leave the reason waiting for ever.) A ready message ends at
	// its '\n'.
	var reaped <-chan struct{}
	// Closing the read end ends a pending read; and once a report is in, a
	// child still writing sees a broken pipe instead of filling it forever.
	stopped := false
	stopReader := func() {
		if !stopped {
			stopped = true
			h.r.Close()
			<-readerDone
		}
	}
	defer stopReader()

	var decision <-chan notifyResult
	if h.notify != nil {
		decision = h.notify.decision
	}
	var exited <-chan struct{} // set once the pipe has ended
	var notified *notifyResult // a datagram's decision, waiting for the pipe
	for {
		select {
		case tok := <-tokenRead:
			if tok != tokenReady {
				reaped = h.startReap()
			}
		case <-reaped:
			reaped = nil
			d.drain()
		case rep := <-pipe:
			pipe = nil
			stopReader()
			switch {
			case rep.err != io.EOF:
				return h.conclude(ctx, rep)
			case notified != nil:
				return h.concludeNotify(ctx, *notified)
			case h.notify == nil:
				return h.conclude(ctx, rep)
			}
			// Every holder of the write end has closed it or exited; but a
			// child that speaks sd_notify may have closed it at start-up and
			// report later. Wait for its report or its exit.
			exited = h.exitedChan()
		case res := <-decision:
			decision = nil
			// Ready and Fail write the pipe before they send: if the pipe
			// holds something unread, or the reader has begun a report,
			// that report came first. (Checked in that order, as the
			// reader takes the pipe's bytes before it says it has begun.)
			if pipe != nil && (h.r.pending() || pipeStarted.Load()) {
				notified = &res
				continue
			}
			stopReader()
			return h.concludeNotify(ctx, res)
		case <-exited:
			// What the child sent before it exited is queued by now.
			h.notify.drain()
			select {
			case res := <-decision:
				return h.concludeNotify(ctx, res)
			default:
			}
			return h.conclude(ctx, pipeReport{err: io.EOF})
		case <-ctx.Done():
			rep := pipeReport{err: io.EOF}
			if pipe != nil {
				// What the child wrote before ctx ended is read first, so
				// that whether it reported does not depend on how far the
				// reader had got.
				d.drain()
				rep = <-pipe
				stopReader()
			}
			// A report that was whole before the read end closed still
			// counts: killing a daemon that said it was ready would help
			// nobody. So does a datagram's, and so does token 1, the
			// child's word that it is ready, with the part of its message
			// that came (a child that writes token 1 and keeps its end
			// open without the newline, as `printf '\001' >&$FD; exec
			// server` in a shell does, is ready when ctx ends).
			if rep.err == nil {
				return h.conclude(ctx, rep)
			}
			switch rep.kind {
			case reportReady:
				return rep.text, nil
			case reportFailed: // with the part of the reason that came
				return h.conclude(ctx, pipeReport{kind: rep.kind, token: rep.token, text: rep.text})
			}
			if notified == nil {
				select {
				case res := <-decision:
					notified = &res
				default:
				}
			}
			switch {
			case notified != nil:
				return h.concludeNotify(ctx, *notified)
			case rep.err == io.EOF:
				return h.conclude(ctx, rep) // kills: it lived on
			}
			h.killAndReap()
			return "", fmt.Errorf("no report when the context ended (%s): %w", h.status(), ctx.Err())
		}
	}
}

// conclude turns a report, or end of stream, into StartAndWait's result,
// waiting for the child where the outcome says so.
func (h *handshake) conclude(ctx context.Context, rep pipeReport) (string, error) {
	switch {
	case rep.err == io.EOF:
		if err := h.reap(ctx); err != nil {
			return "", fmt.Errorf("%w (it closed its end but lived on until the context ended: %s): %w", ErrChildExited, h.status(), err)
		}
		return "", fmt.Errorf("%w: %s", ErrChildExited, h.status())
	case rep.err != nil:
		h.killAndReap()
		return "", fmt.Errorf("reading the report: %w (killed the child: %s)", rep.err, h.status())
	case rep.kind == reportReady:
		return rep.text, nil
	}
	reason := reasonOrNone(rep.text)
	if rep.token != tokenFailed {
		reason = fmt.Sprintf("unknown token %d: %s", rep.token, reason)
	}
	return h.failed(ctx, rep.text, reason, nil)
}

// failed concludes a failure report, on the pipe or over sd_notify: it waits
// for the child to exit, killing it if ctx ends first, and returns msg with
// an error that matches ErrChildFailed and has reason, and matches cause too
// where it is not nil (and ctx.Err() if the child had to be killed).
func (h *handshake) failed(ctx context.Context, msg, reason string, cause error) (string, error) {
	err := fmt.Errorf("%w: %s", ErrChildFailed, reason)
	if cause != nil {
		err = fmt.Errorf("%w (%w)", err, cause)
	}
	if rerr := h.reap(ctx); rerr != nil {
		err = fmt.Errorf("%w (it lived on until the context ended: %s): %w", err, h.status(), rerr)
	}
	return msg, err
}

// reasonOrNone is a failure's reason as the error says it.
func reasonOrNone(text string) string {
	if text == "" {
		return "no reason given"
	}
	return text
}

// readReport reads one report through d: its kind, token and text. Text is
// read up to '\n' (ready only), end of stream or maxMessage bytes, whichever
// comes first; a ready message of exactly maxMessage bytes still has its
// '\n' read, so that the daemon writing it never finds the pipe closed. Once
// d drains, what the pipe holds ends the report as end of stream would. err
// is io.EOF or errDrained only if no token came; after the token, an error
// comes with the text read so far.
//
// The token is sent on tokenRead (buffered) as soon as it is read, and
// started is set.
func readReport(d *pipeReader, started *atomic.Bool, tokenRead chan<- byte) (kind reportKind, token byte, text string, err error) {
	token, err = d.read()
	if err != nil {
		return 0, 0, "", err
	}
	started.Store(true)
	tokenRead <- token
	kind = reportFailed
	if token == tokenReady {
		kind = reportReady
	}
	buf := make([]byte, 0, 64)
	full := false
	for {
		b, err := d.read()
		if err == io.EOF || err == errDrained || (b == '\n' && kind == reportReady && err == nil) {
			break
		}
		if err != nil {
			return kind, token, cleanMessage(string(buf)), err
		}
		if len(buf) == maxMessage {
			full = true // b is past the limit
			break
		}
		buf = append(buf, b)
	}
	if full {
		buf = trimPartialRune(buf) // cut by the limit, not by the sender
	}
	return kind, token, cleanMessage(string(buf)), nil
}

// pipeReader reads a report's bytes: each is waited for until drain is
// called, and from then on only what the pipe holds is read, without
// waiting at all, so that nothing the child wrote before is lost to a
// decision taken meanwhile, and nothing written after counts.
type pipeReader struct {
	r      *TokenPipeEnd
	ctx    context.Context // ends when drain is called
	cancel context.CancelFunc
}

// errDrained is what pipeReader.read returns once it drains an empty pipe.
var errDrained = errors.New("no more in the pipe")

func newPipeReader(r *TokenPipeEnd) *pipeReader {
	ctx, cancel := context.WithCancel(context.Background())
	return &pipeReader{r: r, ctx: ctx, cancel: cancel}
}

// drain makes read stop waiting for bytes that are not in the pipe: when
// ctx ends, or the child has exited while it holds a report's text.
func (d *pipeReader) drain() { d.cancel() }

func (d *pipeReader) read() (byte, error) {
	if d.ctx.Err() == nil {
		b, err := d.r.TokenReadContext(d.ctx)
		if err != context.Canceled {
			return b, err
		}
	}
	if !d.r.pending() {
		return 0, errDrained
	}
	return d.r.TokenRead() // returns at once
}

// startReap starts waiting for the child, once, and returns a channel that
// is closed when cmd.Wait has returned (cmd.ProcessState is set then).
func (h *handshake) startReap() <-chan struct{} {
	if h.reaped == nil {
		if h.cmd.WaitDelay == 0 {
			h.cmd.WaitDelay = reapDelay
		}
		reaped := make(chan struct{})
		go func() {
			defer close(reaped)
			h.cmd.Wait() // the status is in cmd.ProcessState
		}()
		h.reaped = reaped
	}
	return h.reaped
}

// reap waits for the child to exit, killing it if ctx ends first, in which
// case it returns ctx.Err().
func (h *handshake) reap(ctx context.Context) error {
	reaped := h.startReap()
	select {
	case <-reaped: // first: a child that has exited was not killed
		return nil
	default:
	}
	select {
	case <-reaped:
		return nil
	case <-ctx.Done():
		h.cmd.Process.Kill()
		<-reaped
		return ctx.Err()
	}
}

// killAndReap kills the child and waits for it.
func (h *handshake) killAndReap() {
	h.cmd.Process.Kill() // fails only if it has exited, which is as good
	<-h.startReap()
}

// status describes how the reaped child ended: "exit status 3",
// "signal: killed".
func (h *handshake) status() string {
	if h.cmd.ProcessState == nil {
		return "not waited for" // cmd.Wait failed before the process ended
	}
	return h.cmd.ProcessState.String()
}

// opError puts op's name on an error from an operation it was built on.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string {
	return "tokenpipe: " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "tokenpipe: ")
}

func (e *opError) Unwrap() error { return e.err }

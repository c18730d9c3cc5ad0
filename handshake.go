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
// reported failure: Fail, any token but 1, or an sd_notify ERRNO= line.
var ErrChildFailed = errors.New("child reported failure")

// ErrChildExited is matched by the error StartAndWait returns when the child
// exited without a report.
var ErrChildExited = errors.New("child exited without a report")

// ErrChildKilled is matched by the error StartAndWait returns when ctx ended
// before the child reported, and StartAndWait killed it; the error matches
// ctx.Err() too.
var ErrChildKilled = errors.New("child killed")

// ErrCleanup is matched by the error StartAndWait returns when the child is
// ready, and StartAndWait returns its message, but could not remove the
// directory of the child's sd_notify socket; the child runs on. (On the
// other outcomes, which are errors already, the text says so as well.)
var ErrCleanup = errors.New("could not remove the sd_notify socket directory")

// ErrAlreadyReported is matched by the error Ready and Fail return after the
// first call that found a channel to report on: only one report goes out.
var ErrAlreadyReported = errors.New("already reported: only the first Ready or Fail reports")

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

// Ready tells whoever started this process that it is ready: the parent's
// StartAndWait, a supervisor that waits for a newline on a descriptor (s6),
// or one that speaks sd_notify (systemd with Type=notify, start-stop-daemon
// --notify-await). It takes the end exported under env with FromEnv, writes
// token 1, msg and '\n', and closes the end; on Unix, when NOTIFY_SOCKET is
// set and not empty, it also sends "STATUS=msg\nREADY=1" there and takes
// NOTIFY_SOCKET out of the environment, so that the daemon's own children
// do not report for it (Notify goes on using the socket). msg is free text,
// typically the address the daemon listens on: newlines become spaces,
// invalid UTF-8 becomes U+FFFD, and it is cut at 4 KiB on a UTF-8 boundary
// (the STATUS= line, to fit systemd's 4 KiB datagram).
//
// Ready succeeds if one channel took the report. Run by hand, with neither
// channel present, it fails with an error naming both and matching
// ErrNotExported. When every channel present failed, the error names each:
// a bad value of env gives FromEnv's error (os.ErrInvalid); a parent that has
// gone away, one matching io.ErrClosedPipe; a bad NOTIFY_SOCKET (not an
// absolute path or, on Linux, an @name), one matching os.ErrInvalid, and one
// that nobody listens on, the system's error (ENOENT, ECONNREFUSED). Once a
// call has found a channel, every later Ready or Fail, from any goroutine,
// fails with ErrAlreadyReported: only one report goes out. Ready never waits
// for an answer; it blocks only while the parent is slow to read a long
// message, or while the supervisor's queue is full (at most 5 seconds). On
// Windows NOTIFY_SOCKET is not used: there are no datagram AF_UNIX sockets.
func Ready(env, msg string) error {
	return report("Ready", env, tokenReady, msg, 0)
}

// Fail tells whoever started this process that it failed to start, and why:
// as Ready, but it writes token 0 and reason's text, which has no newline, so
// that a supervisor waiting for one never takes a failure for readiness. A
// nil reason, like an empty text, sends no text: the parent's error says "no
// reason given". To a NOTIFY_SOCKET it sends "STATUS=reason" and ERRNO=n:
// the syscall.Errno that reason wraps (errors.As), or else 5 (EIO), as
// sd_notify has no other way to say "failed". start-stop-daemon then fails
// at once, printing the errno's text; systemd only records it: exit after
// Fail. Errors and blocking are as for Ready.
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
// looks for one, and guards reportMade.
var reportMu sync.Mutex

// reportMade is set once a Ready or Fail has found a channel.
var reportMade bool

// report sends one report on every channel present: the end exported under
// env, and the socket NOTIFY_SOCKET names. It succeeds if one took it.
func report(op, env string, token byte, text string, errno int) error {
	if err := checkReportEnv(op, env); err != nil {
		return err
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	if reportMade {
		return &opError{op, ErrAlreadyReported}
	}
	text = cleanMessage(text)
	piped, pipeErr := reportPipe(env, token, text)
	notified, notifyErr := notifyReport(text, errno, token == tokenReady)
	reportMade = piped || notified
	if (piped && pipeErr == nil) || (notified && notifyErr == nil) {
		return nil
	}
	var errs []error
	if piped || !errors.Is(pipeErr, ErrNotExported) {
		errs = append(errs, pipeErr)
	}
	if notified {
		errs = append(errs, notifyErr)
	}
	if len(errs) == 0 {
		return &opError{op, notExportedError(env)}
	}
	return &opError{op, errors.Join(errs...)}
}

// notExportedError says that neither channel a report could take is there.
func notExportedError(env string) error {
	if !notifySupported {
		return fmt.Errorf("%s is not set: %w", env, ErrNotExported)
	}
	return fmt.Errorf("neither %s nor %s is set: %w", env, notifySocketEnv, ErrNotExported)
}

// reportPipe takes the end exported under env and writes one report to it.
// taken says whether there was an end to take.
func reportPipe(env string, token byte, text string) (taken bool, err error) {
	e, err := FromEnv(env)
	if err != nil {
		return false, err
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
	return true, werr
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
// under the variable env, and waits until the child reports with Ready or
// Fail, exits, or ctx ends. Each outcome is told apart by errors.Is:
//
//	the child                          msg, err              the child afterwards
//	Ready(env, msg), or token 1        msg, nil              runs on: cmd.Wait or cmd.Process.Release it
//	Fail(env, reason), another token   reason, ErrChildFailed   reaped
//	exits without a report             "", ErrChildExited    reaped; the text has its exit status
//	no report when ctx ends            "", ErrChildKilled    killed and reaped
//	cannot be started                  "", Start's error     -
//
// Token 1 is the child's word that it is ready: a child that writes it and
// exits, or has not written the message's newline when ctx ends, is ready
// with the part of the message that came. When ctx ends, what the pipe
// holds is read, without waiting for more, and decides. A child that
// reports failure, or closes its end without a report, and lives on until
// ctx ends is killed: the error then matches ctx.Err() as well, as every
// ErrChildKilled error does. StartAndWait kills only the child it started,
// never a grandchild, and it closes its own copy of the write end whether or
// not Start worked, so a dying child is always noticed.
//
// At most 4 KiB of a message or reason is read; a child that writes more
// gets a broken pipe. Text is returned as valid UTF-8 with newlines made
// spaces. A failure reason ends at end of stream or, as a process the child
// started may hold the end for ever, once the child has exited.
//
// On Unix the child also gets NOTIFY_SOCKET, a datagram socket in a new
// private directory, so that a daemon speaking sd_notify (systemd-notify,
// libsystemd, Redis with --supervised systemd) is understood: READY=1 is
// ready, with the last STATUS= as msg, and an ERRNO= line is a failure, as
// start-stop-daemon reads them. The first report on either channel decides.
// Where the system can watch a child without reaping it (Linux 5.4 and
// later, the BSDs, macOS), a child that closes its end at start-up and
// reports later over the socket is waited for. The socket and its directory
// are removed before StartAndWait returns; if that fails with a ready child,
// StartAndWait returns msg and an error matching ErrCleanup.
//
// StartAndWait sets cmd.Env, cmd.ExtraFiles and (Windows) cmd.SysProcAttr
// to new values that keep the caller's (see ExportTo), and on error paths
// cmd.WaitDelay to one second if it is zero, as a grandchild holding the
// child's output pipes would hold cmd.Wait for ever. In every error case but
// bad arguments and Start failing, the child has been waited for. No
// descriptor is left behind, but those the child sent with a datagram,
// which goroutines of their own close, as a close can block. A nil ctx or cmd, a started cmd, or a bad env
// (empty, holding '=' or NUL, or NOTIFY_SOCKET) give an error matching
// os.ErrInvalid, and a ctx that has ended already, ctx.Err(); cmd is then
// left as it was, not started. See the README for the wire format and the
// sd_notify details.
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
	msg, err = h.run(ctx, env)
	if cerr := h.close(); cerr != nil {
		if err == nil {
			err = fmt.Errorf("ready, but %w: %w", ErrCleanup, cerr)
		} else {
			err = fmt.Errorf("%w; and it %s: %v", err, ErrCleanup, cerr)
		}
	}
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

// The exit watch (exitwatch_*.go) tells when a child that has not been
// reaped exits, without reaping it, so that cmd.Wait still gets its status:
// a child that closed its inherited end, or whose descendants hold it, is
// then told from one still starting. watchExit(pid) starts watching a child
// not yet reaped, or fails with errors.ErrUnsupported where the system
// cannot; exitedChan() is closed once the child has exited; hasExited()
// says so without waiting; close() stops the watch, once.

// handshake is one StartAndWait under way.
type handshake struct {
	cmd    *exec.Cmd
	r      *TokenPipeEnd   // the pipe's read end
	notify *notifyListener // the child's NOTIFY_SOCKET (Unix), or nil
	exit   *exitWatch      // sees the child exit, where notify is set and the OS can
	reaped chan struct{}   // closed once cmd.Wait has returned; nil until startReap
}

// run starts the child with its channels and waits for its report.
func (h *handshake) run(ctx context.Context, env string) (string, error) {
	if notifySupported {
		var err error
		if h.notify, err = listenNotify(h.cmd.SysProcAttr); err != nil {
			return "", err
		}
		setEnv(h.cmd, notifySocketEnv, h.notify.addr)
	}
	r, err := startExported(h.cmd, env)
	if err != nil {
		return "", err
	}
	h.r = r
	if h.notify != nil {
		// Right after Start, before anyone can reap the child.
		h.exit, err = watchExit(h.cmd.Process.Pid)
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			h.r.Close()
			h.killAndReap()
			return "", fmt.Errorf("watching for its exit: %w (killed it: %s)", err, h.status())
		}
	}
	return h.wait(ctx)
}

// close releases the exit watch and the sd_notify socket, whose directory
// it removes.
func (h *handshake) close() error {
	if h.exit != nil {
		h.exit.close()
	}
	if h.notify != nil {
		return h.notify.close()
	}
	return nil
}

// wait is StartAndWait's event loop: the pipe's reader, the sd_notify
// socket, the child's exit and ctx each send news, and conclude deals with
// the child once one of them decides.
//
// The first report on either channel decides. A report on the pipe that has
// begun, or waits to be read, when a datagram decides or ctx ends, is the
// first: the daemon's Ready and Fail write the pipe before the socket. So
// then what the pipe holds is read, without waiting for more, and decides
// if it holds a report, whole or begun; so does what the socket holds, once
// the pipe or ctx has ended.
func (h *handshake) wait(ctx context.Context) (string, error) {
	p := h.readPipe()
	defer p.stop()
	pipe := p.report
	var decision <-chan notifyResult
	if h.notify != nil {
		decision = h.notify.decision
	}
	var reaped, exited <-chan struct{}
	for {
		select {
		case tok := <-p.token:
			if tok != tokenReady {
				reaped = h.startReap() // a reason ends when the child has exited
			}
		case <-reaped:
			reaped = nil
			p.d.drain()
		case rep := <-pipe:
			pipe = nil
			p.stop()
			if o := rep.outcome(); o.kind != childSilent || h.notify == nil {
				return h.conclude(ctx, o)
			}
			// Every holder of the write end has closed it or exited, but a
			// daemon may close its descriptors at start-up and report later.
			exited = h.exitedChan()
		case res := <-decision:
			return h.conclude(ctx, p.first(pipe, notifyOutcome(res)))
		case <-exited: // what the child sent before it exited is queued by now
			return h.conclude(ctx, h.notified(outcome{kind: childSilent, closed: true}))
		case <-ctx.Done():
			o := p.first(pipe, outcome{kind: childSilent, closed: true})
			if o.kind == childSilent && h.notify != nil {
				o = h.notified(o)
			}
			return h.conclude(ctx, o)
		}
	}
}

// first returns the pipe's report if the pipe holds one, whole or begun, and
// otherwise o. pipe is nil if the reader has ended.
func (p *pipeSide) first(pipe <-chan pipeReport, o outcome) outcome {
	if pipe == nil {
		return o
	}
	p.d.drain()
	if po := (<-pipe).outcome(); po.kind != childSilent || o.kind == childSilent {
		return po
	}
	return o
}

// notified returns what the datagrams queued in the socket decide, read
// without waiting for more, or else o.
func (h *handshake) notified(o outcome) outcome {
	h.notify.drain()
	select {
	case res := <-h.notify.decision:
		return notifyOutcome(res)
	default:
		return o
	}
}

// outcomeKind is what a child's report, or its silence, amounts to.
type outcomeKind int

const (
	childReady  outcomeKind = iota + 1
	childFailed             // reported failure
	childSilent             // no report
	childBroken             // the report could not be read
)

// outcome is what the child said, before StartAndWait deals with the child.
type outcome struct {
	kind   outcomeKind
	msg    string // the message, or the failure's reason
	cause  error  // what else a failure said; why a report could not be read
	closed bool   // silent: the pipe ended (the child closed its end)
}

// conclude deals with the child as o says and returns StartAndWait's result:
// a failed or silent child is waited for, and killed if ctx ends first.
func (h *handshake) conclude(ctx context.Context, o outcome) (string, error) {
	switch o.kind {
	case childReady:
		return o.msg, nil
	case childBroken:
		h.killAndReap()
		return "", fmt.Errorf("%w (killed the child: %s)", o.cause, h.status())
	case childFailed:
		err := fmt.Errorf("%w: %s", ErrChildFailed, reasonOrNone(o.msg))
		if o.cause != nil {
			err = fmt.Errorf("%w (%w)", err, o.cause)
		}
		if h.reap(ctx) {
			err = fmt.Errorf("%w; it lived on until the context ended, so it was killed (%s): %w", err, h.status(), ctx.Err())
		}
		return o.msg, err
	}
	if !h.reap(ctx) {
		return "", fmt.Errorf("%w: %s", ErrChildExited, h.status())
	}
	if o.closed {
		return "", fmt.Errorf("%w: it closed its end without a report and lived on until the context ended (%s): %w", ErrChildKilled, h.status(), ctx.Err())
	}
	return "", fmt.Errorf("%w: no report when the context ended (%s): %w", ErrChildKilled, h.status(), ctx.Err())
}

// notifyOutcome is what a datagram's decision says.
func notifyOutcome(res notifyResult) outcome {
	switch {
	case res.err != nil:
		return outcome{kind: childBroken, cause: res.err}
	case res.state.failed:
		return outcome{kind: childFailed, msg: cleanMessage(res.state.status), cause: res.state.errnoCause()}
	}
	return outcome{kind: childReady, msg: cleanMessage(res.state.status)}
}

// reasonOrNone is a failure's reason as the error says it.
func reasonOrNone(text string) string {
	if text == "" {
		return "no reason given"
	}
	return text
}

// exitedChan returns a channel that is closed once the child has exited, or
// at once where its exit cannot be watched: there the end of the pipe is
// taken for the child's exit, as it is without sd_notify.
func (h *handshake) exitedChan() <-chan struct{} {
	if h.exit != nil {
		return h.exit.exitedChan()
	}
	c := make(chan struct{})
	close(c)
	return c
}

// pipeSide reads the child's report from the pipe in a goroutine of its
// own, through d.
type pipeSide struct {
	r      *TokenPipeEnd
	d      *pipeReader
	report chan pipeReport // receives the report, once
	token  chan byte       // receives the report's token as soon as it is read
	done   chan struct{}   // closed when the reading goroutine has returned
}

// pipeReport is what readReport returned.
type pipeReport struct {
	kind  outcomeKind // childReady or childFailed, once the token has come
	token byte
	text  string
	err   error
}

// readPipe starts reading the report.
func (h *handshake) readPipe() *pipeSide {
	p := &pipeSide{
		r:      h.r,
		d:      newPipeReader(h.r),
		report: make(chan pipeReport, 1),
		token:  make(chan byte, 1),
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		p.report <- readReport(p.d, p.token)
	}()
	return p
}

// stop closes the read end, which ends a pending read (and, once a report is
// in, makes a child that still writes see a broken pipe rather than fill it
// for ever), and waits for the reading goroutine. It is idempotent.
func (p *pipeSide) stop() {
	p.r.Close()
	<-p.done
	p.d.drain() // releases its context
}

// outcome is what the pipe's report says: a ready or failure report, whole
// or begun, silence if the pipe ended (or was drained) before a token came.
func (rep pipeReport) outcome() outcome {
	switch {
	case rep.err == io.EOF:
		return outcome{kind: childSilent, closed: true}
	case rep.err == errDrained:
		return outcome{kind: childSilent}
	case rep.err != nil:
		return outcome{kind: childBroken, cause: fmt.Errorf("reading the report: %w", rep.err)}
	case rep.kind == childFailed && rep.token != tokenFailed:
		return outcome{kind: childFailed, msg: rep.text, cause: fmt.Errorf("unknown token %d", rep.token)}
	}
	return outcome{kind: rep.kind, msg: rep.text}
}

// readReport reads one report through d. Text is read up to '\n' (ready
// only), end of stream or maxMessage bytes, whichever comes first; a ready
// message of exactly maxMessage bytes still has its '\n' read, so that the
// daemon writing it never finds the pipe closed. Once d drains, what the
// pipe holds ends the report as end of stream would. err is io.EOF or
// errDrained only if no token came; after the token, an error comes with the
// text read so far.
//
// The token is sent on tokenRead (buffered) as soon as it is read.
func readReport(d *pipeReader, tokenRead chan<- byte) pipeReport {
	token, err := d.read()
	if err != nil {
		return pipeReport{err: err}
	}
	tokenRead <- token
	rep := pipeReport{kind: childFailed, token: token}
	if token == tokenReady {
		rep.kind = childReady
	}
	buf := make([]byte, 0, 64)
	for {
		b, err := d.read()
		if err == io.EOF || err == errDrained || (b == '\n' && rep.kind == childReady && err == nil) {
			break
		}
		if err != nil {
			rep.err = err
			break
		}
		if len(buf) == maxMessage {
			buf = trimPartialRune(buf) // b is past the limit: cut by it, not by the sender
			break
		}
		buf = append(buf, b)
	}
	rep.text = cleanMessage(string(buf))
	return rep
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

// reap waits for the child to exit, killing it if ctx ends (or has ended)
// first, and reports whether the kill is what ended it: a child that died
// by itself, also as ctx ended, "exited" (TestStartAndWaitExitAsContextEnds,
// TestStartAndWaitDiedBeforeContextEnded). Where its exit is watched, a
// child that has exited is not killed; and as kill(2) succeeds on a child
// that has exited but is not yet reaped, its status must show the kill.
func (h *handshake) reap(ctx context.Context) (killed bool) {
	reaped := h.startReap()
	select {
	case <-reaped:
		return false
	case <-ctx.Done():
	}
	if h.exit != nil && h.exit.hasExited() {
		<-reaped
		return false
	}
	killed = h.cmd.Process.Kill() == nil // fails once cmd.Wait has returned
	<-reaped
	return killed && diedOfKill(h.cmd.ProcessState)
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

package tokenpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
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
// When no end was exported under env (the daemon was run by hand) it fails
// with an error matching ErrNotExported, and so does every call after the
// first, Ready or Fail, from any goroutine: only one report ever goes out.
// A bad value of env gives FromEnv's error (os.ErrInvalid). If the parent has
// gone away the write fails with an error matching io.ErrClosedPipe. In every
// case the end is closed when Ready returns. It blocks only while the parent
// is slow to read a long message.
func Ready(env, msg string) error {
	return report("Ready", env, tokenReady, msg)
}

// Fail tells the parent that started this process with StartAndWait that it
// failed to start, and why: it takes the end exported under env with FromEnv,
// writes token 0 and reason's text, and closes the end. The text has no
// newline (newlines become spaces), so a supervisor that waits for one never
// takes a failure for readiness; invalid UTF-8 becomes U+FFFD, and it is cut
// at 4 KiB, on a UTF-8 boundary. A nil reason, like an empty text, sends no
// text: the parent's error then says "no reason given".
//
// Errors and blocking are as for Ready; only the first report goes out.
func Fail(env string, reason error) error {
	text := ""
	if reason != nil {
		text = reason.Error()
	}
	return report("Fail", env, tokenFailed, text)
}

// report takes the end exported under env and writes one report to it.
func report(op, env string, token byte, text string) error {
	e, err := FromEnv(env)
	if err != nil {
		return &opError{op, err}
	}
	text = cleanMessage(text)
	werr := e.TokenWrite(token)
	for i := 0; werr == nil && i < len(text); i++ {
		werr = e.TokenWrite(text[i])
	}
	if werr == nil && token == tokenReady {
		werr = e.TokenWrite('\n')
	}
	if cerr := e.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return &opError{op, werr}
	}
	return nil
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
//     pipe, and the child's further writes fail), waits for the child to exit,
//     and returns the reason as msg and an error matching ErrChildFailed whose
//     text has the reason, or "no reason given".
//   - End of stream first: StartAndWait waits for the child to exit and
//     returns an error matching ErrChildExited whose text has the child's
//     exit status ("exit status 3", "signal: killed"). With a child that
//     double-forks, the grandchild that holds the end reports, or exits, in
//     its place; the status is still the child's.
//   - ctx ends before a whole report has arrived: StartAndWait kills the child,
//     waits for it, and returns an error matching ctx.Err(). If ctx has ended
//     already, cmd is not started and is left as it was (like a Cmd never
//     started, it keeps pipes made by StdinPipe and the like open).
//   - cmd fails to start: that error, wrapped.
//
// Waiting for the exit after a failure report or end of stream is also
// bounded by ctx: a child that closes its end and lives on is killed when ctx
// ends, and the error then matches ctx.Err() as well. StartAndWait kills only
// the child it started, never a grandchild.
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
	if err := checkEnvName(op, env); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("tokenpipe: %s: %s: not started: %w", op, cmd.Path, err)
	}
	r, err := startExported(cmd, env)
	if err != nil {
		return "", &opError{op, err}
	}
	h := &handshake{cmd: cmd, r: r}
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
	cmd *exec.Cmd
	r   *TokenPipeEnd // the read end; closed when wait returns
}

// wait is StartAndWait's event loop. Each source of news (for now only the
// pipe) runs in a goroutine of its own that sends one result; wait selects on
// those and ctx, and stops and joins every goroutine before it returns.
func (h *handshake) wait(ctx context.Context) (string, error) {
	pipe := make(chan pipeReport, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var rep pipeReport
		rep.kind, rep.token, rep.text, rep.err = readReport(h.r)
		pipe <- rep
	}()
	// Closing the read end ends a pending read; and once a report is in, a
	// child still writing sees a broken pipe instead of filling it forever.
	stopReader := func() {
		h.r.Close()
		<-readerDone
	}

	var rep pipeReport
	select {
	case rep = <-pipe:
		stopReader()
	case <-ctx.Done():
		stopReader()
		// A report that was whole before the read end closed still counts:
		// killing a daemon that said it was ready would help nobody.
		if rep = <-pipe; rep.err != nil && rep.err != io.EOF {
			h.killAndReap()
			return "", fmt.Errorf("no report when the context ended (%s): %w", h.status(), ctx.Err())
		}
	}
	return h.conclude(ctx, rep)
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
	reason := rep.text
	if reason == "" {
		reason = "no reason given"
	}
	if rep.token != tokenFailed {
		reason = fmt.Sprintf("unknown token %d: %s", rep.token, reason)
	}
	if err := h.reap(ctx); err != nil {
		return rep.text, fmt.Errorf("%w: %s (it lived on until the context ended: %s): %w", ErrChildFailed, reason, h.status(), err)
	}
	return rep.text, fmt.Errorf("%w: %s", ErrChildFailed, reason)
}

// readReport reads one report from r: its kind, token and text. Text is read
// up to '\n' (ready only), end of stream or maxMessage bytes, whichever comes
// first. err is io.EOF only if the stream ended before any token.
func readReport(r *TokenPipeEnd) (kind reportKind, token byte, text string, err error) {
	token, err = r.TokenRead()
	if err != nil {
		return 0, 0, "", err
	}
	kind = reportFailed
	if token == tokenReady {
		kind = reportReady
	}
	buf := make([]byte, 0, 64)
	full := false
	for {
		if len(buf) == maxMessage {
			full = true
			break
		}
		b, err := r.TokenRead()
		if err == io.EOF || (b == '\n' && kind == reportReady && err == nil) {
			break
		}
		if err != nil {
			return kind, token, "", err
		}
		buf = append(buf, b)
	}
	if full {
		buf = trimPartialRune(buf) // cut by the limit, not by the sender
	}
	return kind, token, cleanMessage(string(buf)), nil
}

// reap waits for the child to exit, killing it if ctx ends first, in which
// case it returns ctx.Err().
func (h *handshake) reap(ctx context.Context) error {
	if h.cmd.WaitDelay == 0 {
		h.cmd.WaitDelay = reapDelay
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		h.cmd.Wait() // the status is in cmd.ProcessState
	}()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		h.cmd.Process.Kill()
		<-exited
		return ctx.Err()
	}
}

// killAndReap kills the child and waits for it.
func (h *handshake) killAndReap() {
	if h.cmd.WaitDelay == 0 {
		h.cmd.WaitDelay = reapDelay
	}
	h.cmd.Process.Kill() // fails only if it has exited, which is as good
	h.cmd.Wait()
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

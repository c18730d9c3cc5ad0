// Package tokenpipe is a pipe that carries one-byte tokens, for the start-up
// handshake between a parent process and a child it starts: the parent learns,
// quickly and reliably, whether the child came up.
//
// It is a Go port of Bitcoin Core's TokenPipe (src/util/tokenpipe.h), which
// bitcoind -daemonwait uses to wait for its daemonized child. Unlike the
// original it runs on Unix and Windows, reads can time out or be cancelled, and
// end of stream is an error (io.EOF), never a token: a child that dies before
// it says anything cannot be mistaken for one that succeeded.
//
// The parent makes a pipe, hands the write end to the child with ExportTo,
// starts it, closes its own copy and waits:
//
//	p, err := tokenpipe.Make()
//	...
//	r, w := p.TakeReadEnd(), p.TakeWriteEnd()
//	defer r.Close()
//	cmd := exec.Command(daemon)
//	err = w.ExportTo(cmd, "READY_FD")
//	err = cmd.Start()
//	w.Close() // now only the child holds a write end
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	switch tok, err := r.TokenReadContext(ctx); {
//	case err == io.EOF: // the child exited without a word
//	case err != nil: // timed out, or the pipe failed
//	case tok == 1: // ready
//	default: // the child reported failure
//	}
//
// The child takes its end over and reports:
//
//	w, err := tokenpipe.FromEnv("READY_FD")
//	...
//	w.TokenWrite(1) // or 0 if start-up failed
//	w.Close()
//
// Every method is safe for concurrent use. Ends are close-on-exec (Unix) or not
// inheritable (Windows), so they reach only the children they are exported to.
package tokenpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrExported is returned by operations on an end that ExportTo has handed to
// a child process. Such an end is only good for Close, which the parent should
// call once the child has started.
var ErrExported = errors.New("end was exported to a child process")

// ErrNotExported is returned by FromEnv when the environment variable is not
// set: the process was not started with an end exported to it.
var ErrNotExported = errors.New("no token pipe end was exported to this process")

// TokenPipe is a freshly made pipe whose two ends have not all been taken yet.
// The zero value has no ends: both Take methods return closed ends.
type TokenPipe struct {
	read, write atomic.Pointer[endFile]
}

// TokenPipeEnd is one end of a token pipe. The zero value and a nil
// *TokenPipeEnd are closed ends: every method on them fails with an error
// matching os.ErrClosed, except IsOpen, Close, which does nothing, and
// AssignFrom, which can move an end into a zero TokenPipeEnd.
//
// An end that is dropped without Close is closed when the garbage collector
// finds it unreachable, as an *os.File is; do not rely on that. An exported
// end is needed by its exec.Cmd until Start, so it is not closed under it:
// on Unix it is closed once the Cmd is dropped too, on Windows only by
// Close.
type TokenPipeEnd struct {
	f atomic.Pointer[endFile]
}

// Make creates a pipe. Both ends are open, close-on-exec on Unix and not
// inheritable on Windows. On platforms other than Unix and Windows it returns an
// error matching errors.ErrUnsupported.
func Make() (*TokenPipe, error) {
	owned.Lock()
	r, w, err := makePipe()
	if err == nil {
		owned.add(r.handle())
		owned.add(w.handle())
	}
	owned.Unlock()
	if err != nil {
		return nil, fmt.Errorf("tokenpipe: Make: %w", err)
	}
	// Each end is an allocation of its own: were both inside the TokenPipe,
	// a taken end would keep the other alive, and the collector could not
	// close an end that was dropped.
	p := new(TokenPipe)
	p.read.Store(&endFile{sys: r})
	p.write.Store(&endFile{sys: w})
	return p, nil
}

// TakeReadEnd hands over the read end. It never returns nil: a second call, a
// call after Close, or a call on a nil *TokenPipe returns a closed end.
func (p *TokenPipe) TakeReadEnd() *TokenPipeEnd { return p.take(true) }

// TakeWriteEnd hands over the write end. It never returns nil: a second call,
// a call after Close, or a call on a nil *TokenPipe returns a closed end.
func (p *TokenPipe) TakeWriteEnd() *TokenPipeEnd { return p.take(false) }

func (p *TokenPipe) take(read bool) *TokenPipeEnd {
	e := new(TokenPipeEnd)
	switch {
	case p == nil:
	case read:
		e.f.Store(p.read.Swap(nil))
	default:
		e.f.Store(p.write.Swap(nil))
	}
	return e
}

// Close closes the ends that have not been taken; taken ends belong to whoever
// took them and stay open. It is idempotent and returns the errors from
// closing the ends, joined.
func (p *TokenPipe) Close() error {
	if p == nil {
		return nil
	}
	return errors.Join(closeEnd(p.read.Swap(nil)), closeEnd(p.write.Swap(nil)))
}

// closeEnd closes f unless it is nil.
func closeEnd(f *endFile) error {
	if f == nil {
		return nil
	}
	return wrapErr("Close", f.sys.close())
}

// TokenWrite writes one token. It blocks only while the pipe is full, which
// takes thousands of unread tokens. It fails with an error matching
// io.ErrClosedPipe when every read end is closed (the process is never killed
// by SIGPIPE), and with one matching os.ErrClosed when e is closed, also by a
// concurrent Close.
func (e *TokenPipeEnd) TokenWrite(token byte) error {
	const op = "TokenWrite"
	f, err := e.use(op)
	if err != nil {
		return err
	}
	if err := f.sys.write(tokenBytes[token:int(token)+1], &f.writeScratch); err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// TokenRead blocks until a token arrives and returns it. Once every write end
// is closed and every token written before that has been read, it returns
// (0, io.EOF), never a token. A concurrent Close makes it return promptly with
// an error matching os.ErrClosed.
func (e *TokenPipeEnd) TokenRead() (byte, error) {
	const op = "TokenRead"
	f, err := e.use(op)
	if err != nil {
		return 0, err
	}
	return f.readToken(op, nil)
}

// TokenReadContext is TokenRead with cancellation: when ctx ends before a
// token arrives it returns ctx.Err() promptly. No token is lost by that: a
// token that arrives later is returned by the next read, and e stays usable.
// If ctx has already ended it returns ctx.Err() without reading.
//
// With a context that can never end (context.Background()) it costs no
// allocation, like TokenRead; with one that can, each call allocates the
// few small objects that watching ctx takes (context.AfterFunc).
func (e *TokenPipeEnd) TokenReadContext(ctx context.Context) (byte, error) {
	const op = "TokenReadContext"
	if ctx == nil {
		return 0, fmt.Errorf("tokenpipe: %s: nil context: %w", op, os.ErrInvalid)
	}
	f, err := e.use(op)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// The context is honoured by interrupting every read on the end (a read
	// deadline in the past on Unix, CancelIoEx on Windows) until the reader
	// whose context ended has returned. Readers whose context has not ended
	// see errInterrupted, wait for that, and read again: they lose nothing.
	if ctx.Done() != nil {
		interrupted := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			f.interrupt()
			close(interrupted)
		})
		defer func() {
			if !stop() {
				<-interrupted
				f.resume()
			}
		}()
	}
	return f.readToken(op, ctx)
}

// Close closes e and unblocks its pending reads and writes, which return
// errors matching os.ErrClosed. Closing a closed, zero or nil end does nothing
// and returns nil.
func (e *TokenPipeEnd) Close() error {
	if e == nil {
		return nil
	}
	return closeEnd(e.f.Swap(nil))
}

// IsOpen reports whether e holds an open end (an exported end is still open
// until it is closed).
func (e *TokenPipeEnd) IsOpen() bool {
	return e != nil && e.f.Load() != nil
}

// AssignFrom moves other into e, like C++ move assignment: it closes what e
// held, takes other's end and leaves other closed. e.AssignFrom(e) does
// nothing, and a closed or nil other leaves e closed. On a nil receiver it
// fails with an error matching os.ErrClosed and leaves other as it was.
func (e *TokenPipeEnd) AssignFrom(other *TokenPipeEnd) error {
	if e == nil {
		return closedError("AssignFrom")
	}
	if e == other {
		return nil
	}
	var f *endFile
	if other != nil {
		f = other.f.Swap(nil)
	}
	if old := e.f.Swap(f); old != nil {
		return wrapErr("AssignFrom: closing the previous end", old.sys.close())
	}
	return nil
}

// ExportTo arranges for the child that cmd starts to inherit e, and records in
// cmd's environment, under the variable env, the value the child passes to
// FromEnv. cmd.Env == nil means the parent's environment, which is kept; an
// existing value of env is replaced.
//
// The pattern is: ExportTo, cmd.Start, then e.Close in the parent whether or
// not Start succeeded, so that the child's exit is seen as io.EOF at the other
// end. From ExportTo on, e belongs to the child: every operation on it but
// Close fails with ErrExported, and reads and writes that were under way on
// e when ExportTo was called return ErrExported before it hands e over, so no
// token meant for the child is read in the parent. ExportTo blocks only until
// they have returned.
//
// ExportTo fails, leaving e as it was, when env is empty or contains '=' or
// NUL, cmd is nil or already started, or could not inherit e (Windows:
// SysProcAttr.NoInheritHandles), all matching os.ErrInvalid, or when e is
// closed (os.ErrClosed) or already exported (ErrExported). On Unix it appends
// to cmd.ExtraFiles, on Windows to cmd.SysProcAttr.AdditionalInheritedHandles;
// do not reorder those afterwards.
func (e *TokenPipeEnd) ExportTo(cmd *exec.Cmd, env string) error {
	const op = "ExportTo"
	if err := checkEnvName(op, env); err != nil {
		return err
	}
	if cmd == nil {
		return fmt.Errorf("tokenpipe: %s: nil *exec.Cmd: %w", op, os.ErrInvalid)
	}
	if cmd.Process != nil {
		return fmt.Errorf("tokenpipe: %s: %s: command already started: %w", op, cmd.Path, os.ErrInvalid)
	}
	f, err := e.use(op)
	if err != nil {
		return err
	}
	value, err := f.sys.export(cmd)
	if err != nil {
		return wrapErr(op, err)
	}
	setEnv(cmd, env, value)
	return nil
}

// setEnv sets key to value in cmd's environment, replacing any value it has
// (cmd.Env == nil means the parent's environment; names ignore case on
// Windows).
func setEnv(cmd *exec.Cmd, key, value string) {
	env0 := cmd.Env
	if env0 == nil {
		env0 = cmd.Environ()
	}
	env := make([]string, 0, len(env0)+1)
	for _, kv := range env0 {
		if k, _, _ := strings.Cut(kv, "="); !envKeyEqual(k, key) {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, key+"="+value)
}

// fromEnvMu makes concurrent FromEnv calls for one variable take the end once.
var fromEnvMu sync.Mutex

// FromEnv takes over the end that the parent exported under the environment
// variable env with ExportTo. It checks that the value names an open pipe,
// makes it close-on-exec (Unix) or not inheritable (Windows) so that the
// process's own children do not hold it, and removes env from the
// environment. The end has the full contract of one from Make. On Linux the
// end gets an open file description of its own where /proc allows (see the
// README's platform notes), so that the flags of the parent's copy stay as
// they were.
//
// When env is not set it fails with ErrNotExported. A value that is not a
// canonical decimal number, or does not name an open pipe this process can
// read or write, gives an error naming env and the value that matches
// os.ErrInvalid, and the descriptor it names is left as it was. Standard
// input, output and error are always refused, and so is a descriptor (or
// handle) that an end of this process already holds: two ends closing one
// number would close, the second time, whatever reused it. A number alone
// cannot prove that it was inherited rather than opened by other code of
// this process; FromEnv trusts the variable in that respect.
func FromEnv(env string) (*TokenPipeEnd, error) {
	const op = "FromEnv"
	if err := checkEnvName(op, env); err != nil {
		return nil, err
	}
	fromEnvMu.Lock()
	defer fromEnvMu.Unlock()
	value, ok := os.LookupEnv(env)
	if !ok {
		return nil, fmt.Errorf("tokenpipe: %s: %s is not set: %w", op, env, ErrNotExported)
	}
	s, err := importOwned(value)
	if err != nil {
		return nil, fmt.Errorf("tokenpipe: %s: %s=%q: %w", op, env, value, err)
	}
	os.Unsetenv(env)
	e := new(TokenPipeEnd)
	e.f.Store(&endFile{sys: s})
	return e, nil
}

// importOwned parses value and takes over the end it names, unless an end of
// this process holds it already.
func importOwned(value string) (*sysFile, error) {
	n, err := parseEndValue(value)
	if err != nil {
		return nil, err
	}
	owned.Lock()
	defer owned.Unlock()
	if owned.n[uintptr(n)] > 0 {
		return nil, fmt.Errorf("%d is held by another end of this process, not inherited: %w", n, os.ErrInvalid)
	}
	s, err := importEnd(n)
	if err == nil {
		owned.add(s.handle())
	}
	return s, err
}

// owned counts, for each descriptor (Unix) or handle (Windows), the open ends
// of this process that hold it, so that FromEnv refuses those. A count, not a
// set: an end's number is released only after the close, by which time Make
// may have been handed the same number again.
var owned = ownedHandles{n: make(map[uintptr]int)}

type ownedHandles struct {
	sync.Mutex
	n map[uintptr]int
}

// add records h as held by one more end; owned must be locked.
func (o *ownedHandles) add(h uintptr) { o.n[h]++ }

// disown records that an end has closed h.
func disown(h uintptr) {
	owned.Lock()
	defer owned.Unlock()
	if owned.n[h]--; owned.n[h] <= 0 {
		delete(owned.n, h)
	}
}

// parseEndValue parses what ExportTo wrote: a decimal number without sign,
// spaces or leading zeros, so that exactly one spelling names each descriptor.
func parseEndValue(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty value: %w", os.ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number: %w", os.ErrInvalid)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("leading zero: %w", os.ErrInvalid)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxEndValue {
		return 0, fmt.Errorf("out of range (largest is %d): %w", uint64(maxEndValue), os.ErrInvalid)
	}
	return n, nil
}

func checkEnvName(op, env string) error {
	if env == "" || strings.ContainsAny(env, "=\x00") {
		return fmt.Errorf("tokenpipe: %s: bad environment variable name %q: %w", op, env, os.ErrInvalid)
	}
	return nil
}

// use returns the open end behind e, or the error for op on a closed or
// exported end.
func (e *TokenPipeEnd) use(op string) (*endFile, error) {
	var f *endFile
	if e != nil {
		f = e.f.Load()
	}
	if f == nil {
		return nil, closedError(op)
	}
	return f, nil
}

// endFile is an open end. Ownership moves between TokenPipeEnds by swapping
// the pointer, so exactly one TokenPipeEnd closes it.
type endFile struct {
	sys *sysFile

	mu         sync.Mutex
	interrupts int           // readers whose context ended and that have not returned yet
	resumed    chan struct{} // closed when interrupts drops to 0; nil while it is 0

	// Buffers for the common case of one reader and one writer at a time,
	// for the calls that need one, so that a token costs no allocation: a
	// buffer that the Unix poller's callback or Windows's ReadFile and
	// WriteFile reach escapes to the heap (a plain read(2) or write(2) on
	// Unix needs none: its byte stays on the stack, but for the race
	// detector).
	readScratch, writeScratch scratch
}

// readToken reads a token for op, until ctx ends if ctx is not nil.
func (f *endFile) readToken(op string, ctx context.Context) (byte, error) {
	for {
		tok, err := f.sys.read(&f.readScratch)
		switch {
		case err == nil:
			return tok, nil
		case err != errInterrupted:
			return 0, wrapErr(op, err)
		case ctx != nil && ctx.Err() != nil:
			return 0, ctx.Err()
		}
		interruptedReads.Add(1)
		// Another reader's context ended: wait, without spinning, until it
		// has returned and reads are no longer interrupted. That takes no
		// longer than the interrupted reader takes to return.
		f.mu.Lock()
		resumed := f.resumed
		f.mu.Unlock()
		if resumed == nil {
			continue
		}
		var done <-chan struct{}
		if ctx != nil {
			done = ctx.Done()
		}
		select {
		case <-resumed:
		case <-done:
			return 0, ctx.Err()
		}
	}
}

// tokenBytes holds every token, for write to take a one-byte slice of: no
// buffer to claim, nothing to allocate.
var tokenBytes = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	return t
}()

// writeAll writes p whole, in as few system calls as the pipe allows, for
// op; the handshake's report, so that it is in the pipe at once.
func (e *TokenPipeEnd) writeAll(op string, p []byte) error {
	f, err := e.use(op)
	if err != nil {
		return err
	}
	return wrapErr(op, f.sys.write(p, &f.writeScratch))
}

// pending reports whether a read from e would return at once, with a token
// or end of stream, without taking anything from the pipe.
func (e *TokenPipeEnd) pending() bool {
	f, err := e.use("pending")
	return err == nil && f.sys.pending()
}

// interruptedReads counts the reads that were interrupted for another
// reader's context, for the tests to see that readers wait rather than spin.
var interruptedReads atomic.Int64

func (f *endFile) interrupt() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.interrupts++; f.interrupts == 1 {
		f.resumed = make(chan struct{})
		f.sys.setInterrupted(true)
	}
}

func (f *endFile) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.interrupts--; f.interrupts == 0 {
		f.sys.setInterrupted(false)
		close(f.resumed)
		f.resumed = nil
	}
}

// errInterrupted is what sysFile.read returns when setInterrupted(true) is in
// force; it never leaves the package.
var errInterrupted = errors.New("tokenpipe: read interrupted")

func closedError(op string) error {
	return fmt.Errorf("tokenpipe: %s: end is closed: %w", op, os.ErrClosed)
}

func exportedError(op string) error {
	return fmt.Errorf("tokenpipe: %s: %w by ExportTo; close it once the child has started", op, ErrExported)
}

// wrapErr turns what a sysFile returned into the error the API promises.
func wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err // first, as errors.As below allocates
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is a made-up name that says nothing
	}
	switch {
	case errors.Is(err, os.ErrClosed):
		return closedError(op)
	case err == ErrExported:
		return exportedError(op)
	case isBrokenPipe(err):
		return fmt.Errorf("tokenpipe: %s: every read end is closed: %w (%w)", op, io.ErrClosedPipe, err)
	}
	return fmt.Errorf("tokenpipe: %s: %w", op, err)
}

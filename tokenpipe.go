package tokenpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

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

// The per-OS pipe end, sysFile (tokenpipe_unix.go, tokenpipe_windows.go,
// tokenpipe_other.go), has:
//
//   - makePipe(), which creates a pipe whose ends are close-on-exec (Unix)
//     or not inheritable (Windows); handle(), the descriptor or handle
//     value, as FromEnv would name it.
//   - read(rs), which reads one token, through the scratch rs or one of its
//     own while another call is under way on the end. It returns io.EOF at
//     end of stream, errInterrupted while setInterrupted(true) is in force,
//     an error matching os.ErrClosed once close has begun, and ErrExported
//     once export has.
//   - write(p, ws), which writes all of p, through ws or a scratch of its
//     own where the system call needs one, in one system call where the
//     pipe has room; a broken pipe gives an error for which isBrokenPipe
//     holds.
//   - pending(), which reports whether a read would return at once, with a
//     token or end of stream, without taking anything from the pipe;
//     setInterrupted(on), which makes pending and later reads return
//     errInterrupted while on is true; close(), which closes the end,
//     ending the reads and writes under way first.
//
// export and importEnd, for the hand-off, are in handoff_*.go.

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

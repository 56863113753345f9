//! [`BatchWriter`]: log lines appended to a shared buffer that a background
//! thread writes out in batches, so that a request pays a copy, not a
//! system call or a thread wake-up.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather after a write, while lines
/// keep coming. It is also the longest a line waits in a busy service.
const GATHER: Duration = Duration::from_millis(5);

/// A buffer this large is written at once, without waiting for [`GATHER`].
const HIGH_WATER: usize = 256 * 1024;

/// Beyond this, lines are dropped (and counted) rather than let memory grow
/// without bound behind a stuck output.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

/// How long dropping the guard waits for the writer thread's last batch
/// to make progress. An output that takes nothing (a pipe no one reads)
/// must not keep the process from exiting: once it has taken nothing for
/// this long, the thread is left behind, and the lines with it.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A [`MakeWriter`] whose writers append whole lines to a shared buffer; a
/// thread of its own writes the buffer to the output.
///
/// ```
/// use std::io::Write as _;
/// use tracing_subscriber::fmt::MakeWriter as _;
/// use opsready_telemetry::BatchWriter;
///
/// let path = std::env::temp_dir().join(format!("batch-writer-doc-{}.log", std::process::id()));
/// let (writer, guard) = BatchWriter::new(std::fs::File::create(&path).unwrap());
/// writer.make_writer().write_all(b"{\"msg\":\"one\"}\n").unwrap();
/// drop(guard); // writes what is buffered, and stops the thread
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"msg\":\"one\"}\n");
/// # std::fs::remove_file(&path).unwrap();
/// ```
///
/// # Gotchas
///
/// - A line is written within a few milliseconds, not at once: after each
///   write the thread waits 5 ms for more. An idle service's first
///   line wakes it straight away.
/// - Keep the [`BatchGuard`] until the end: dropping it writes what is
///   buffered. Lines written after that (a blocking job outliving the
///   runtime, a late panic) are written at once, by the thread that logs
///   them. Lines buffered when the process aborts are lost.
/// - Dropping the guard gives up when the output has taken nothing for
///   2 s (a pipe no one reads), so that the process can still exit; the
///   lines still buffered then, and any later ones, are lost.
/// - Each `write` call must hold whole lines (the JSON layer writes one line
///   per call), or lines from different threads interleave.
#[derive(Clone, Debug)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is buffered and stops the writer thread when dropped.
#[derive(Debug)]
pub struct BatchGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Told each time the writer thread has written a batch, or the
    /// threads that log have taken over: [`Shared::write_buffered_now`]
    /// waits on it.
    flushed: Condvar,
    /// The writer thread, which must not wait for itself.
    writer_thread: std::sync::OnceLock<std::thread::ThreadId>,
    /// Taken by the writer thread for each batch, and by the threads that
    /// log once it has stopped. Always after `state` when both are held.
    output: Mutex<Box<dyn Write + Send>>,
    /// Bytes written so far: how the guard tells a slow output from one
    /// that takes nothing.
    written: AtomicU64,
    /// Lines an output that was given up on did not take (some in part),
    /// for the next "lines dropped" warning. Apart from `State::dropped`:
    /// counted while the output is held, where `state` cannot be taken.
    lost: AtomicU64,
    /// The last write was given up on in the middle of a line: the next
    /// write ends that line first, rather than glue the next one to it.
    mid_line: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
    /// The thread waits for a line, with nothing buffered: the next line
    /// must wake it.
    idle: bool,
    stop: bool,
    /// No writer thread (stopped, or it could not start): each line is
    /// written by the thread that logs it.
    direct: bool,
    /// Lines dropped because the output did not keep up.
    dropped: u64,
    /// Batches the writer thread has taken, and those it has written out
    /// (or given up on): what [`Shared::write_buffered_now`] waits for.
    taken: u64,
    done: u64,
    /// A thread waits for what is buffered: the writer thread takes it
    /// without letting more gather first.
    hurry: bool,
}

impl Shared {
    fn new(output: Box<dyn Write + Send>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            flushed: Condvar::new(),
            writer_thread: std::sync::OnceLock::new(),
            output: Mutex::new(output),
            written: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            mid_line: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer never panics while holding the lock; if one did, the
        // buffer is still bytes and worth writing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `bytes` to the output and flushes it. An output that fails
    /// cannot be reported through itself; the bytes are dropped rather than
    /// retried forever.
    fn write_out(&self, bytes: &[u8]) {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_to(&mut **output, bytes);
    }

    /// [`Shared::write_out`] to an output already locked. A standard
    /// output another process made non-blocking takes part of a write, or
    /// nothing (`WouldBlock`), when its pipe is full: the rest is written
    /// when it drains rather than dropped, which would cut a line and glue
    /// its start to the next one. One that takes nothing for
    /// [`STOP_WAIT`] (its reader has stopped) is given up on: the rest of
    /// `bytes` is dropped, as a failing output's is, rather than every
    /// thread that logs waiting on it for ever.
    fn write_to(&self, output: &mut dyn Write, bytes: &[u8]) {
        if self.mid_line.load(Ordering::Relaxed) {
            if self.write_some(output, b"\n") == 0 {
                self.lose(bytes);
                return;
            }
            self.mid_line.store(false, Ordering::Relaxed);
        }
        let written = self.write_some(output, bytes);
        if written < bytes.len() {
            if written > 0 && bytes[written - 1] != b'\n' {
                self.mid_line.store(true, Ordering::Relaxed);
            }
            self.lose(&bytes[written..]);
            return;
        }
        let give_up = Instant::now() + STOP_WAIT;
        loop {
            match output.flush() {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if !wait_until(give_up) {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Writes `bytes` to `output`, in pieces, each counted; returns how
    /// many it wrote: all of them, or fewer when the output failed or took
    /// nothing for [`STOP_WAIT`].
    fn write_some(&self, output: &mut dyn Write, bytes: &[u8]) -> usize {
        let mut give_up = Instant::now() + STOP_WAIT;
        let mut done = 0;
        while done < bytes.len() {
            // In pieces, so that a slow output shows progress.
            let piece = &bytes[done..bytes.len().min(done + 64 * 1024)];
            match output.write(piece) {
                Ok(0) => break,
                Ok(taken) => {
                    done += taken;
                    self.written.fetch_add(taken as u64, Ordering::Relaxed);
                    give_up = Instant::now() + STOP_WAIT;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if !wait_until(give_up) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        done
    }

    /// Counts the lines of `rest`, which an output did not take, as lost
    /// (a line it took in part is one of them).
    fn lose(&self, rest: &[u8]) {
        let lines = rest.iter().filter(|&&b| b == b'\n').count().max(1);
        self.lost.fetch_add(lines as u64, Ordering::Relaxed);
    }

    /// Has the writer thread write what is buffered now, at once, and
    /// waits until it has: for a panic that may end the process next, or a
    /// call to `std::process::exit`. Lines logged meanwhile are buffered
    /// as usual: the thread that waits holds no lock. Gives up when the
    /// output takes nothing for [`STOP_WAIT`].
    fn write_buffered_now(&self) {
        if self.writer_thread.get() == Some(&std::thread::current().id()) {
            // The writer thread itself (a panic in its output's `write`):
            // it holds the output and cannot wait for its own next batch.
            return;
        }
        let mut state = self.lock();
        if state.direct {
            // No writer thread (any more): lines left from before it died
            // are written here, in order with every later one.
            let rest = std::mem::take(&mut state.buffer);
            if !rest.is_empty() {
                self.write_out(&rest);
            }
            return;
        }
        // The batch being written, and the one that takes the lines
        // buffered now.
        let target = state.taken + u64::from(!state.buffer.is_empty());
        if state.done >= target {
            return;
        }
        state.hurry = true;
        self.wake.notify_one();
        let mut give_up = Instant::now() + STOP_WAIT;
        let mut written = self.written.load(Ordering::Relaxed);
        while state.done < target && !state.direct {
            state = self
                .flushed
                .wait_timeout(state, Duration::from_millis(10))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            let now = self.written.load(Ordering::Relaxed);
            if now != written {
                written = now;
                give_up = Instant::now() + STOP_WAIT;
            } else if Instant::now() >= give_up {
                // Stuck in a write that never returns: the lines stay
                // buffered.
                return;
            }
        }
        // The writer thread died meanwhile: what it left is written here.
        if state.direct && !state.buffer.is_empty() {
            let rest = std::mem::take(&mut state.buffer);
            self.write_out(&rest);
        }
    }
}

impl BatchWriter {
    /// Starts the thread that writes to `output`.
    pub fn new<W: Write + Send + 'static>(output: W) -> (Self, BatchGuard) {
        let shared = Arc::new(Shared::new(Box::new(output)));
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("opsready-log-writer".to_owned())
                .spawn(move || run(&shared))
                .ok()
        };
        // Without a thread, lines are written as they come rather than
        // buffered for no one.
        shared.lock().direct = thread.is_none();
        let writer = Self {
            shared: Arc::clone(&shared),
        };
        (writer, BatchGuard { shared, thread })
    }
}

impl BatchWriter {
    /// Writes the lines buffered so far at once, in order with the others,
    /// and returns when they are written: before `std::process::exit` or
    /// an abort, which run no destructors and would lose them. The writer
    /// thread writes them, so threads that log meanwhile do not wait for a
    /// slow output. Waits while the output takes bytes; gives up after 2 s
    /// in which it took none.
    pub fn write_buffered(&self) {
        self.shared.write_buffered_now();
    }
}

/// Waits a moment for a full non-blocking output; false once `give_up`
/// has passed.
fn wait_until(give_up: Instant) -> bool {
    std::thread::sleep(Duration::from_millis(1));
    Instant::now() < give_up
}

/// The writer of the subscriber [`init`](crate::init) installed.
static PROCESS: std::sync::OnceLock<BatchWriter> = std::sync::OnceLock::new();

/// Makes `writer` the process's (the first call only: `init` succeeds once).
pub(crate) fn set_process_writer(writer: BatchWriter) {
    let _ = PROCESS.set(writer);
}

/// The writer of the subscriber `init` installed, if it did.
pub(crate) fn process_writer() -> Option<&'static BatchWriter> {
    PROCESS.get()
}

/// The writer thread: waits for lines, writes them, lets more gather.
fn run(shared: &Shared) {
    /// A writer thread that dies (its output's `write` panicked) leaves
    /// the threads that log to write their lines themselves.
    struct Died<'a>(&'a Shared);
    impl Drop for Died<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.lock().direct = true;
                self.0.flushed.notify_all();
            }
        }
    }
    let _died = Died(shared);
    let _ = shared.writer_thread.set(std::thread::current().id());
    let mut batch = Vec::with_capacity(HIGH_WATER);
    loop {
        let (stop, dropped) = {
            let mut state = shared.lock();
            while state.buffer.is_empty() && !state.stop {
                state.idle = true;
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.idle = false;
            state.hurry = false;
            state.taken += 1;
            std::mem::swap(&mut batch, &mut state.buffer);
            (state.stop, std::mem::take(&mut state.dropped))
        };
        let dropped = dropped + shared.lost.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let at = humantime::format_rfc3339_micros(std::time::SystemTime::now());
            shared.write_out(
                format!(
                    "{{\"timestamp\":\"{at}\",\"level\":\"WARN\",\"target\":\"opsready_telemetry\",\"message\":\"{dropped} log lines dropped: the output did not keep up\"}}\n"
                )
                .as_bytes(),
            );
        }
        shared.write_out(&batch);
        batch.clear();
        let mut state = shared.lock();
        state.done += 1;
        shared.flushed.notify_all();
        if stop {
            return;
        }
        // Let lines gather: one write per few milliseconds under load
        // instead of one per line.
        if state.buffer.len() < HIGH_WATER && !state.stop && !state.hurry {
            let _ = shared.wake.wait_timeout(state, GATHER);
        }
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A slow output that keeps taking bytes is waited for; one that
            // takes none for `STOP_WAIT` is not.
            let mut give_up = Instant::now() + STOP_WAIT;
            let mut written = self.shared.written.load(Ordering::Relaxed);
            while !thread.is_finished() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
                let now = self.shared.written.load(Ordering::Relaxed);
                if now != written {
                    written = now;
                    give_up = Instant::now() + STOP_WAIT;
                }
            }
            if !thread.is_finished() {
                // Stuck in a write: the output holds its lock, which any
                // later direct write would wait on too. Lines from now on
                // stay buffered, for no one.
                return;
            }
            let _ = thread.join();
        }
        // Lines that came after the thread's last batch, then every later
        // one, are written by the threads that log them; holding the state
        // while writing the rest keeps them in order.
        let mut state = self.shared.lock();
        state.direct = true;
        let rest = std::mem::take(&mut state.buffer);
        if !rest.is_empty() {
            self.shared.write_out(&rest);
        }
        drop(state);
        self.shared.flushed.notify_all();
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        (&*self).write(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writing through a shared reference: [`MakeWriter`] lends the writer
/// itself, so a line costs no reference count.
impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.direct {
            // Lines a writer thread that died left buffered go first.
            if !state.buffer.is_empty() {
                let rest = std::mem::take(&mut state.buffer);
                self.shared.write_out(&rest);
            }
            self.shared.write_out(line);
            return Ok(line.len());
        }
        if state.buffer.len() + line.len() > MAX_BUFFERED {
            state.dropped += 1;
            return Ok(line.len());
        }
        state.buffer.extend_from_slice(line);
        let wake = state.idle || state.buffer.len() >= HIGH_WATER;
        if wake {
            state.idle = false;
        }
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output shared with the test.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<Vec<u8>>>);

    impl Write for Output {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// An output that takes nothing: every write blocks until the test
    /// ends.
    struct Stuck(Arc<Mutex<std::sync::mpsc::Receiver<()>>>);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            Err(io::Error::other("the test ended"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dropping_the_guard_does_not_wait_for_an_output_that_takes_nothing() {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (writer, guard) = BatchWriter::new(Stuck(Arc::new(Mutex::new(blocked))));
        writer.make_writer().write_all(b"one line\n").unwrap();

        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            let _ = done.send(());
        });
        let ended = dropped.recv_timeout(Duration::from_secs(60));
        drop(release);

        assert!(ended.is_ok(), "dropping the guard hung on the output");
    }

    /// An output that takes each write, slowly.
    #[derive(Clone, Default)]
    struct Slow(Arc<Mutex<Vec<u8>>>);

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(900));
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dropping_the_guard_waits_for_a_slow_output_that_keeps_taking_lines() {
        let output = Slow::default();
        let (writer, guard) = BatchWriter::new(output.clone());
        // Three pieces of 64 KiB: longer in all than the 2 s the guard
        // waits for progress, but never 2 s without any.
        let line = format!("{}\n", "x".repeat(63));
        for _ in 0..3 * 1024 {
            writer.make_writer().write_all(line.as_bytes()).unwrap();
        }

        drop(guard);

        assert_eq!(output.0.lock().unwrap().len(), 3 * 1024 * 64);
    }

    /// A non-blocking pipe that is often full: every other write takes
    /// nothing (`WouldBlock`), the others at most 7 bytes.
    #[derive(Clone, Default)]
    struct Choked(Arc<Mutex<(Vec<u8>, bool)>>);

    impl Write for Choked {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut state = self.0.lock().unwrap();
            state.1 = !state.1;
            if state.1 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let taken = buf.len().min(7);
            state.0.extend_from_slice(&buf[..taken]);
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_output_that_takes_part_of_a_write_or_none_gets_every_line_whole() {
        let output = Choked::default();
        let (mut writer, guard) = BatchWriter::new(output.clone());
        let mut expected = String::new();
        for i in 0..200 {
            let line = format!("{{\"line\":{i}}}\n");
            writer.write_all(line.as_bytes()).unwrap();
            expected.push_str(&line);
        }
        drop(guard);

        let written = output.0.lock().unwrap().0.clone();
        assert_eq!(String::from_utf8(written).unwrap(), expected);
    }

    #[test]
    fn write_buffered_returns_once_the_lines_are_written_in_order() {
        let output = Output::default();
        let (mut writer, _guard) = BatchWriter::new(output.clone());
        // The first line wakes the idle thread; the second waits for more
        // to gather.
        writer.write_all(b"first\n").unwrap();
        writer.write_all(b"second\n").unwrap();

        writer.write_buffered();

        assert_eq!(&*output.0.lock().unwrap(), b"first\nsecond\n");
        assert!(writer.shared.lock().buffer.is_empty());
    }

    /// An output that takes one byte per write, slowly, until opened:
    /// always making progress, never done.
    #[derive(Clone, Default)]
    struct Trickle {
        taken: Arc<Mutex<Vec<u8>>>,
        open: Arc<AtomicBool>,
    }

    impl Write for Trickle {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let taken = if self.open.load(Ordering::SeqCst) {
                bytes.len()
            } else {
                std::thread::sleep(Duration::from_millis(2));
                1
            };
            self.taken
                .lock()
                .unwrap()
                .extend_from_slice(&bytes[..taken]);
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn threads_that_log_do_not_wait_while_write_buffered_waits_for_a_slow_output() {
        // Arrange: the writer thread trickles a long first line out; a
        // second line is buffered behind it.
        let output = Trickle::default();
        let (mut writer, guard) = BatchWriter::new(output.clone());
        let first = format!("{}\n", "x".repeat(64 * 1024));
        writer.write_all(first.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while output.taken.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the first line never started");
            std::thread::yield_now();
        }
        writer.write_all(b"second\n").unwrap();
        let flushing = writer.clone();
        let (flushed, returned) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            flushing.write_buffered();
            let _ = flushed.send(());
        });
        // The flush has begun: it holds the state (the writer thread, busy
        // with the first line, does not), or has asked the writer thread to
        // hurry.
        loop {
            match writer.shared.state.try_lock() {
                Err(std::sync::TryLockError::WouldBlock) => break,
                Ok(state) if state.hurry => break,
                _ => {}
            }
            assert!(Instant::now() < deadline, "write_buffered never began");
            std::thread::yield_now();
        }

        // Act: another thread logs while the output is still slow.
        let mut logging = writer.clone();
        let (logged, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            logging.write_all(b"third\n").unwrap();
            let _ = logged.send(());
        });
        let logged_at_once = done.recv_timeout(Duration::from_secs(10));
        output.open.store(true, Ordering::SeqCst);

        // Assert: its line was taken without waiting for the output; the
        // flush returned once the output drained, and every line is there,
        // in order.
        assert!(logged_at_once.is_ok(), "a line waited for the flush");
        assert!(
            returned.recv_timeout(Duration::from_secs(60)).is_ok(),
            "write_buffered never returned"
        );
        let before_guard = output.taken.lock().unwrap().clone();
        assert!(
            before_guard.starts_with(first.as_bytes())
                && before_guard[first.len()..].starts_with(b"second\n"),
            "write_buffered returned before its lines were written"
        );
        drop(guard);
        let text = String::from_utf8(output.taken.lock().unwrap().clone()).unwrap();
        assert_eq!(text, format!("{first}second\nthird\n"));
    }

    /// A non-blocking output whose reader has stopped: it never takes a
    /// byte.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_non_blocking_output_that_never_drains_is_given_up_on() {
        let (writer, _guard) = BatchWriter::new(Full);
        writer.make_writer().write_all(b"never taken\n").unwrap();

        let (done, returned) = std::sync::mpsc::channel();
        let flushing = writer.clone();
        std::thread::spawn(move || {
            flushing.write_buffered();
            let _ = done.send(());
        });

        assert!(
            returned.recv_timeout(Duration::from_secs(60)).is_ok(),
            "write_buffered waited for ever"
        );
        // And the lines logged after it are buffered, not blocked.
        writer.make_writer().write_all(b"later\n").unwrap();
    }

    /// An output that takes `first` bytes, then nothing until opened.
    #[derive(Clone)]
    struct Stalling {
        taken: Arc<Mutex<Vec<u8>>>,
        first: usize,
        open: Arc<AtomicBool>,
    }

    impl Write for Stalling {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut taken = self.taken.lock().unwrap();
            if self.open.load(Ordering::SeqCst) {
                taken.extend_from_slice(bytes);
                return Ok(bytes.len());
            }
            let room = self.first.saturating_sub(taken.len()).min(bytes.len());
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            taken.extend_from_slice(&bytes[..room]);
            Ok(room)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_cut_short_by_an_output_given_up_on_is_ended_and_counted() {
        // Arrange: the output takes 10 bytes of the first line, then stalls.
        let output = Stalling {
            taken: Arc::default(),
            first: 10,
            open: Arc::default(),
        };
        let (mut writer, guard) = BatchWriter::new(output.clone());

        // Act: a line it gives up on, then, once the output drains again,
        // another.
        writer.write_all(b"{\"msg\":\"the first line\"}\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.shared.lost.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "never given up on");
            std::thread::sleep(Duration::from_millis(10));
        }
        output.open.store(true, Ordering::SeqCst);
        writer
            .write_all(b"{\"msg\":\"the second line\"}\n")
            .unwrap();
        drop(guard);

        // Assert: the cut line ends where it was cut, the loss is said, and
        // the next line is whole, on a line of its own.
        let text = String::from_utf8(output.taken.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "{\"msg\":\"th");
        assert!(lines[1].contains("1 log lines dropped"), "{text}");
        assert!(lines[1].starts_with("{\"timestamp\":"), "{text}");
        assert_eq!(lines[2], "{\"msg\":\"the second line\"}");
    }

    /// An output whose first write panics; it takes the others.
    #[derive(Clone, Default)]
    struct PanicsOnce(Arc<Mutex<(bool, Vec<u8>)>>);

    impl Write for PanicsOnce {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if !state.0 {
                state.0 = true;
                drop(state);
                panic!("the output failed");
            }
            state.1.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn once_the_writer_thread_died_lines_are_written_by_the_threads_that_log_them() {
        // Arrange: the writer thread dies on its first write.
        let output = PanicsOnce::default();
        let (mut writer, _guard) = BatchWriter::new(output.clone());
        writer.write_all(b"lost with the thread\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !writer.shared.lock().direct {
            assert!(Instant::now() < deadline, "the writer thread never died");
            std::thread::yield_now();
        }

        // Act
        writer.write_all(b"after\n").unwrap();
        writer.write_buffered();

        // Assert: written at once, not left for a thread that is gone.
        let taken = output
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone();
        assert_eq!(taken, b"after\n");
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_all_of_them() {
        let output = Output::default();
        let (writer, guard) = BatchWriter::new(output.clone());

        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        writer
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);

        let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 4000);
        assert!(text.lines().all(|line| line.starts_with("thread ")));
    }

    #[test]
    fn a_line_written_after_the_guard_dropped_is_written_at_once() {
        let output = Output::default();
        let (mut writer, guard) = BatchWriter::new(output.clone());
        writer.write_all(b"before\n").unwrap();
        drop(guard);

        writer.write_all(b"late\n").unwrap();

        assert_eq!(&*output.0.lock().unwrap(), b"before\nlate\n");
    }

    #[test]
    fn an_idle_writers_first_line_is_written_without_waiting_for_more() {
        let output = Output::default();
        let (mut writer, _guard) = BatchWriter::new(output.clone());

        writer.write_all(b"alone\n").unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        while output.0.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "never written");
            std::thread::yield_now();
        }
        assert_eq!(&*output.0.lock().unwrap(), b"alone\n");
    }
}

//! Runs a service binary in a test, as its supervisor would: reads its log
//! lines, finds the addresses it announces, sends it SIGTERM and waits for
//! its exit, every wait with a deadline. Internal to the workspace's
//! black-box tests of `examples/*` binaries, which spawn them through
//! `env!("CARGO_BIN_EXE_…")`.
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//! use service_process::ServiceProcess;
//!
//! let mut command = Command::new("target/debug/minimal");
//! command.env("MINIMAL__SERVER__ADDR", "127.0.0.1:0");
//! let mut service = ServiceProcess::spawn(command);
//! let (base, _admin) = service.listening(Duration::from_secs(20));
//! // ... requests to `base` ...
//! service.terminate();
//! assert!(service.wait_exit(Duration::from_secs(20)).success());
//! ```

// Test support: a wait that runs out, or a process that cannot start, is
// the test's failure, which a panic reports.
#![allow(clippy::panic)]

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many of the last lines of standard error a failure shows.
const STDERR_TAIL: usize = 40;

/// A running service binary: its standard output read line by line on a
/// thread of its own, the last lines of its standard error kept for the
/// message of a failed wait, the process killed when this is dropped (a
/// failed test leaves nothing running).
#[derive(Debug)]
pub struct ServiceProcess {
    child: Mutex<Child>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<StderrTail>,
}

/// The last lines of the child's standard error, and whether it ended.
#[derive(Debug, Default)]
struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    ended: AtomicBool,
}

impl ServiceProcess {
    /// Starts `command` with its standard output and standard error
    /// captured.
    ///
    /// # Panics
    ///
    /// When the binary cannot start: a failure of the test.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(StderrTail::default());
        if let Some(pipe) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut lines = tail.lines.lock().unwrap_or_else(PoisonError::into_inner);
                    if lines.len() == STDERR_TAIL {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
                tail.ended.store(true, Ordering::Release);
            });
        } else {
            stderr.ended.store(true, Ordering::Release);
        }
        Self {
            child: Mutex::new(child),
            lines,
            stderr,
        }
    }

    /// Runs `command` to its end and returns its status and output, as
    /// [`Command::output`] does, but within a deadline.
    ///
    /// # Panics
    ///
    /// When the binary cannot start, or is still running after `within`
    /// (it is killed first, and the panic shows what it wrote to standard
    /// error).
    pub fn run(mut command: Command, within: Duration) -> Output {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stdout = Drained::start(child.stdout.take());
        let stderr = Drained::start(child.stderr.take());
        let give_up = Instant::now() + within;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = stderr.take();
                    panic!(
                        "{command:?} was still running after {within:?}; its standard error:\n{}",
                        String::from_utf8_lossy(&stderr)
                    );
                }
                Err(error) => panic!("cannot wait for {command:?}: {error}"),
            }
        };
        Output {
            status,
            stdout: stdout.take(),
            stderr: stderr.take(),
        }
    }

    /// The process id, to signal it.
    pub fn id(&self) -> u32 {
        self.child().id()
    }

    /// Waits for a line of standard output containing `needle`, skipping
    /// the others, and returns it.
    ///
    /// # Panics
    ///
    /// When no such line comes within `within`, or the output ends first.
    /// The message says whether the process exited, with which status, and
    /// how its standard error ended.
    pub fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let mut lines = self.lines_until(needle, within);
        lines.pop().unwrap_or_default()
    }

    /// Every line of standard output not read yet, up to and including
    /// the first that contains `needle`: to assert something of all the
    /// lines a request caused, not only of the one waited for.
    ///
    /// # Panics
    ///
    /// As [`wait_for_line`](Self::wait_for_line).
    pub fn lines_until(&self, needle: &str, within: Duration) -> Vec<String> {
        let give_up = Instant::now() + within;
        let mut read = Vec::new();
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    read.push(line);
                    if found {
                        return read;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no output line with {needle:?} within {within:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the output ended before a line with {needle:?}"))
                }
            }
        }
    }

    /// Panics with `what`, the process's state and the end of its standard
    /// error, giving an exiting process a moment to finish.
    fn fail(&self, what: &str) -> ! {
        let settle = Instant::now() + Duration::from_secs(2);
        let state = loop {
            match self.child().try_wait() {
                Ok(Some(status)) => break format!("the process exited ({status})"),
                Ok(None) if Instant::now() < settle => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => break "the process is still running".to_owned(),
                Err(error) => break format!("its state is unknown: {error}"),
            }
        };
        while !self.stderr.ended.load(Ordering::Acquire) && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(20));
        }
        let tail = self
            .stderr
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        if tail.is_empty() {
            panic!("{what}; {state}, with nothing on standard error");
        }
        panic!("{what}; {state}; the end of its standard error:\n{tail}");
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The base URLs an opsready service announces once it listens
    /// (`listening on http://A, admin on http://B`): the main listener's,
    /// and the admin listener's when it has its own.
    ///
    /// # Panics
    ///
    /// As [`wait_for_line`](Self::wait_for_line).
    pub fn listening(&self, within: Duration) -> (String, Option<String>) {
        let line = self.wait_for_line("listening on http://", within);
        let mut urls = line.split("http://").skip(1).map(|rest| {
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            format!("http://{addr}")
        });
        let base = urls.next().unwrap_or_default();
        let admin = line
            .contains("admin on http://")
            .then(|| urls.next())
            .flatten();
        (base, admin)
    }

    /// Sends SIGTERM, as the kubelet does.
    ///
    /// # Panics
    ///
    /// When `kill` cannot be run or refuses.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .unwrap_or_else(|error| panic!("cannot run kill: {error}"));
        assert!(status.success(), "kill -TERM {} failed", self.id());
    }

    /// Waits for the process to exit and returns its status.
    ///
    /// # Panics
    ///
    /// When it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let give_up = Instant::now() + within;
        loop {
            match self.child().try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => {}
                Err(error) => panic!("cannot wait for the process: {error}"),
            }
            if Instant::now() >= give_up {
                self.fail(&format!("the process did not exit within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // Only this test's own child, by its handle.
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// All of a pipe, read on a thread of its own, so that neither pipe of a
/// child fills up while the other is read.
struct Drained {
    bytes: Arc<Mutex<Vec<u8>>>,
    ended: Arc<AtomicBool>,
}

impl Drained {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let (into, done) = (Arc::clone(&bytes), Arc::clone(&ended));
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0_u8; 8192];
                while let Ok(read @ 1..) = pipe.read(&mut chunk) {
                    into.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..read]);
                }
            }
            done.store(true, Ordering::Release);
        });
        Self { bytes, ended }
    }

    /// What was read, once the pipe ended or, if a process the child
    /// started still holds it open, after a moment: what came so far.
    fn take(self) -> Vec<u8> {
        let give_up = Instant::now() + Duration::from_secs(2);
        while !self.ended.load(Ordering::Acquire) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

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

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running service binary: its standard output read line by line on a
/// thread of its own, the process killed when this is dropped (a failed
/// test leaves nothing running).
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ServiceProcess {
    /// Starts `command` with its standard output captured and its standard
    /// error discarded.
    ///
    /// # Panics
    ///
    /// When the binary cannot start: a failure of the test.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        Self { child, lines }
    }

    /// The process id, to signal it.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line of standard output containing `needle`, skipping
    /// the others, and returns it.
    ///
    /// # Panics
    ///
    /// When no such line comes within `within`, or the output ends first.
    pub fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let give_up = Instant::now() + within;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no output line with {needle:?} within {within:?}"),
            }
        }
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
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => {}
                Err(error) => panic!("cannot wait for the process: {error}"),
            }
            assert!(
                Instant::now() < give_up,
                "the process did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // Only this test's own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

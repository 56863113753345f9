use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use service_process::ServiceProcess;
use tempfile::TempDir;

/// How long any wait in these tests may last before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The `minimal` binary, with a clean `MINIMAL` environment, working in
/// `dir` (where no config directory is, unless a test puts one there).
pub(crate) fn minimal(env: &[(&str, &str)], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_minimal"));
    command.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MINIMAL") {
            command.env_remove(name);
        }
    }
    command
        .env("MINIMAL__SERVER__ADDR", "127.0.0.1:0")
        .env("MINIMAL__ADMIN__ADDR", "127.0.0.1:0")
        // Each process its own flags, unless a test says otherwise.
        .env("MINIMAL__FLAGS__STORE", "memory:")
        .env("RUST_BACKTRACE", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the binary to completion, in a directory of its own, within the
/// deadline.
pub(crate) fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = TempDir::new().unwrap();
    let mut command = minimal(env, dir.path());
    command.args(args);
    ServiceProcess::run(command, DEADLINE)
}

/// A running `minimal` process, the addresses it announced and the
/// directory it works in.
pub(crate) struct Service {
    process: ServiceProcess,
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) client: reqwest::Client,
    /// Its working directory, removed when the test ends. Declared last:
    /// the process is killed before the directory goes.
    _dir: TempDir,
}

impl Service {
    /// Starts the binary and waits for its "listening on" log line.
    pub(crate) fn start(env: &[(&str, &str)]) -> Self {
        Self::start_in(TempDir::new().unwrap(), env)
    }

    /// Starts the binary working in `dir`, and waits for its "listening
    /// on" log line.
    pub(crate) fn start_in(dir: TempDir, env: &[(&str, &str)]) -> Self {
        let process = ServiceProcess::spawn(minimal(env, dir.path()));
        let (base, admin) = process.listening(DEADLINE);
        let Some(admin) = admin else {
            panic!("no admin listener announced")
        };
        Self {
            process,
            base,
            admin,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Waits, with a deadline, for a log line containing `needle`.
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
        self.process.wait_for_line(needle, DEADLINE)
    }

    /// Every log line not read yet, up to and including the first
    /// containing `needle`, waiting with a deadline.
    pub(crate) fn lines_until(&self, needle: &str) -> Vec<String> {
        self.process.lines_until(needle, DEADLINE)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Sends SIGTERM, as the kubelet does.
    pub(crate) fn terminate(&self) {
        self.process.terminate();
    }

    /// Waits, with a deadline, for the process to exit.
    pub(crate) fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.process.wait_exit(DEADLINE)
    }
}

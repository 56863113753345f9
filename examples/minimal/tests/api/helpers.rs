use std::process::{Command, Output};
use std::time::Duration;

use service_process::ServiceProcess;

/// How long any wait in these tests may last before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The `minimal` binary, with a clean `MINIMAL` environment and no config
/// directory in reach.
pub(crate) fn minimal(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_minimal"));
    let dir = std::env::temp_dir().join("minimal-tests-no-config");
    std::fs::create_dir_all(&dir).unwrap();
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("MINIMAL") {
            command.env_remove(name);
        }
    }
    command
        .env("MINIMAL__SERVER__ADDR", "127.0.0.1:0")
        .env("MINIMAL__ADMIN__ADDR", "127.0.0.1:0")
        // Each process its own flags: the default file is shared by the
        // working directory all these tests run in.
        .env("MINIMAL__FLAGS__STORE", "memory:")
        .env("RUST_BACKTRACE", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the binary to completion.
pub(crate) fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    minimal(env).args(args).output().unwrap()
}

/// A running `minimal` process and the addresses it announced.
pub(crate) struct Service {
    process: ServiceProcess,
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) client: reqwest::Client,
}

impl Service {
    /// Starts the binary and waits for its "listening on" log line.
    pub(crate) fn start(env: &[(&str, &str)]) -> Self {
        let process = ServiceProcess::spawn(minimal(env));
        let (base, admin) = process.listening(DEADLINE);
        let Some(admin) = admin else {
            panic!("no admin listener announced")
        };
        Self {
            process,
            base,
            admin,
            client: reqwest::Client::new(),
        }
    }

    /// Waits, with a deadline, for a log line containing `needle`.
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
        self.process.wait_for_line(needle, DEADLINE)
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

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) client: reqwest::Client,
    lines: mpsc::Receiver<String>,
}

impl Service {
    /// Starts the binary and waits for its "listening on" log line.
    pub(crate) fn start(env: &[(&str, &str)]) -> Self {
        let mut child = minimal(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut service = Self {
            child,
            base: String::new(),
            admin: String::new(),
            client: reqwest::Client::new(),
            lines,
        };
        let line = service.wait_for_line("listening on http://");
        // "listening on http://127.0.0.1:PORT, admin on http://127.0.0.1:PORT"
        let mut urls = line.split("http://").skip(1).map(|rest| {
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            format!("http://{addr}")
        });
        service.base = urls.next().unwrap();
        service.admin = urls.next().unwrap();
        service
    }

    /// Waits, with a deadline, for a log line containing `needle`.
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
        let give_up = std::time::Instant::now() + DEADLINE;
        loop {
            let left = give_up.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within {DEADLINE:?}"),
            }
        }
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
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits, with a deadline, for the process to exit.
    pub(crate) fn wait_exit(&mut self) -> std::process::ExitStatus {
        let give_up = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "the process did not exit within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Only this test's own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

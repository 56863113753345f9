//! The log lines a test binary's global subscriber writes, kept in memory
//! for the tests to read.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use opsready_telemetry::{LogFormat, TelemetrySettings};

/// A writer into a shared buffer.
#[derive(Clone, Default)]
pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    #[allow(dead_code)] // not every test binary reads it as text
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The capture of this binary's global subscriber, installed on first use
/// with `format` and `level` (later calls get the same one).
#[allow(dead_code)] // a binary that adds layers of its own installs its own
pub(crate) fn installed(format: LogFormat, level: &str) -> &'static Capture {
    static CAPTURED: OnceLock<Capture> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let logs = Capture::default();
        let mut settings = TelemetrySettings::default();
        settings.log.format = Some(format);
        settings.log.level = level.to_owned();
        let writer = logs.clone();
        let subscriber = opsready_telemetry::subscriber(&settings, move || writer.clone()).unwrap();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// Serves `app` on a free port of the loopback, and its base URL.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

//! [`Health`]: the checks and lifecycle of a service, and the probe router.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::join_all;
use opsready_problem::Problem;
use opsready_problem::layer::Exempt;
use serde_json::{Map, Value, json};

use crate::check::{Component, Stamped, Status};
use crate::lifecycle::{Lifecycle, Phase};

/// The media type of the health-check draft.
pub const HEALTH_JSON: &str = "application/health+json";

/// A service's checks and lifecycle. Cheap to clone; clones share state.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use opsready_health::{Component, Health, Reading, Status};
///
/// let health = Health::new()
///     .component(Component::new("database", || async { Reading::pass() }))
///     .component(
///         Component::new("cache", || async { Err::<(), _>("connection refused") })
///             .non_critical(),
///     );
/// health.lifecycle().set_ready();
///
/// let report = health.readiness(&[]).await;
/// assert_eq!(report.status(), Status::Warn); // a non-critical failure
/// assert!(report.is_ready());
/// # });
/// ```
///
/// Mount [`Health::router`] on the main listener for `/livez`, `/readyz`,
/// `/readyz/{check}` and `/startupz`.
#[derive(Debug, Clone)]
pub struct Health {
    components: Arc<Vec<Component>>,
    lifecycle: Lifecycle,
    show_output: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            components: Arc::default(),
            lifecycle: Lifecycle::default(),
            show_output: true,
        }
    }
}

impl Health {
    /// No checks, and a lifecycle in [`Phase::Starting`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the probes show a failing or warning check's `output` (on
    /// by default). A driver's error message can name hosts, ports and
    /// users, and the probes answer whoever reaches the main listener:
    /// off, they say each check's status only, and the log still says why
    /// (a check whose status changes is logged with its output).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use opsready_health::{Component, Health};
    ///
    /// let health = Health::new()
    ///     .component(Component::new("database", || async {
    ///         Err::<(), _>("db.internal:5432: password authentication failed for user \"app\"")
    ///     }))
    ///     .show_output(false);
    /// health.lifecycle().set_ready();
    ///
    /// let body = health.readiness(&[]).await.to_json();
    /// assert_eq!(body["checks"]["database"][0]["status"], "fail");
    /// assert!(body["checks"]["database"][0].get("output").is_none());
    /// # });
    /// ```
    pub fn show_output(mut self, show: bool) -> Self {
        self.show_output = show;
        self
    }

    /// Uses an existing lifecycle, shared with a server.
    pub fn with_lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Adds a check. A name used twice replaces the earlier check.
    pub fn component(mut self, component: Component) -> Self {
        let components = Arc::make_mut(&mut self.components);
        components.retain(|c| c.name() != component.name());
        components.push(component);
        self
    }

    /// The lifecycle the probes report.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The checks, in the order they were added.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Runs (or reuses cached readings of) every check not excluded, all at
    /// once. While the service is not in [`Phase::Ready`] no check runs: the
    /// answer is "not ready" whatever they would say.
    pub async fn readiness(&self, exclude: &[&str]) -> Report {
        let phase = self.lifecycle.phase();
        if phase != Phase::Ready {
            return Report::not_ready(phase);
        }
        let show_output = self.show_output;
        let entries = join_all(self.components.iter().map(|component| async move {
            let excluded = exclude.contains(&component.name());
            let reading = if excluded {
                None
            } else {
                Some(component.read().await)
            };
            Entry {
                component: component.clone(),
                reading,
            }
        }))
        .await;
        // Shutdown may have begun while the checks ran: from its first
        // moment the answer is "not ready", whatever they said.
        let phase = self.lifecycle.phase();
        if phase != Phase::Ready {
            return Report::not_ready(phase);
        }
        let status = entries
            .iter()
            .filter_map(|entry| {
                let status = entry.reading.as_ref()?.reading.status();
                Some(match (status, entry.component.is_critical()) {
                    (Status::Fail, false) => Status::Warn,
                    (status, _) => status,
                })
            })
            .max()
            .unwrap_or(Status::Pass);
        Report {
            phase,
            status,
            entries,
            show_output,
        }
    }

    /// The probe routes, for the main listener:
    ///
    /// | route | answer |
    /// |---|---|
    /// | `GET /livez` | 200 while the process can serve; runs nothing |
    /// | `GET /readyz` | `application/health+json`; 200 on pass and warn, 503 on fail, before startup and while draining |
    /// | `GET /readyz?verbose` | the Kubernetes text form; `&exclude=name` (repeatable) skips a check |
    /// | `GET /readyz/{check}` | one check, for diagnosis: 503 when it fails, critical or not, whatever the phase; an unknown name is a 404 problem |
    /// | `GET /startupz` | 503 until startup finished, then 200 |
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/readyz/{check}", get(readyz_one))
            .route("/startupz", get(startupz))
            .with_state(self.clone())
    }
}

#[derive(Debug, Clone)]
struct Entry {
    component: Component,
    /// `None` when excluded by the caller.
    reading: Option<Stamped>,
}

/// The answer to a readiness question.
#[derive(Debug, Clone)]
pub struct Report {
    phase: Phase,
    status: Status,
    entries: Vec<Entry>,
    show_output: bool,
}

impl Report {
    /// The answer of a service that is starting, draining or stopped: no
    /// check counts.
    fn not_ready(phase: Phase) -> Self {
        Self {
            phase,
            status: Status::Fail,
            entries: Vec::new(),
            show_output: true,
        }
    }

    /// The overall status: the worst of the checks, a non-critical failure
    /// counting as `warn`; `fail` whenever the service is not in
    /// [`Phase::Ready`].
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the service should receive traffic (pass or warn).
    pub fn is_ready(&self) -> bool {
        self.status != Status::Fail
    }

    fn http_status(&self) -> StatusCode {
        if self.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }

    /// The body of `/readyz`, in the form of the health-check draft.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), json!(self.status));
        if self.phase != Phase::Ready {
            body.insert("output".into(), json!(self.phase.to_string()));
        }
        let mut checks = Map::new();
        for entry in &self.entries {
            let Some(stamped) = &entry.reading else {
                continue;
            };
            checks.insert(
                entry.component.name().to_owned(),
                json!([component_json(&entry.component, stamped, self.show_output)]),
            );
        }
        body.insert("checks".into(), Value::Object(checks));
        Value::Object(body)
    }

    /// The body of `/readyz?verbose`, in the Kubernetes text form.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        if self.phase != Phase::Ready {
            let _ = writeln!(text, "[-]lifecycle failed: {}", self.phase);
        }
        for entry in &self.entries {
            let name = entry.component.name();
            let _ = match &entry.reading {
                None => writeln!(text, "[+]{name} excluded: ok"),
                Some(stamped) => {
                    let reading = &stamped.reading;
                    let output = if self.show_output {
                        format!(": {}", reading.output().unwrap_or("no output"))
                    } else {
                        String::new()
                    };
                    match (reading.status(), entry.component.is_critical()) {
                        (Status::Pass, _) => writeln!(text, "[+]{name} ok"),
                        (Status::Warn, _) => writeln!(text, "[+]{name} warn{output}"),
                        (Status::Fail, true) => writeln!(text, "[-]{name} failed{output}"),
                        (Status::Fail, false) => {
                            writeln!(text, "[-]{name} failed (non-critical){output}")
                        }
                    }
                }
            };
        }
        let verdict = if self.is_ready() { "passed" } else { "failed" };
        let _ = writeln!(text, "readyz check {verdict}");
        text
    }
}

fn component_json(component: &Component, stamped: &Stamped, show_output: bool) -> Value {
    let reading = &stamped.reading;
    let mut item = Map::new();
    item.insert("componentId".into(), json!(component.name()));
    if let Some(kind) = component.kind() {
        item.insert("componentType".into(), json!(kind));
    }
    item.insert("status".into(), json!(reading.status()));
    item.insert(
        "time".into(),
        json!(humantime::format_rfc3339_millis(stamped.time).to_string()),
    );
    let (value, unit) = reading
        .observed_value()
        .unwrap_or((stamped.elapsed().as_secs_f64() * 1000.0, "ms"));
    item.insert("observedValue".into(), json!(value));
    item.insert("observedUnit".into(), json!(unit));
    if show_output
        && reading.status() != Status::Pass
        && let Some(output) = reading.output()
    {
        item.insert("output".into(), json!(output));
    }
    Value::Object(item)
}

// Probe answers are `Exempt`: a 503 from a probe is an answer in the
// probe's own format, not an error for the problem layer to rewrite.
fn health_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        Exempt,
        [(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON))],
        body.to_string(),
    )
        .into_response()
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        Exempt,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `verbose` and the `exclude` names of a probe's query string.
struct ProbeQuery {
    verbose: bool,
    exclude: Vec<String>,
}

impl ProbeQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self {
            verbose: false,
            exclude: Vec::new(),
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "verbose" => parsed.verbose = value != "false" && value != "0",
                "exclude" => parsed.exclude.push(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

async fn livez(RawQuery(query): RawQuery) -> Response {
    // Never any I/O here: a liveness failure restarts the process, and a
    // dependency's outage must not restart every replica at once.
    if ProbeQuery::parse(query.as_deref()).verbose {
        text(
            StatusCode::OK,
            "[+]ping ok\nlivez check passed\n".to_owned(),
        )
    } else {
        health_json(StatusCode::OK, &json!({ "status": "pass" }))
    }
}

async fn readyz(State(health): State<Health>, RawQuery(query): RawQuery) -> Response {
    let query = ProbeQuery::parse(query.as_deref());
    let exclude: Vec<&str> = query.exclude.iter().map(String::as_str).collect();
    let report = health.readiness(&exclude).await;
    if query.verbose {
        text(report.http_status(), report.to_text())
    } else {
        health_json(report.http_status(), &report.to_json())
    }
}

async fn readyz_one(State(health): State<Health>, Path(name): Path<String>) -> Response {
    let Some(component) = health.components().iter().find(|c| c.name() == name) else {
        return Problem::not_found(format!("there is no check named `{name}`")).into_response();
    };
    let stamped = component.read().await;
    let status = if stamped.reading.status() == Status::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": stamped.reading.status(),
        "checks": { component.name(): [component_json(component, &stamped, health.show_output)] },
    });
    health_json(status, &body)
}

async fn startupz(State(health): State<Health>, RawQuery(query): RawQuery) -> Response {
    // Not the phase: a shutdown during the startup hooks drains a service
    // that never started.
    let lifecycle = health.lifecycle();
    let started = lifecycle.has_started();
    let (status, verdict) = if started {
        (StatusCode::OK, Status::Pass)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Status::Fail)
    };
    if ProbeQuery::parse(query.as_deref()).verbose {
        let line = if started {
            "[+]startup ok\nstartupz check passed\n".to_owned()
        } else {
            format!(
                "[-]startup failed: {}\nstartupz check failed\n",
                lifecycle.phase()
            )
        };
        text(status, line)
    } else if started {
        health_json(status, &json!({ "status": verdict }))
    } else {
        health_json(
            status,
            &json!({ "status": verdict, "output": lifecycle.phase().to_string() }),
        )
    }
}

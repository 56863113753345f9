use std::future::Future;
use std::sync::{LazyLock, Once};
use std::time::{Duration, Instant};

use accounts::{Application, Database};
use opsready::settings::Loader;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::Connection as _;

/// How long any wait in these tests may last before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The admin token of every test app (admin routes are under `/admin` on
/// the main listener).
pub(crate) const ADMIN_TOKEN: &str = "a-token-for-the-accounts-tests";

/// What the tests name their Postgres databases with, to find the ones a
/// killed run left behind.
const PREFIX: &str = "accounts_test_";

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` of the calling module once per
/// backend, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
                    super::$test(app.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
                    if let Some(app) = app {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

/// A running app and what a test needs to talk to it.
pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) client: reqwest::Client,
    pub(crate) backend: Backend,
    /// The URL the app's database was opened with.
    pub(crate) database_url: String,
    pub(crate) database: Database,
    /// The temporary directory or Postgres database, removed on drop.
    pub(crate) scratch: Scratch,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Builds and starts the app on `backend` with a fresh database, and waits
/// until its startup (the migrations) finished. `None` for Postgres when
/// the tests are not configured for it.
pub(crate) async fn spawn_app(backend: Backend) -> Option<TestApp> {
    init_logs();
    let scratch = match backend {
        Backend::Sqlite => Scratch::sqlite(),
        Backend::Postgres => Scratch::postgres().await?,
    };
    let database_url = scratch.url.clone();
    let config_dir = std::env::temp_dir().join("accounts-tests-no-config");
    let loader = Loader::new("ACCOUNTS").config_dir(config_dir).env([
        ("ACCOUNTS__SERVER__ADDR", "127.0.0.1:0"),
        // Empty: the admin routes under /admin on the main listener.
        ("ACCOUNTS__ADMIN__ADDR", ""),
        ("ACCOUNTS__ADMIN__TOKEN", ADMIN_TOKEN),
        // Each app its own flags, lost at exit.
        ("ACCOUNTS__FLAGS__STORE", "memory:"),
        ("ACCOUNTS__DATABASE__URL", database_url.as_str()),
        ("ACCOUNTS__DATABASE__MAX_CONNECTIONS", "4"),
        ("ACCOUNTS__DATABASE__ACQUIRE_TIMEOUT", "2s"),
        // Cheap hashes: the suite creates hundreds of users on two cores.
        // Production keeps the defaults (19 MiB, 2 passes).
        ("ACCOUNTS__PASSWORDS__MEMORY_KIB", "64"),
        ("ACCOUNTS__PASSWORDS__ITERATIONS", "1"),
        ("ACCOUNTS__SHUTDOWN__DRAIN_DELAY", "0s"),
    ]);
    let settings = opsready::load::<accounts::Settings>(&loader).unwrap();
    let application = Application::build(&settings).await.unwrap();
    let address = format!("http://{}", application.local_addr());
    let database = application.database().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    let app = TestApp {
        address,
        client: reqwest::Client::new(),
        backend,
        database_url,
        database,
        scratch,
        stop: Some(stop),
    };
    app.wait_for("startup to finish", || async {
        app.get("/startupz").await.status() == 200
    })
    .await;
    Some(app)
}

impl TestApp {
    // Every request helper answers an `Answer`: the response, already
    // checked against the OpenAPI document.

    pub(crate) async fn get(&self, path: &str) -> Answer {
        Answer::checked(self.client.get(format!("{}{path}", self.address))).await
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> Answer {
        Answer::checked(
            self.client
                .post(format!("{}{path}", self.address))
                .json(body),
        )
        .await
    }

    pub(crate) async fn patch_json(&self, path: &str, body: &Value) -> Answer {
        Answer::checked(
            self.client
                .patch(format!("{}{path}", self.address))
                .json(body),
        )
        .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Answer {
        Answer::checked(self.client.delete(format!("{}{path}", self.address))).await
    }

    /// `POST` with a raw body and content type.
    pub(crate) async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> Answer {
        Answer::checked(
            self.client
                .post(format!("{}{path}", self.address))
                .header("content-type", content_type)
                .body(body.to_owned()),
        )
        .await
    }

    /// `POST /billing/invoices` with an `Idempotency-Key`.
    pub(crate) async fn create_invoice(&self, key: &str, body: &Value) -> Answer {
        Answer::checked(
            self.client
                .post(format!("{}/billing/invoices", self.address))
                .header("idempotency-key", key)
                .json(body),
        )
        .await
    }

    /// An admin request, with the token.
    pub(crate) fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/admin{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Creates a user and returns it.
    pub(crate) async fn create_user(&self, email: &str) -> Value {
        let response = self
            .post_json(
                "/users",
                &serde_json::json!({
                    "email": email,
                    "name": "Ann Lee",
                    "password": "correct horse battery",
                }),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Waits, with [`DEADLINE`], until `condition` holds.
    pub(crate) async fn wait_for<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let give_up = Instant::now() + DEADLINE;
        while !condition().await {
            assert!(Instant::now() < give_up, "waited {DEADLINE:?} for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs one SQL query returning one text column, straight on the
    /// database, around the service.
    pub(crate) async fn query_strings(&self, sql: &str) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }
}

/// A response, read whole and checked against the OpenAPI document: the
/// route, the status and the content type are declared there, and the
/// body matches the declared schema. Reads like a `reqwest::Response`.
pub(crate) struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    /// Sends `request` and checks its response with [`assert_conforms`].
    pub(crate) async fn checked(request: reqwest::RequestBuilder) -> Self {
        let (client, request) = request.build_split();
        let request = request.unwrap();
        let method = request.method().clone();
        let response = client.execute(request).await.unwrap();
        Self::of(&method, response).await
    }

    /// Reads `response`, the answer to a `method` request, and checks it.
    pub(crate) async fn of(method: &Method, response: reqwest::Response) -> Self {
        let path = response.url().path().to_owned();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let content_type = headers
            .get(CONTENT_TYPE)
            .map(|value| value.to_str().unwrap());
        assert_conforms_as(method.as_str(), &path, status.as_u16(), content_type, &body);
        Self {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as JSON. `async` and a `Result` like reqwest's, so that a
    /// test reads the same either way.
    pub(crate) async fn json<T: DeserializeOwned>(self) -> serde_json::Result<T> {
        serde_json::from_str(&self.body)
    }

    pub(crate) async fn text(self) -> Result<String, std::convert::Infallible> {
        Ok(self.body)
    }
}

/// The service's OpenAPI document, as `/openapi.json` answers it.
static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(&accounts::openapi_json()).unwrap());

/// Fails unless the OpenAPI document declares that `method` on `path` (a
/// template like `/users/{id}`, or a concrete path matched against the
/// templates) may answer `status` with a JSON body, and `body` matches the
/// schema declared for it, `$ref`s resolved within the document.
pub(crate) fn assert_conforms(method: &str, path: &str, status: u16, body: &Value) {
    check(method, path, status, MediaType::AnyJson, &body.to_string());
}

/// [`assert_conforms`] for the raw body of a response and its
/// `Content-Type`, which must be one the document declares.
pub(crate) fn assert_conforms_as(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &str,
) {
    check(method, path, status, MediaType::Header(content_type), body);
}

/// Which declared content a body is checked against.
#[derive(Clone, Copy)]
enum MediaType<'a> {
    /// The one of this `Content-Type` header.
    Header(Option<&'a str>),
    /// The JSON one (`application/json`, `application/problem+json`, …).
    AnyJson,
}

fn check(method: &str, path: &str, status: u16, media_type: MediaType<'_>, body: &str) {
    let what = format!("{method} {path} answering {status}");
    let document = &*DOCUMENT;
    let template = template_of(document, path)
        .unwrap_or_else(|| panic!("{what}: the path is not in the OpenAPI document"));
    let operation = &document["paths"][template.as_str()][method.to_ascii_lowercase()];
    assert!(
        operation.is_object(),
        "{what}: the OpenAPI document has no {method} on {template}"
    );
    let declared = operation["responses"]
        .get(status.to_string())
        .or_else(|| operation["responses"].get("default"))
        .unwrap_or_else(|| {
            panic!("{what}: the OpenAPI document declares no {status} for {method} {template}")
        });
    let declared = resolve(document, declared, 0);
    let contents = declared["content"].as_object();
    let Some(contents) = contents.filter(|contents| !contents.is_empty()) else {
        assert!(
            body.is_empty(),
            "{what}: the document declares no body, but one came: {body}"
        );
        return;
    };
    let media_type = match media_type {
        MediaType::Header(content_type) => content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim)
            .unwrap_or_else(|| panic!("{what}: no content type; the document declares one")),
        MediaType::AnyJson => contents
            .keys()
            .find(|media_type| media_type.ends_with("json"))
            .unwrap_or_else(|| panic!("{what}: the document declares no JSON body")),
    };
    let schema = &contents.get(media_type).unwrap_or_else(|| {
        panic!(
            "{what}: answered {media_type}, the document declares {:?}",
            contents.keys().collect::<Vec<_>>()
        )
    })["schema"];
    let instance = if media_type.ends_with("json") {
        serde_json::from_str(body)
            .unwrap_or_else(|error| panic!("{what}: the body is not JSON ({error}): {body}"))
    } else {
        Value::String(body.to_owned())
    };
    let schema = resolve(document, schema, 0);
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("{what}: the declared schema is invalid: {error}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body does not match the OpenAPI document:\n  {}\nbody: {instance}",
        errors.join("\n  ")
    );
}

/// The path template of the document that `path` is, or is an instance
/// of; a template of literal segments wins over one with parameters.
fn template_of(document: &Value, path: &str) -> Option<String> {
    let paths = document["paths"].as_object()?;
    if paths.contains_key(path) {
        return Some(path.to_owned());
    }
    let segments: Vec<&str> = path.split('/').collect();
    paths
        .keys()
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part == segment || part.starts_with('{'))
        })
        .min_by_key(|template| template.matches('{').count())
        .cloned()
}

/// `value` with every `$ref` into the document replaced by its target,
/// recursively. The document's schemas are not recursive; a depth guard
/// says so if one becomes so.
fn resolve(document: &Value, value: &Value, depth: usize) -> Value {
    assert!(depth < 32, "a $ref cycle in the OpenAPI document");
    match value {
        Value::Object(members) => {
            if let Some(reference) = members.get("$ref").and_then(Value::as_str) {
                let pointer = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("a $ref outside the document: {reference}"));
                let target = document
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("a dangling $ref: {reference}"));
                return resolve(document, target, depth + 1);
            }
            Value::Object(
                members
                    .iter()
                    .map(|(name, member)| (name.clone(), resolve(document, member, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| resolve(document, item, depth))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The `errors[].pointer`s of a problem body, in order.
pub(crate) fn pointers(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|error| error["pointer"].as_str().unwrap())
        .collect()
}

/// The `errors[].code` at `pointer` of a problem body.
pub(crate) fn code_at<'a>(problem: &'a Value, pointer: &str) -> &'a str {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|error| error["pointer"] == pointer)
        .unwrap_or_else(|| panic!("no error at {pointer} in {problem}"))["code"]
        .as_str()
        .unwrap()
}

/// A database of one test, removed on drop.
pub(crate) struct Scratch {
    pub(crate) url: String,
    /// The SQLite file's directory, removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// The Postgres database, dropped on drop.
    postgres: Option<pg_scratch::Scratch>,
}

impl Scratch {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: the service creates it.
        let file = dir.path().join("data").join("accounts.db");
        Self {
            url: format!("sqlite://{}", file.display()),
            _dir: Some(dir),
            postgres: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let scratch = pg_scratch::Scratch::database(PREFIX).await?;
        Some(Self {
            url: scratch.url.clone(),
            _dir: None,
            postgres: Some(scratch),
        })
    }

    /// Drops the Postgres database now, connections and all.
    pub(crate) async fn drop_postgres_database(&self) {
        self.postgres.as_ref().unwrap().drop_now().await;
    }
}

/// Installs the service's log output once per test binary when `TEST_LOG`
/// is set; silent otherwise.
fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_none() {
            return;
        }
        let settings = opsready::telemetry::TelemetrySettings::default();
        let service = opsready::telemetry::ServiceInfo::new("accounts-tests", "0");
        if let Ok(guard) = opsready::telemetry::init(&settings, &service) {
            // Lives as long as the test binary.
            std::mem::forget(guard);
        }
    });
}

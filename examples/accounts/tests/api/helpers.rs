use std::future::Future;
use std::sync::Once;
use std::time::{Duration, Instant};

use accounts::{Application, Database};
use opsready::settings::Loader;
use serde_json::Value;
use sqlx::{Connection as _, Executor as _};

/// How long any wait in these tests may last before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The admin token of every test app (admin routes are under `/admin` on
/// the main listener).
pub(crate) const ADMIN_TOKEN: &str = "a-token-for-the-accounts-tests";

const URL_VAR: &str = "OPSREADY_TEST_DATABASE_URL";

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
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// `POST` with a raw body and content type.
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// `POST /billing/invoices` with an `Idempotency-Key`.
    pub(crate) async fn create_invoice(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/billing/invoices", self.address))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// An admin request, with the token.
    pub(crate) fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
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
    /// The SQLite file's directory.
    dir: Option<tempfile::TempDir>,
    /// The Postgres database's name and the URL to drop it through.
    postgres: Option<(String, String)>,
}

impl Scratch {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: the service creates it.
        let file = dir.path().join("data").join("accounts.db");
        Self {
            url: format!("sqlite://{}", file.display()),
            dir: Some(dir),
            postgres: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let admin_url = postgres_url()?;
        let name = format!("{PREFIX}{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        conn.execute(&*format!(r#"CREATE DATABASE "{name}""#))
            .await
            .unwrap();
        conn.close().await.unwrap();
        Some(Self {
            url: with_database(&admin_url, &name),
            dir: None,
            postgres: Some((name, admin_url)),
        })
    }

    /// Drops the Postgres database now, connections and all.
    pub(crate) async fn drop_postgres_database(&self) {
        let (name, admin_url) = self.postgres.as_ref().unwrap();
        let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
        conn.execute(&*format!(
            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
        ))
        .await
        .unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The TempDir removes itself; a Postgres database needs a query.
        let _ = self.dir.take();
        if let Some((name, admin_url)) = self.postgres.take() {
            on_the_side(async move {
                let statement = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                match sqlx::PgConnection::connect(&admin_url).await {
                    Ok(mut conn) => {
                        if let Err(error) = conn.execute(&*statement).await {
                            eprintln!("could not clean up: {statement}: {error}");
                        }
                    }
                    Err(error) => eprintln!("could not clean up: {statement}: {error}"),
                }
            });
        }
    }
}

/// The Postgres server's URL, or `None` after saying why the test is
/// skipped.
fn postgres_url() -> Option<String> {
    let url = std::env::var(URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(url) = url else {
        eprintln!(
            "skipped: set {URL_VAR} (postgres://USER@HOST:PORT/DB) to run the Postgres variant"
        );
        return None;
    };
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| on_the_side(sweep(url.clone())));
    Some(url)
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (server, _) = base
        .rsplit_once('/')
        .filter(|(server, _)| server.contains("//"))
        .unwrap_or_else(|| panic!("{URL_VAR} has no database name"));
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Drops the databases of runs killed over an hour ago: their names carry
/// a UUIDv7, whose first 48 bits are the creation time in milliseconds.
async fn sweep(url: String) {
    let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else {
        return;
    };
    let pattern = format!("{}%", PREFIX.replace('_', r"\_"));
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(|id| u128::from_be_bytes(*id.as_bytes()) >> 80);
        if created.is_some_and(|millis| millis + 3_600_000 < now) {
            // Another test binary may be sweeping too: its drop wins.
            let _ = conn
                .execute(&*format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                ))
                .await;
        }
    }
}

/// Runs `work` to the end on a thread and runtime of its own: a guard is
/// dropped while the test's runtime ends or unwinds, which could neither
/// run a spawned task nor block on one.
fn on_the_side(work: impl Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work);
    });
    let _ = thread.join();
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

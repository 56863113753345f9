//! Black-box tests of loading settings: layers, origins, errors, secrets.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use opsready_settings::{
    ByteSize, CommandLine, DiagnosticKind, Duration, LoadError, Loaded, Loader, Origin, Secret,
    Validate, Violations,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
struct Settings {
    #[serde(default)]
    http: Http,
    database: Database,
    #[serde(default)]
    admin: Admin,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct Http {
    read_timeout: Duration,
    body_limit: ByteSize,
    port: u16,
    mode: Mode,
    allowed_origins: Vec<String>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(30),
            body_limit: ByteSize::mib(1),
            port: 8080,
            mode: Mode::Plain,
            allowed_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Plain,
    Tls,
}

#[derive(Debug, Deserialize, Serialize)]
struct Database {
    url: String,
    #[serde(default)]
    pool_size: u32,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct Admin {
    token: Option<Secret<String>>,
    pin: Option<Secret<u32>>,
}

impl Validate for Settings {
    fn validate(&self, v: &mut Violations) {
        if self.http.port <= 1024 {
            v.add("http.port", "must be > 1024");
        }
        v.nested("database", &self.database);
    }
}

impl Validate for Database {
    fn validate(&self, v: &mut Violations) {
        if self.pool_size > 100 {
            v.add("pool_size", "must be at most 100");
        }
    }
}

/// A config directory of its own for each test.
fn config(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn loader(dir: &Path, env: &[(&str, &str)]) -> Loader {
    Loader::new("APP")
        .config_dir(dir)
        .env(env.iter().map(|(k, v)| (*k, *v)))
}

const DATABASE: &str = "[database]\nurl = \"postgres://db/app\"\n";

fn load(dir: &Path, env: &[(&str, &str)]) -> Result<Loaded<Settings>, LoadError> {
    loader(dir, env).load::<Settings>()
}

fn origin(loaded: &Loaded<Settings>, key: &str) -> String {
    loaded.dump().get(key).unwrap().origin.to_string()
}

#[test]
fn each_layer_overrides_the_one_below_and_the_dump_names_it() {
    // Arrange
    let dir = config(&[
        (
            "default.toml",
            "[database]\nurl = \"postgres://db/app\"\npool_size = 5\n[http]\nport = 2000\nread_timeout = \"1s\"\nbody_limit = \"2MB\"\n",
        ),
        (
            "staging.toml",
            "[http]\nport = 3000\nread_timeout = \"2s\"\n",
        ),
    ]);

    // Act
    let loaded = loader(
        dir.path(),
        &[
            ("APP_ENV", "staging"),
            ("APP__HTTP__PORT", "4000"),
            ("APP__HTTP__READ_TIMEOUT", "3s"),
        ],
    )
    .set("http.port", "5000")
    .load::<Settings>()
    .unwrap();

    // Assert
    assert_eq!(loaded.environment(), "staging");
    assert_eq!(loaded.http.port, 5000);
    assert_eq!(origin(&loaded, "http.port"), "--set http.port");
    assert_eq!(loaded.http.read_timeout, Duration::from_secs(3));
    assert_eq!(
        origin(&loaded, "http.read_timeout"),
        "environment variable APP__HTTP__READ_TIMEOUT"
    );
    assert_eq!(loaded.http.body_limit.as_u64(), 2_000_000);
    assert_eq!(
        loaded.dump().get("http.body_limit").unwrap().origin,
        Origin::File(dir.path().join("default.toml"))
    );
    assert_eq!(loaded.database.pool_size, 5);
    assert_eq!(loaded.http.mode, Mode::Plain);
    assert_eq!(origin(&loaded, "http.mode"), "default");
    assert_eq!(
        loaded.dump().get("http.mode").unwrap().value,
        serde_json::json!("plain")
    );
}

#[test]
fn the_environment_file_is_chosen_by_the_prefix_env_variable_and_defaults_to_local() {
    let dir = config(&[
        ("default.toml", DATABASE),
        ("local.toml", "[http]\nport = 3001\n"),
        ("production.toml", "[http]\nport = 3002\n"),
    ]);

    let local = load(dir.path(), &[]).unwrap();
    let production = load(dir.path(), &[("APP_ENV", "production")]).unwrap();

    assert_eq!(local.environment(), "local");
    assert_eq!(local.http.port, 3001);
    assert_eq!(production.http.port, 3002);
    assert_eq!(
        production.dump().get("http.port").unwrap().origin,
        Origin::File(dir.path().join("production.toml"))
    );
}

#[test]
fn an_environment_name_that_could_escape_the_config_directory_is_refused() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(dir.path(), &[("APP_ENV", "../../etc/passwd")]).unwrap_err();

    assert_eq!(
        error.diagnostics()[0].origin(),
        &Origin::Env("APP_ENV".into())
    );
    assert!(error.to_string().contains("is not an environment name"));
}

#[test]
fn a_bad_environment_name_is_reported_with_the_other_problems() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(
        dir.path(),
        &[("APP_ENV", "prod uction"), ("APP__HTTP__PORT", "eighty")],
    )
    .unwrap_err();

    let text = error.to_string();
    assert!(text.contains("is not an environment name"), "{text}");
    assert!(
        error
            .diagnostics()
            .iter()
            .any(|diagnostic| diagnostic.key() == Some("http.port")),
        "{text}"
    );
}

#[test]
fn an_environment_without_a_file_beside_files_of_others_is_an_error_that_lists_them() {
    let dir = config(&[
        ("default.toml", DATABASE),
        ("production.toml", ""),
        ("staging.toml", ""),
    ]);

    let error = load(dir.path(), &[("APP_ENV", "prodution")]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.origin(), &Origin::Env("APP_ENV".into()));
    let text = error.to_string();
    assert!(
        text.contains("`prodution` names no settings file"),
        "{text}"
    );
    assert!(text.contains("prodution.toml does not exist"), "{text}");
    assert!(text.contains("(`production`, `staging` in"), "{text}");
    assert!(text.contains("it may be empty"), "{text}");
}

#[test]
fn an_environment_needs_no_file_when_no_environment_has_one() {
    // Configured by variables alone: only `default.toml`, or no directory.
    let dir = config(&[("default.toml", DATABASE)]);
    let loaded = load(dir.path(), &[("APP_ENV", "production")]).unwrap();
    assert_eq!(loaded.environment(), "production");

    let missing = dir.path().join("absent");
    let loaded = load(
        &missing,
        &[
            ("APP_ENV", "production"),
            ("APP__DATABASE__URL", "postgres://db/app"),
        ],
    )
    .unwrap();
    assert_eq!(loaded.environment(), "production");
}

#[test]
fn the_default_environment_needs_no_file_beside_files_of_others_named_or_not() {
    let dir = config(&[("default.toml", DATABASE), ("production.toml", "")]);

    assert_eq!(load(dir.path(), &[]).unwrap().environment(), "local");
    let named = load(dir.path(), &[("APP_ENV", "local")]).unwrap();
    assert_eq!(named.environment(), "local");
}

#[test]
fn toml_files_that_cannot_name_an_environment_are_not_environments() {
    let dir = config(&[
        ("default.toml", DATABASE),
        ("default.local.toml", ""),
        ("feature flags.toml", ""),
    ]);
    std::fs::create_dir(dir.path().join("staging.toml")).unwrap();

    let loaded = load(dir.path(), &[("APP_ENV", "production")]).unwrap();

    assert_eq!(loaded.environment(), "production");
}

#[test]
fn a_sections_path_after_one_underscore_is_an_error_naming_the_right_spelling() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(dir.path(), &[("APP_HTTP__PORT", "9000")]).unwrap_err();
    // Another service's prefix that starts like this one, and tools that
    // share it: no section of these settings.
    let loaded = load(
        dir.path(),
        &[
            ("APP_WORKER__HTTP__PORT", "1"),
            ("APP_DB__HOST", "db"),
            ("APP_NAME", "svc"),
        ],
    )
    .unwrap();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.origin(), &Origin::Env("APP_HTTP__PORT".into()));
    assert_eq!(
        diagnostic.help(),
        Some("rename it APP__HTTP__PORT, with two underscores after APP")
    );
    assert_eq!(loaded.http.port, 8080);
}

#[test]
fn one_underscore_too_few_and_a_broken_rule_are_reported_in_one_run() {
    // The port breaks a rule (`must be > 1024`), and the variable meant to
    // fix it is spelt with one underscore: both in one run, not the rule
    // only after the spelling is fixed.
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(
        dir.path(),
        &[("APP__HTTP__PORT", "80"), ("APP_HTTP__PORT", "9000")],
    )
    .unwrap_err();

    let origins: Vec<String> = error
        .diagnostics()
        .iter()
        .map(|d| d.origin().to_string())
        .collect();
    assert!(
        origins.contains(&"environment variable APP_HTTP__PORT".to_owned()),
        "{error}"
    );
    let keys: Vec<_> = error.diagnostics().iter().filter_map(|d| d.key()).collect();
    assert_eq!(keys, ["http.port"], "{error}");
}

#[test]
fn only_double_underscores_nest_so_snake_case_keys_stay_whole() {
    let dir = config(&[("default.toml", DATABASE)]);

    let loaded = load(
        dir.path(),
        &[
            ("APP__HTTP__READ_TIMEOUT", "250ms"),
            ("APP__HTTP__BODY_LIMIT", "512KB"),
            ("APP__DATABASE__POOL_SIZE", "7"),
        ],
    )
    .unwrap();

    assert_eq!(loaded.http.read_timeout, Duration::from_millis(250));
    assert_eq!(loaded.http.body_limit.as_u64(), 512_000);
    assert_eq!(loaded.database.pool_size, 7);
}

#[test]
fn environment_strings_are_read_as_the_type_of_their_field() {
    let dir = config(&[("default.toml", DATABASE)]);

    let loaded = load(
        dir.path(),
        &[
            ("APP__HTTP__MODE", "tls"),
            (
                "APP__HTTP__ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("APP__ADMIN__PIN", "1234"),
            ("APP__ADMIN__TOKEN", "007"),
        ],
    )
    .unwrap();

    assert_eq!(loaded.http.mode, Mode::Tls);
    assert_eq!(
        loaded.http.allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert_eq!(*loaded.admin.pin.as_ref().unwrap().expose_secret(), 1234);
    // A numeric-looking string stays the string it was, leading zero included.
    assert_eq!(loaded.admin.token.as_ref().unwrap().expose_secret(), "007");
}

#[test]
fn a_json_list_in_a_variable_is_a_list_or_refused_never_split_wrong() {
    let dir = config(&[("default.toml", DATABASE)]);

    let strings = load(
        dir.path(),
        &[(
            "APP__HTTP__ALLOWED_ORIGINS",
            r#"["https://a.example", "https://b.example,c"]"#,
        )],
    )
    .unwrap();
    let numbers = load(dir.path(), &[("APP__HTTP__ALLOWED_ORIGINS", "[1, 2]")]).unwrap_err();
    let bracketed = load(dir.path(), &[("APP__HTTP__ALLOWED_ORIGINS", "[::1]")]).unwrap();

    assert_eq!(
        strings.http.allowed_origins,
        ["https://a.example", "https://b.example,c"]
    );
    assert_eq!(numbers.diagnostics()[0].key(), Some("http.allowed_origins"));
    assert!(
        numbers
            .to_string()
            .contains("a list is written `a,b,c` here"),
        "{numbers}"
    );
    // Not JSON: one item, brackets and all.
    assert_eq!(bracketed.http.allowed_origins, ["[::1]"]);
}

#[test]
fn every_problem_of_a_load_is_reported_at_once() {
    // Arrange: problems in a file, in variables and in the code's demands.
    let dir = config(&[("default.toml", "[http]\nread_timeout = \"5 parsecs\"\n")]);

    // Act
    let error = load(
        dir.path(),
        &[
            ("APP__HTTP__PORT", "eighty"),
            ("APP__HTTP__BODY_LIMIT", "lots"),
            ("APP__HTTP__MODE", "tsl"),
            ("APP__HTTP__READ_TIMOUT", "5s"),
        ],
    )
    .unwrap_err();

    // Assert
    let found: Vec<(DiagnosticKind, &str)> = error
        .diagnostics()
        .iter()
        .map(|d| (d.kind(), d.key().unwrap()))
        .collect();
    assert_eq!(error.diagnostics().len(), 6, "{error}");
    for expected in [
        (DiagnosticKind::InvalidValue, "http.read_timeout"),
        (DiagnosticKind::InvalidValue, "http.port"),
        (DiagnosticKind::InvalidValue, "http.body_limit"),
        (DiagnosticKind::InvalidValue, "http.mode"),
        (DiagnosticKind::UnknownKey, "http.read_timout"),
        (DiagnosticKind::MissingKey, "database.url"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
    let text = error.to_string();
    assert!(text.contains("6 problems"), "{text}");
    assert!(text.contains("unknown unit `parsecs`"), "{text}");
    assert!(text.contains("did you mean `tls`?"), "{text}");
}

#[test]
fn each_invalid_value_names_its_key_origin_value_and_fix() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(dir.path(), &[("APP__HTTP__PORT", "99999")]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.key(), Some("http.port"));
    assert_eq!(diagnostic.origin(), &Origin::Env("APP__HTTP__PORT".into()));
    assert_eq!(diagnostic.value(), Some("\"99999\""));
    assert!(
        diagnostic.message().contains("u16"),
        "{}",
        diagnostic.message()
    );
    assert!(
        diagnostic
            .help()
            .unwrap()
            .contains("set APP__HTTP__PORT to a valid value"),
        "{diagnostic}"
    );
    assert!(
        diagnostic
            .help()
            .unwrap()
            .contains("it takes a whole number from 0 to 65535"),
        "{diagnostic}"
    );
}

#[test]
fn a_type_error_says_what_the_type_takes() {
    let dir = config(&[(
        "default.toml",
        "[database]\nurl = \"postgres://db/app\"\n[http]\nallowed_origins = 5\n",
    )]);

    let error = load(dir.path(), &[("APP__DATABASE__POOL_SIZE", "many")]).unwrap_err();

    let text = error.to_string();
    assert!(text.contains("it takes a whole number"), "{text}");
    assert!(
        text.contains("it takes a list: `a,b,c` in a variable or `--set`"),
        "{text}"
    );
}

#[test]
fn an_unknown_key_in_a_variable_is_an_error_with_a_suggestion_naming_the_variable() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(dir.path(), &[("APP__HTTP__READ_TIMOUT", "5s")]).unwrap_err();

    assert_eq!(error.diagnostics().len(), 1);
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.kind(), DiagnosticKind::UnknownKey);
    assert_eq!(diagnostic.key(), Some("http.read_timout"));
    assert_eq!(
        diagnostic.origin(),
        &Origin::Env("APP__HTTP__READ_TIMOUT".into())
    );
    assert_eq!(
        diagnostic.help(),
        Some("did you mean `http.read_timeout` (APP__HTTP__READ_TIMEOUT)?")
    );
}

#[test]
fn a_misspelt_section_in_a_variable_names_that_variable_and_the_right_one() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(dir.path(), &[("APP__HTPP__PORT", "9000")]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.key(), Some("htpp"), "{error}");
    assert_eq!(diagnostic.origin(), &Origin::Env("APP__HTPP__PORT".into()));
    assert_eq!(
        diagnostic.help(),
        Some("did you mean `http` (APP__HTTP__PORT)?")
    );
}

#[derive(Debug, Deserialize, Serialize)]
struct Ports {
    ports: Vec<u16>,
}

impl Validate for Ports {}

#[test]
fn a_bad_item_of_a_list_names_the_lists_variable_or_override() {
    let dir = config(&[]);

    let from_env = loader(dir.path(), &[("APP__PORTS", "80,abc")])
        .load::<Ports>()
        .unwrap_err();
    let from_cli = loader(dir.path(), &[])
        .set("ports", "80,abc")
        .load::<Ports>()
        .unwrap_err();

    let diagnostic = &from_env.diagnostics()[0];
    assert_eq!(
        diagnostic.origin(),
        &Origin::Env("APP__PORTS".into()),
        "{from_env}"
    );
    assert_eq!(
        diagnostic.help(),
        Some(
            "set APP__PORTS to a valid value, or unset it; it takes a whole number from 0 to 65535"
        )
    );
    let diagnostic = &from_cli.diagnostics()[0];
    assert_eq!(
        diagnostic.origin(),
        &Origin::CommandLine("ports".into()),
        "{from_cli}"
    );
    assert_eq!(
        diagnostic.help(),
        Some("fix --set ports=…; it takes a whole number from 0 to 65535")
    );
}

#[test]
fn a_decimal_for_text_is_refused_rather_than_rewritten() {
    let dir = config(&[("default.toml", "[database]\nurl = 1.10\n")]);

    let error = load(dir.path(), &[]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.key(), Some("database.url"), "{error}");
    assert_eq!(diagnostic.kind(), DiagnosticKind::InvalidValue);
}

#[test]
fn an_unknown_key_in_a_file_names_the_file() {
    let dir = config(&[("default.toml", "[database]\nurl = \"x\"\npool_sise = 3\n")]);

    let error = load(dir.path(), &[]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.key(), Some("database.pool_sise"));
    assert_eq!(
        diagnostic.origin(),
        &Origin::File(dir.path().join("default.toml"))
    );
    assert_eq!(
        diagnostic.help(),
        Some("did you mean `database.pool_size`?")
    );
}

#[test]
fn unknown_keys_below_a_flattened_section_are_found_too() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Outer {
        #[serde(flatten)]
        ops: Ops,
        name: Option<String>,
    }
    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct Ops {
        server: Server,
    }
    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct Server {
        addr: String,
    }
    impl Validate for Outer {}
    let dir = config(&[]);

    let error = loader(
        dir.path(),
        &[
            ("APP__SERVER__ADR", "127.0.0.1:1"),
            ("APP__SERVR__ADDR", "x"),
        ],
    )
    .load::<Outer>()
    .unwrap_err();

    let keys: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| d.key().unwrap())
        .collect();
    assert_eq!(keys, ["server.adr", "servr"], "{error}");
    assert_eq!(
        error.diagnostics()[0].help(),
        Some("did you mean `server.addr` (APP__SERVER__ADDR)?")
    );
}

/// A library's sections, loaded beside a service's own with `load_with`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct Library {
    server: LibraryServer,
    admin: Admin,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct LibraryServer {
    addr: std::net::SocketAddr,
    workers: usize,
}

impl Default for LibraryServer {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 8080).into(),
            workers: 4,
        }
    }
}

impl Validate for Library {
    fn validate(&self, v: &mut Violations) {
        if self.server.workers == 0 {
            v.add("server.workers", "must be at least 1");
        }
    }
}

#[test]
fn two_settings_types_share_one_namespace_each_taking_its_keys() {
    let dir = config(&[("default.toml", DATABASE)]);

    let loaded = loader(
        dir.path(),
        &[("APP__SERVER__WORKERS", "8"), ("APP__HTTP__PORT", "9000")],
    )
    .load_with::<Library, Settings>()
    .unwrap();

    let (library, service) = (&loaded.0, &loaded.1);
    assert_eq!(library.server.workers, 8);
    assert_eq!(service.http.port, 9000);
    assert_eq!(
        origin_of(loaded.dump(), "server.workers"),
        "environment variable APP__SERVER__WORKERS"
    );
    assert_eq!(
        origin_of(loaded.dump(), "database.url"),
        format!("file {}", dir.path().join("default.toml").display())
    );
}

fn origin_of(dump: &opsready_settings::Dump, key: &str) -> String {
    dump.get(key).unwrap().origin.to_string()
}

#[test]
fn with_two_settings_types_errors_keep_their_key_and_origin_and_typos_are_caught() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = loader(
        dir.path(),
        &[
            ("APP__SERVER__ADDR", "not-an-address"),
            ("APP__SERVER__WORKRS", "8"),
            ("APP__NOT_A_SECTION", "1"),
        ],
    )
    .load_with::<Library, Settings>()
    .unwrap_err();

    let found: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| (d.kind(), d.key().unwrap(), d.origin().to_string()))
        .collect();
    assert_eq!(
        found,
        [
            (
                DiagnosticKind::InvalidValue,
                "server.addr",
                "environment variable APP__SERVER__ADDR".to_owned()
            ),
            (
                DiagnosticKind::UnknownKey,
                "not_a_section",
                "environment variable APP__NOT_A_SECTION".to_owned()
            ),
            (
                DiagnosticKind::UnknownKey,
                "server.workrs",
                "environment variable APP__SERVER__WORKRS".to_owned()
            ),
        ],
        "{error}"
    );
    assert_eq!(
        error.diagnostics()[2].help(),
        Some("did you mean `server.workers` (APP__SERVER__WORKERS)?")
    );
}

#[test]
fn with_two_settings_types_both_sets_of_rules_run() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = loader(
        dir.path(),
        &[("APP__SERVER__WORKERS", "0"), ("APP__HTTP__PORT", "80")],
    )
    .load_with::<Library, Settings>()
    .unwrap_err();

    let keys: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| d.key().unwrap())
        .collect();
    assert_eq!(keys, ["server.workers", "http.port"]);
}

#[test]
fn a_key_given_by_its_alias_is_accepted() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Aliased {
        #[serde(alias = "listen")]
        addr: String,
    }
    impl Validate for Aliased {}
    let dir = config(&[]);

    let loaded = loader(dir.path(), &[("APP__LISTEN", "127.0.0.1:1")])
        .load::<Aliased>()
        .unwrap();

    assert_eq!(loaded.addr, "127.0.0.1:1");
}

#[test]
fn a_missing_required_key_names_the_variable_that_would_set_it() {
    let dir = config(&[]);

    let error = load(dir.path(), &[]).unwrap_err();

    assert_eq!(error.diagnostics().len(), 1, "{error}");
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.kind(), DiagnosticKind::MissingKey);
    assert_eq!(diagnostic.key(), Some("database.url"));
    let help = diagnostic.help().unwrap();
    assert!(
        help.contains("set the environment variable APP__DATABASE__URL"),
        "{help}"
    );
    assert!(help.contains("under `[database]`"), "{help}");
}

#[test]
fn several_missing_keys_are_all_reported() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Needs {
        first: String,
        second: std::net::SocketAddr,
        third: Inner,
    }
    #[derive(Debug, Deserialize, Serialize)]
    struct Inner {
        timeout: Duration,
        retries: u8,
    }
    impl Validate for Needs {}
    let dir = config(&[]);

    let error = loader(dir.path(), &[]).load::<Needs>().unwrap_err();

    let keys: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| d.key().unwrap())
        .collect();
    // A missing section is reported key by key, as a person fixes it.
    assert_eq!(
        keys,
        ["first", "second", "third.timeout", "third.retries"],
        "{error}"
    );
}

#[test]
fn a_missing_required_map_is_missing_not_empty() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Needs {
        upstreams: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        labels: std::collections::HashMap<String, String>,
        limits: Limits,
    }
    // A section whose keys all have defaults is not missing.
    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct Limits {
        per_host: u32,
    }
    impl Validate for Needs {}
    let dir = config(&[]);

    let error = loader(dir.path(), &[]).load::<Needs>().unwrap_err();
    let given = loader(dir.path(), &[("APP__UPSTREAMS__BILLING", "http://billing")])
        .load::<Needs>()
        .unwrap();

    let keys: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| (d.kind(), d.key().unwrap()))
        .collect();
    // An empty map would start a service with no upstreams at all.
    assert_eq!(keys, [(DiagnosticKind::MissingKey, "upstreams")], "{error}");
    let help = error.diagnostics()[0].help().unwrap();
    assert!(
        help.contains("set a variable APP__UPSTREAMS__NAME per entry"),
        "{help}"
    );
    assert!(
        help.contains("APP__UPSTREAMS__NAME__KEY when entries are tables"),
        "{help}"
    );
    assert!(help.contains("a `[upstreams]` table"), "{help}");
    assert_eq!(given.upstreams["billing"], "http://billing");
    assert!(given.labels.is_empty());
}

#[test]
fn a_malformed_file_is_an_error_naming_the_file_and_line() {
    let dir = config(&[(
        "default.toml",
        "[database]\nurl = \"x\"\n[http]\nport = = 3\n",
    )]);

    let error = load(dir.path(), &[]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.kind(), DiagnosticKind::Source);
    assert_eq!(
        diagnostic.origin(),
        &Origin::File(dir.path().join("default.toml"))
    );
    assert!(diagnostic.message().contains("line 4"), "{error}");
}

#[test]
fn an_unreadable_file_is_an_error_naming_the_file() {
    let dir = config(&[]);
    std::fs::create_dir(dir.path().join("default.toml")).unwrap();

    let error = load(dir.path(), &[]).unwrap_err();

    assert_eq!(
        error.diagnostics()[0].origin(),
        &Origin::File(dir.path().join("default.toml"))
    );
    assert!(error.to_string().contains("cannot be read"), "{error}");
}

#[test]
fn a_syntax_error_on_a_secrets_line_names_the_line_but_not_the_secret() {
    // A backslash in a basic string is an invalid escape: common in
    // passwords.
    let dir = config(&[(
        "default.toml",
        "[database]\nurl = \"x\"\npassword = \"p4ss\\w0rd\"\n",
    )]);

    let error = load(dir.path(), &[]).unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.kind(), DiagnosticKind::Source);
    assert!(diagnostic.message().contains("line 3"), "{error}");
    assert!(!error.to_string().contains("p4ss"), "{error}");
    assert!(!format!("{error:?}").contains("p4ss"), "{error:?}");
}

#[test]
fn a_config_file_that_is_a_link_to_nothing_is_an_error_not_an_absent_file() {
    let dir = config(&[]);
    std::os::unix::fs::symlink(
        dir.path().join("gone/production.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();

    let error = load(dir.path(), &[]).unwrap_err();

    assert_eq!(
        error.diagnostics()[0].origin(),
        &Origin::File(dir.path().join("default.toml"))
    );
    assert!(error.to_string().contains("link to nothing"), "{error}");
}

#[test]
fn debug_output_of_a_loader_and_a_command_line_masks_credentials() {
    let cli = CommandLine::parse([
        "--set",
        "database.password=hunter2",
        "--set",
        "database.url=postgres://app:hunter3@db/app",
        "--set",
        "http.port=9000",
    ])
    .unwrap();
    let loader = Loader::new("APP")
        .env([("APP__DATABASE__PASSWORD", "hunter4")])
        .command_line(&cli);

    for shown in [format!("{cli:?}"), format!("{loader:?}")] {
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("9000"), "{shown}");
        assert!(
            shown.contains("postgres://app:[REDACTED]@db/app"),
            "{shown}"
        );
    }
}

#[test]
fn a_missing_section_with_flattened_keys_that_all_have_defaults_loads() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Needs {
        pool: Pool,
    }
    #[derive(Debug, Default, Deserialize, Serialize)]
    struct Pool {
        #[serde(default)]
        size: u32,
        #[serde(flatten)]
        extra: std::collections::BTreeMap<String, String>,
    }
    impl Validate for Needs {}
    let dir = config(&[]);

    let loaded = loader(dir.path(), &[]).load::<Needs>().unwrap();

    assert_eq!(loaded.pool.size, 0);
    assert!(loaded.pool.extra.is_empty());
}

#[test]
fn an_override_given_twice_takes_the_later_value() {
    let dir = config(&[("default.toml", DATABASE)]);
    let cli = CommandLine::parse(["--set", "http.port=9000", "--set", "http.port=9001"]).unwrap();

    // The code's override, then the operator's command line.
    let loaded = loader(dir.path(), &[])
        .set("http.port", "8000")
        .command_line(&cli)
        .load::<Settings>()
        .unwrap();
    // One sets a value, the other a key inside it: no later value to
    // take, in either order.
    let clash = |first: (&str, &str), second: (&str, &str)| {
        let error = loader(dir.path(), &[])
            .set(first.0, first.1)
            .set(second.0, second.1)
            .load::<Settings>()
            .unwrap_err();
        let diagnostic = &error.diagnostics()[0];
        assert_eq!(diagnostic.kind(), DiagnosticKind::Source, "{error}");
        diagnostic.message().to_owned()
    };
    let value_first = clash(("http", "off"), ("http.port", "8000"));
    let table_first = clash(("http.port", "8000"), ("http", "off"));

    assert_eq!(loaded.http.port, 9001);
    assert_eq!(origin(&loaded, "http.port"), "--set http.port");
    assert!(
        value_first.contains("conflicts with the override of `http`: one sets `http`"),
        "{value_first}"
    );
    assert!(
        table_first.contains("conflicts with the override of `http.port`: one sets `http`"),
        "{table_first}"
    );
}

#[test]
fn missing_files_are_fine() {
    let dir = config(&[]);

    let loaded = load(dir.path(), &[("APP__DATABASE__URL", "postgres://db/app")]).unwrap();

    assert_eq!(loaded.database.url, "postgres://db/app");
    assert_eq!(loaded.http.port, 8080);
}

#[test]
fn durations_and_sizes_reject_garbage_with_a_clear_message() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(
        dir.path(),
        &[
            ("APP__HTTP__READ_TIMEOUT", "30"),
            ("APP__HTTP__BODY_LIMIT", "10 parsecs"),
        ],
    )
    .unwrap_err();

    let message = |key: &str| {
        error
            .diagnostics()
            .iter()
            .find(|d| d.key() == Some(key))
            .unwrap()
            .message()
            .to_owned()
    };
    assert!(message("http.read_timeout").contains("has no unit"));
    assert!(message("http.read_timeout").contains("`30s`"));
    assert!(message("http.body_limit").contains("unknown unit `parsecs`"));
    assert!(message("http.body_limit").contains("MiB"));
}

#[test]
fn validation_rules_report_key_origin_and_value() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(
        dir.path(),
        &[
            ("APP__HTTP__PORT", "80"),
            ("APP__DATABASE__POOL_SIZE", "500"),
        ],
    )
    .unwrap_err();

    assert_eq!(error.diagnostics().len(), 2, "{error}");
    let port = &error.diagnostics()[0];
    assert_eq!(port.kind(), DiagnosticKind::Violation);
    assert_eq!(port.key(), Some("http.port"));
    assert_eq!(port.message(), "must be > 1024");
    assert_eq!(port.origin(), &Origin::Env("APP__HTTP__PORT".into()));
    assert_eq!(port.value(), Some("\"80\""));
    assert_eq!(error.diagnostics()[1].key(), Some("database.pool_size"));
}

#[test]
fn a_rule_broken_by_a_default_says_which_variable_would_fix_it() {
    #[derive(Debug, Deserialize, Serialize)]
    #[serde(default)]
    struct Shutdown {
        drain_delay: Duration,
        deadline: Duration,
    }
    impl Default for Shutdown {
        fn default() -> Self {
            Self {
                drain_delay: Duration::from_secs(5),
                deadline: Duration::from_secs(30),
            }
        }
    }
    impl Validate for Shutdown {
        fn validate(&self, v: &mut Violations) {
            if self.drain_delay >= self.deadline {
                v.add("drain_delay", "must be shorter than deadline");
            }
        }
    }
    let dir = config(&[]);

    let error = loader(dir.path(), &[("APP__DEADLINE", "2s")])
        .load::<Shutdown>()
        .unwrap_err();

    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.key(), Some("drain_delay"));
    assert_eq!(diagnostic.origin(), &Origin::Default);
    assert_eq!(
        diagnostic.help(),
        Some("this is the default; set APP__DRAIN_DELAY (or `drain_delay` in a file)")
    );
}

#[test]
fn validation_waits_until_every_value_parses() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(
        dir.path(),
        &[("APP__HTTP__PORT", "80"), ("APP__HTTP__MODE", "nope")],
    )
    .unwrap_err();

    assert_eq!(error.diagnostics().len(), 1, "{error}");
    assert_eq!(error.diagnostics()[0].key(), Some("http.mode"));
}

#[test]
fn an_unknown_key_does_not_hold_back_the_rules_of_the_values_that_parse() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = load(
        dir.path(),
        &[("APP__HTTP__PORT", "80"), ("APP__HTTP__READ_TIMOUT", "5s")],
    )
    .unwrap_err();

    // One round of fixes: the typo and the broken rule, both at once.
    let mut keys: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|diagnostic| diagnostic.key().unwrap_or_default().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["http.port", "http.read_timout"], "{error}");
}

const SECRET: &str = "hunter2-s3cr3t";

#[test]
fn secrets_never_appear_in_debug_display_or_the_dump() {
    let dir = config(&[(
        "default.toml",
        "[database]\nurl = \"postgres://app:hunter2-s3cr3t@db/app\"\n",
    )]);

    let loaded = load(dir.path(), &[("APP__ADMIN__TOKEN", SECRET)]).unwrap();

    assert_eq!(loaded.admin.token.as_ref().unwrap().expose_secret(), SECRET);
    for printed in [
        format!("{:?}", loaded.admin),
        format!("{}", loaded.admin.token.as_ref().unwrap()),
        loaded.dump().to_json_pretty(),
        serde_json::to_string(&*loaded).unwrap().replace(
            // The URL is a plain string in the settings: only the dump masks it.
            "postgres://app:hunter2-s3cr3t@db/app",
            "",
        ),
    ] {
        assert!(!printed.contains(SECRET), "{printed}");
    }
    assert_eq!(
        loaded.dump().get("admin.token").unwrap().value,
        serde_json::json!("[REDACTED]")
    );
    assert_eq!(
        loaded.dump().get("database.url").unwrap().value,
        serde_json::json!("postgres://app:[REDACTED]@db/app")
    );
}

#[test]
fn secrets_never_appear_in_load_errors() {
    let dir = config(&[("default.toml", DATABASE)]);

    // A secret that does not parse, a secret-looking unknown key, and a
    // credential-named plain key.
    let error = load(
        dir.path(),
        &[
            ("APP__ADMIN__PIN", SECRET),
            ("APP__ADMIN__TOKN", SECRET),
            ("APP__DATABASE__URL", "postgres://app:hunter2-s3cr3t@db/app"),
            ("APP__DATABASE__POOL_SIZE", "-1"),
        ],
    )
    .unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let pin = error
        .diagnostics()
        .iter()
        .find(|d| d.key() == Some("admin.pin"))
        .unwrap();
    assert_eq!(pin.value(), Some("[REDACTED]"));
    assert_eq!(pin.origin(), &Origin::Env("APP__ADMIN__PIN".into()));
}

/// A type whose parser quotes what it refused, as many do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
struct Upstream(String);

impl TryFrom<String> for Upstream {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text.starts_with("http") {
            Ok(Self(text))
        } else {
            Err(format!("`{text}` is not an http upstream"))
        }
    }
}

impl From<Upstream> for String {
    fn from(upstream: Upstream) -> Self {
        upstream.0
    }
}

#[derive(Debug, Deserialize, Serialize)]
struct WithUpstream {
    upstream: Upstream,
}

impl Validate for WithUpstream {}

#[test]
fn a_parsers_reason_that_quotes_a_credential_is_masked() {
    let dir = config(&[]);

    let error = loader(
        dir.path(),
        &[("APP__UPSTREAM", "postgres://app:hunter2-s3cr3t@db/app")],
    )
    .load::<WithUpstream>()
    .unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert!(text.contains("is not an http upstream"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn malformed_variable_names_and_overrides_are_reported() {
    let dir = config(&[("default.toml", DATABASE)]);

    let error = loader(dir.path(), &[("APP__HTTP____PORT", "1")])
        .set("http..port", "1")
        .load::<Settings>()
        .unwrap_err();

    let origins: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| d.origin().clone())
        .collect();
    assert_eq!(
        origins,
        [
            Origin::Env("APP__HTTP____PORT".into()),
            Origin::CommandLine("http..port".into())
        ]
    );
}

/// Runs this test binary again as a child that calls `load_or_exit`, so the
/// exit status and output of a real process can be checked.
fn run_child(test: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = config(&[("default.toml", DATABASE)]);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("OPSREADY_SETTINGS_CHILD_ARGS", args.join("\u{1f}"))
        .env("OPSREADY_SETTINGS_CHILD_DIR", dir.path())
        .env_remove("APP_ENV");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// The child's side of [`run_child`]; does nothing when run as a test.
#[test]
fn child_process() {
    let Ok(args) = std::env::var("OPSREADY_SETTINGS_CHILD_ARGS") else {
        return;
    };
    let dir = std::env::var("OPSREADY_SETTINGS_CHILD_DIR").unwrap();
    let args: Vec<&str> = args.split('\u{1f}').filter(|a| !a.is_empty()).collect();
    let command_line = match CommandLine::parse(&args) {
        Ok(command_line) => command_line,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(opsready_settings::EX_USAGE)
        }
    };
    let loaded = Loader::new("APP")
        .config_dir(dir)
        .load_or_exit::<Settings>(&command_line);
    println!("running with port {}", loaded.http.port);
    std::process::exit(0);
}

#[test]
fn bad_settings_exit_with_status_78_and_say_why() {
    let output = run_child("child_process", &[], &[("APP__HTTP__PORT", "eighty")]);

    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http.port"), "{stderr}");
    assert!(stderr.contains("APP__HTTP__PORT"), "{stderr}");
}

#[test]
fn check_config_validates_prints_and_exits_zero() {
    let output = run_child(
        "child_process",
        &["--check-config", "--set", "http.port=9001"],
        &[("APP__ADMIN__TOKEN", SECRET)],
    );

    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find('{').unwrap();
    let end = stdout.rfind('}').unwrap();
    let dump: serde_json::Value = serde_json::from_str(&stdout[start..=end]).unwrap();
    assert_eq!(dump["http.port"]["value"], 9001);
    assert_eq!(dump["http.port"]["origin"], "--set http.port");
    assert_eq!(dump["admin.token"]["value"], "[REDACTED]");
    assert!(!stdout.contains(SECRET));
    assert!(!stdout.contains("running with port"));
}

#[test]
fn check_config_exits_78_on_bad_settings() {
    let output = run_child(
        "child_process",
        &["--check-config", "--set", "http.port=80"],
        &[],
    );

    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be > 1024"));
}

#[test]
fn good_settings_run_the_service() {
    let output = run_child("child_process", &["--set=http.port=9002"], &[]);

    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("running with port 9002"));
}

#[test]
fn a_rules_message_quoting_a_secret_or_a_urls_password_is_masked() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Quoting {
        endpoint: String,
        api: Api,
    }
    #[derive(Debug, Deserialize, Serialize)]
    struct Api {
        key: Secret<String>,
    }
    impl Validate for Quoting {
        fn validate(&self, v: &mut Violations) {
            v.add(
                "endpoint",
                format!("give the base address, not `{}`", self.endpoint),
            );
            v.add(
                "api.key",
                format!("`{}` is too short", self.api.key.expose_secret()),
            );
            // A rule on the section, quoting the secret below it escaped.
            v.add(
                "api",
                format!("key {:?} was revoked", self.api.key.expose_secret()),
            );
        }
    }
    let dir = config(&[]);

    let error = loader(
        dir.path(),
        &[
            (
                "APP__ENDPOINT",
                "https://user:RULE-SECRET-1@otel:4318/v1/traces",
            ),
            ("APP__API__KEY", "RULE\"SECRET-2"),
        ],
    )
    .load::<Quoting>()
    .unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert_eq!(error.diagnostics().len(), 3, "{text}");
    assert!(!text.contains("RULE-SECRET-1"), "{text}");
    assert!(!text.contains("SECRET-2"), "{text}");
    assert!(text.contains("too short"), "{text}");
    assert!(text.contains("was revoked"), "{text}");
}

#[test]
fn a_bad_key_of_a_map_of_secrets_does_not_show_the_secret() {
    #[derive(Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
    #[serde(rename_all = "snake_case")]
    enum Region {
        EuWest,
        UsEast,
    }
    #[derive(Debug, Deserialize, Serialize)]
    struct Regional {
        region_creds: std::collections::HashMap<Region, Secret<String>>,
    }
    impl Validate for Regional {}
    let dir = config(&[]);

    let error = loader(
        dir.path(),
        &[("APP__REGION_CREDS__EU_WESTT", "KEY-SECRET-3")],
    )
    .load::<Regional>()
    .unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert!(!text.contains("KEY-SECRET-3"), "{text}");
    assert!(text.contains("region_creds.eu_westt"), "{text}");
}

#[test]
fn a_required_field_that_refuses_zero_does_not_hide_the_problems_after_it() {
    // Keys are read in order: `workers` before `zone`.
    #[derive(Debug, Deserialize, Serialize)]
    struct Workers {
        workers: std::num::NonZeroUsize,
        zone: u16,
    }
    impl Validate for Workers {}
    let dir = config(&[]);

    let error = loader(
        dir.path(),
        &[
            ("APP__WORKERS", "0"),
            ("APP__ZONE", "eighty"),
            ("APP__ZONR", "1"),
        ],
    )
    .load::<Workers>()
    .unwrap_err();
    // Missing, it is a stand-in that must not be 0.
    let missing = loader(dir.path(), &[("APP__ZONE", "eighty"), ("APP__ZONR", "1")])
        .load::<Workers>()
        .unwrap_err();

    let keys = |error: &LoadError| -> Vec<String> {
        let mut keys: Vec<String> = error
            .diagnostics()
            .iter()
            .filter_map(|d| d.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&error), ["workers", "zone", "zonr"], "{error}");
    assert_eq!(keys(&missing), ["workers", "zone", "zonr"], "{missing}");
}

#[test]
fn a_field_not_serialized_is_read_when_set_but_left_out_of_the_dump() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Hidden {
        #[serde(skip_serializing, default)]
        internal: u32,
    }
    impl Validate for Hidden {}
    let dir = config(&[]);

    let loaded = loader(dir.path(), &[("APP__INTERNAL", "7")])
        .load::<Hidden>()
        .unwrap();

    assert_eq!(loaded.internal, 7);
    assert!(loaded.dump().get("internal").is_none());
}

#[cfg(unix)]
#[test]
fn an_argument_that_is_not_utf8_is_refused_without_its_value() {
    use std::os::unix::ffi::OsStringExt as _;
    let mut bytes = b"db.password=ARG-SECRET-".to_vec();
    bytes.push(0xff);
    let arg = std::ffi::OsString::from_vec(bytes);

    let error = CommandLine::parse([std::ffi::OsString::from("--set"), arg]).unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert!(text.contains("db.password"), "{text}");
    assert!(!text.contains("ARG-SECRET"), "{text}");
}

#[test]
fn an_unknown_argument_is_quoted_without_its_value() {
    let error = CommandLine::parse(["--sett=db.password=ARG-SECRET-5"]).unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert!(text.contains("--sett=…"), "{text}");
    assert!(!text.contains("ARG-SECRET"), "{text}");
}

#[test]
fn a_value_given_under_an_alias_is_dumped_and_reported_with_its_origin() {
    #[derive(Debug, Deserialize, Serialize)]
    struct Renamed {
        #[serde(alias = "listen")]
        addr: String,
        #[serde(default)]
        backlog: u32,
        #[serde(alias = "old_http", default)]
        http: RenamedHttp,
    }
    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct RenamedHttp {
        port: u16,
    }
    impl Validate for Renamed {
        fn validate(&self, v: &mut Violations) {
            if self.http.port == 1 {
                v.add("http.port", "must not be 1");
            }
        }
    }
    let dir = config(&[]);
    let env = [
        ("APP__LISTEN", "127.0.0.1:1"),
        ("APP__OLD_HTTP__PORT", "80"),
    ];

    let loaded = loader(dir.path(), &env).load::<Renamed>().unwrap();
    let error = loader(
        dir.path(),
        &[("APP__OLD_HTTP__PORT", "1"), ("APP__LISTEN", "x")],
    )
    .load::<Renamed>()
    .unwrap_err();

    let origin = |key: &str| loaded.dump().get(key).unwrap().origin.to_string();
    assert_eq!(origin("addr"), "environment variable APP__LISTEN");
    assert_eq!(
        origin("http.port"),
        "environment variable APP__OLD_HTTP__PORT"
    );
    assert_eq!(origin("backlog"), "default");
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.key(), Some("http.port"));
    assert_eq!(
        diagnostic.origin().to_string(),
        "environment variable APP__OLD_HTTP__PORT",
        "{error}"
    );
}

#[test]
fn a_value_split_off_by_the_shell_is_not_echoed() {
    // `--set db.password=$PW` with a space in $PW, unquoted.
    let error = CommandLine::parse(["--set", "db.password=first", "SPLIT-SECRET-6"]).unwrap_err();

    let text = format!("{error}\n{error:?}");
    assert!(!text.contains("SPLIT-SECRET"), "{text}");
    assert!(text.contains("quote"), "{text}");
}

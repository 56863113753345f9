//! [`Loader`]: the layers, in order, into a typed struct, with every problem
//! reported at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Tag, Value};
use figment::{Figment, Provider};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::de::{self, De, EMPTY_TABLE, ErrorKind, PLACEHOLDER_MODES, Session, is_within, join};
use crate::dump::{Aliases, Dump, find, is_sensitive_key, is_under_sensitive_key};
use crate::error::{Diagnostic, DiagnosticKind, EX_USAGE, LoadError};
use crate::origin::Origin;
use crate::secret::REDACTED;
use crate::sources::StringLayer;
use crate::validate::{Validate, Violations};

/// Loads settings from, lowest first: defaults in code (serde defaults),
/// `config/default.toml`, `config/{env}.toml`, environment variables
/// `{PREFIX}__SECTION__KEY`, and overrides ([`Loader::set`], `--set`).
///
/// `env` is `{PREFIX}_ENV` (single underscore), `local` when unset.
///
/// ```
/// use opsready_settings::{Duration, Loader, Validate};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, Serialize)]
/// struct Settings {
///     #[serde(default)]
///     http: Http,
/// }
///
/// #[derive(Deserialize, Serialize)]
/// #[serde(default)]
/// struct Http {
///     read_timeout: Duration,
///     port: u16,
/// }
///
/// impl Default for Http {
///     fn default() -> Self {
///         Self { read_timeout: Duration::from_secs(30), port: 8080 }
///     }
/// }
///
/// impl Validate for Settings {}
///
/// let loaded = Loader::new("MINIMAL")
///     .env([("MINIMAL__HTTP__READ_TIMEOUT", "250ms")])
///     .set("http.port", "9000")
///     .load::<Settings>()
///     .unwrap();
/// assert_eq!(loaded.http.read_timeout, Duration::from_millis(250));
/// assert_eq!(loaded.http.port, 9000);
/// assert_eq!(
///     loaded.dump().get("http.read_timeout").unwrap().origin.to_string(),
///     "environment variable MINIMAL__HTTP__READ_TIMEOUT"
/// );
/// ```
#[derive(Clone)]
pub struct Loader {
    prefix: String,
    config_dir: PathBuf,
    env: Option<Vec<(String, String)>>,
    overrides: Vec<(String, String)>,
}

impl Loader {
    /// A loader for the variables of `prefix` (upper-cased: `minimal` reads
    /// `MINIMAL__…`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into().to_ascii_uppercase(),
            config_dir: PathBuf::from("config"),
            env: None,
            overrides: Vec::new(),
        }
    }

    /// The directory of `default.toml` and `{env}.toml`. Missing files are
    /// skipped. Defaults to `config`, relative to the working directory.
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = dir.into();
        self
    }

    /// Reads these variables instead of the process environment (for tests,
    /// which must not change the environment of a process they share). A
    /// name given twice takes its last value. Defaults to the process
    /// environment.
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Overrides one dotted key, above every other layer, as `--set key=value`
    /// does. The value is read as the key's type. A key overridden twice
    /// takes the later value: call [`command_line`](Self::command_line)
    /// after `set`, and an operator's `--set` wins over the code's.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Applies the `--set` overrides of a parsed command line.
    pub fn command_line(mut self, command_line: &CommandLine) -> Self {
        self.overrides
            .extend(command_line.overrides.iter().cloned());
        self
    }

    fn vars(&self) -> (Vec<(String, String)>, Vec<Diagnostic>) {
        let mut problems = Vec::new();
        let mut vars: Vec<(String, String)> = match &self.env {
            // A variable given twice takes its last value, as in a shell.
            Some(vars) => vars
                .iter()
                .cloned()
                .collect::<BTreeMap<String, String>>()
                .into_iter()
                .collect(),
            None => std::env::vars_os()
                .filter_map(|(name, value)| {
                    let name = name.into_string().ok()?;
                    if !name.starts_with(&self.prefix) {
                        return None;
                    }
                    match value.into_string() {
                        Ok(value) => Some((name, value)),
                        // Only a setting's variable, or the environment's:
                        // `APPLICATION_X` is not one of `APP`'s.
                        Err(_)
                            if !(name
                                .strip_prefix(&self.prefix)
                                .is_some_and(|rest| rest.starts_with("__") || rest == "_ENV")) =>
                        {
                            None
                        }
                        Err(_) => {
                            problems.push(Diagnostic {
                                kind: DiagnosticKind::Source,
                                key: None,
                                origin: Origin::Env(name),
                                message: "the value is not valid UTF-8".to_owned(),
                                value: None,
                                help: Some("set it to UTF-8 text".to_owned()),
                            });
                            None
                        }
                    }
                })
                .collect(),
        };
        vars.sort();
        (vars, problems)
    }

    /// Loads, validates and returns the settings with their dump, or every
    /// problem found.
    pub fn load<T>(&self) -> Result<Loaded<T>, LoadError>
    where
        T: DeserializeOwned + Serialize + Validate,
    {
        self.load_with::<T, Nothing>()
            .map(|loaded| loaded.map(|(settings, _)| settings))
    }

    /// Loads two settings types from the same layers, each taking its own
    /// keys: a key is unknown only if neither takes it. This is how a
    /// library's sections (say, `server` and `admin`) and a service's own
    /// share one namespace (`APP__SERVER__ADDR`, `APP__DATABASE__URL`)
    /// without `#[serde(flatten)]`, which would lose the key and origin of
    /// errors in the flattened part.
    ///
    /// ```
    /// use opsready_settings::{Loader, Validate};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Deserialize, Serialize, Default)]
    /// #[serde(default)]
    /// struct Library { server: Server }
    /// #[derive(Debug, Deserialize, Serialize, Default)]
    /// #[serde(default)]
    /// struct Server { port: u16 }
    /// #[derive(Debug, Deserialize, Serialize)]
    /// struct Service { greeting: String }
    /// impl Validate for Library {}
    /// impl Validate for Service {}
    ///
    /// let loaded = Loader::new("APP")
    ///     .env([("APP__SERVER__PORT", "9000"), ("APP__GREETING", "hi")])
    ///     .load_with::<Library, Service>()
    ///     .unwrap();
    /// let (library, service) = loaded.into_inner();
    /// assert_eq!((library.server.port, service.greeting.as_str()), (9000, "hi"));
    ///
    /// let error = Loader::new("APP")
    ///     .env([("APP__SERVER__PROT", "9000"), ("APP__GREETING", "hi")])
    ///     .load_with::<Library, Service>()
    ///     .unwrap_err();
    /// assert_eq!(error.diagnostics()[0].key(), Some("server.prot"));
    /// ```
    pub fn load_with<A, B>(&self) -> Result<Loaded<(A, B)>, LoadError>
    where
        A: DeserializeOwned + Serialize + Validate,
        B: DeserializeOwned + Serialize + Validate,
    {
        let (vars, mut diagnostics) = self.vars();
        let env_var = format!("{}_ENV", self.prefix);
        let chosen = vars.iter().find(|(k, _)| *k == env_var).map(|(_, v)| v);
        let environment = chosen.map_or_else(|| "local".to_owned(), Clone::clone);
        let fail = |diagnostics| LoadError {
            prefix: self.prefix.clone(),
            environment: environment.clone(),
            diagnostics,
        };
        // A name that cannot be an environment's: reported, its file not
        // looked for, and the load goes on, so that the other problems are
        // reported with it (the rules, which would judge values without
        // the environment's file, are not run).
        let named = is_environment_name(&environment);
        if !named {
            diagnostics.push(Diagnostic {
                kind: DiagnosticKind::Source,
                key: None,
                origin: Origin::Env(env_var.clone()),
                message: format!("`{environment}` is not an environment name"),
                value: None,
                help: Some(
                    "use letters, digits, `-` and `_`, as in `local` or `production`".to_owned(),
                ),
            });
        }

        let mut figment = Figment::new();
        let files: &[&str] = if named {
            &["default", environment.as_str()]
        } else {
            &["default"]
        };
        for &name in files {
            let path = self.config_dir.join(format!("{name}.toml"));
            // A file that cannot even be looked at (a directory without
            // search permission, a dangling symlink of a mounted config
            // map) is an error, not a file that is absent.
            match path.try_exists() {
                Ok(true) => {}
                Ok(false) if path.symlink_metadata().is_err() => {
                    // `local`, the default, needs no file when named either.
                    if name == environment
                        && chosen.is_some()
                        && !matches!(environment.as_str(), "default" | "local")
                    {
                        diagnostics.extend(self.no_file_for(&env_var, &environment, &path));
                    }
                    continue;
                }
                Ok(false) => {
                    diagnostics.push(unreadable(&path, "is a link to nothing".to_owned()));
                    continue;
                }
                Err(error) => {
                    diagnostics.push(unreadable(&path, format!("cannot be looked at: {error}")));
                    continue;
                }
            }
            let file = Toml::file_exact(&path);
            match file.data() {
                Ok(_) => figment = figment.merge(file),
                Err(error) => diagnostics.push(unreadable(
                    &path,
                    format!(
                        "cannot be read: {}",
                        without_quoted_lines(&error.kind.to_string())
                    ),
                )),
            }
        }
        let (env_layer, problems) = StringLayer::from_env(&self.prefix, &vars);
        diagnostics.extend(problems);
        let (override_layer, problems) = StringLayer::from_overrides(&self.overrides);
        diagnostics.extend(problems);
        let figment = figment.merge(env_layer).merge(override_layer);
        let root = figment
            .find_value("")
            .unwrap_or_else(|_| Value::Dict(Tag::Default, Default::default()));

        let report = Report {
            loader: self,
            figment: &figment,
            root: &root,
        };
        let first = extract::<A>(&root);
        let second = extract::<B>(&root);
        diagnostics.extend(report.failures(&first));
        diagnostics.extend(report.failures(&second));

        let serialized = match (&first.value, &second.value) {
            (Some(a), Some(b)) => match (serde_json::to_value(a), serde_json::to_value(b)) {
                (Ok(mut a), Ok(b)) => {
                    merge_json(&mut a, b);
                    Some(a)
                }
                (Err(error), _) | (_, Err(error)) => {
                    diagnostics.push(Diagnostic {
                        kind: DiagnosticKind::Source,
                        key: None,
                        origin: Origin::Default,
                        message: format!("the settings type cannot be serialized: {error}"),
                        value: None,
                        help: Some(
                            "settings must serialize to JSON objects with string keys".to_owned(),
                        ),
                    });
                    None
                }
            },
            _ => None,
        };
        let mut unknown = unknown_to_both(&first.unknown, &second.unknown);
        let accepted: HashSet<String> = first.accepted.union(&second.accepted).cloned().collect();
        if let Some(serialized) = &serialized {
            unused_keys(&root, serialized, "", &accepted, &mut unknown);
        }
        let skipped = |key: &str| {
            first
                .skip
                .iter()
                .chain(&second.skip)
                .any(|s| is_within(key, s))
        };
        unknown.retain(|key, _| !skipped(key));
        // An unknown key leaves every value parsed: the rules still run, so
        // that one round of fixes covers both. So does a variable with one
        // underscore after the prefix, found whether or not the values
        // parsed: the sections are the settings types' own fields.
        let parsed = diagnostics.is_empty();
        let roots: HashSet<&str> = first
            .root_fields
            .iter()
            .chain(&second.root_fields)
            .copied()
            .collect();
        diagnostics.extend(self.single_underscores(&vars, &roots));
        diagnostics.extend(
            unknown
                .iter()
                .map(|(key, (tag, known))| report.unknown_key(key, *tag, known)),
        );

        let secrets: HashSet<String> = first.secrets.union(&second.secrets).cloned().collect();
        let (Some(a), Some(b), Some(serialized), true) =
            (first.value, second.value, serialized, parsed)
        else {
            return Err(fail(diagnostics));
        };

        let mut violations = Violations::new();
        a.validate(&mut violations);
        b.validate(&mut violations);
        let aliases = Aliases::find(&root, &serialized, &accepted);
        diagnostics.extend(
            violations
                .iter()
                .map(|(key, message)| report.violation(key, message, &secrets, &aliases)),
        );
        if !diagnostics.is_empty() {
            return Err(fail(diagnostics));
        }

        let dump = Dump::build(&serialized, &figment, &root, &secrets, &aliases);
        let settings = (a, b);
        Ok(Loaded {
            settings,
            dump,
            environment,
        })
    }

    /// Runs what a parsed command line asks: loads the settings, and for
    /// `--print-config` prints their dump and exits 0, for `--check-config`
    /// says they are valid, prints the dump and exits 0. Bad settings print
    /// every problem and exit 78 (`EX_CONFIG`).
    pub fn load_or_exit<T>(self, command_line: &CommandLine) -> Loaded<T>
    where
        T: DeserializeOwned + Serialize + Validate,
    {
        let loaded = self.command_line(command_line).load::<T>();
        act(loaded, command_line.action)
    }

    /// [`Loader::load_or_exit`] for two settings types sharing the layers,
    /// as [`Loader::load_with`] loads them.
    pub fn load_with_or_exit<A, B>(self, command_line: &CommandLine) -> Loaded<(A, B)>
    where
        A: DeserializeOwned + Serialize + Validate,
        B: DeserializeOwned + Serialize + Validate,
    {
        let loaded = self.command_line(command_line).load_with::<A, B>();
        act(loaded, command_line.action)
    }
}

/// Does what the command line asked with the outcome of a load.
fn act<T>(loaded: Result<Loaded<T>, LoadError>, action: Action) -> Loaded<T> {
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => error.exit(),
    };
    match action {
        Action::Run => loaded,
        Action::PrintConfig => {
            print_stdout(&loaded.dump.to_json_pretty());
            std::process::exit(0)
        }
        Action::CheckConfig => {
            eprintln!("settings are valid (environment `{}`)", loaded.environment);
            print_stdout(&loaded.dump.to_json_pretty());
            std::process::exit(0)
        }
    }
}

#[allow(clippy::print_stdout)] // printing the dump is what `--print-config` asks for
fn print_stdout(text: &str) {
    println!("{text}");
}

/// Loads settings for `prefix` from the process's environment and command
/// line, the one call a `main` needs.
///
/// Handles `--set key=value`, `--print-config`, `--check-config` and
/// `--help`; exits 64 (`EX_USAGE`) on any other argument and 78
/// (`EX_CONFIG`) on bad settings, after printing why. A service with its own
/// command line parses it itself and uses [`Loader`] with [`Loader::set`].
pub fn load_or_exit<T>(prefix: &str) -> Loaded<T>
where
    T: DeserializeOwned + Serialize + Validate,
{
    Loader::new(prefix).load_or_exit(&CommandLine::from_args_or_exit())
}

/// A settings type with no keys, the second part of [`Loader::load`].
#[derive(Debug, serde::Deserialize, Serialize)]
struct Nothing {}

impl Validate for Nothing {}

/// The keys unknown to both parts of a [`Loader::load_with`]: a key the first
/// does not know is still fine if the second knows it, and a typo below a
/// section of the first (`server.prot`) is reported although the second
/// only sees an unknown `server`.
fn unknown_to_both(
    first: &BTreeMap<String, (Tag, Vec<String>)>,
    second: &BTreeMap<String, (Tag, Vec<String>)>,
) -> BTreeMap<String, (Tag, Vec<String>)> {
    let covered = |key: &str, by: &BTreeMap<String, (Tag, Vec<String>)>| {
        by.keys().any(|unknown| is_within(key, unknown))
    };
    let mut unknown: BTreeMap<String, (Tag, Vec<String>)> = BTreeMap::new();
    for (key, (tag, known)) in first.iter().chain(second) {
        let other = if first.contains_key(key) {
            second
        } else {
            first
        };
        if !covered(key, other) {
            continue;
        }
        // Suggestions come from the names both parts know at that place.
        let entry = unknown.entry(key.clone()).or_insert((*tag, Vec::new()));
        entry.1.extend(known.iter().cloned());
        entry.1.sort();
        entry.1.dedup();
    }
    unknown
}

/// Merges the serialized `other` into `into`, table by table.
fn merge_json(into: &mut serde_json::Value, other: serde_json::Value) {
    match (into, other) {
        (serde_json::Value::Object(into), serde_json::Value::Object(other)) => {
            for (key, value) in other {
                match into.get_mut(&key) {
                    Some(existing) => merge_json(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, other) => *into = other,
    }
}

/// Settings that loaded, with the dump of their values and origins.
///
/// Dereferences to the settings.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    settings: T,
    dump: Dump,
    environment: String,
}

impl<T> Loaded<T> {
    /// Transforms the settings, keeping the dump and environment.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Loaded<U> {
        Loaded {
            settings: f(self.settings),
            dump: self.dump,
            environment: self.environment,
        }
    }

    /// The redacted effective settings with the origin of each value.
    pub fn dump(&self) -> &Dump {
        &self.dump
    }

    /// The environment the settings were loaded for (`{PREFIX}_ENV`, default
    /// `local`).
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The settings.
    pub fn into_inner(self) -> T {
        self.settings
    }

    /// The settings and their dump.
    pub fn into_parts(self) -> (T, Dump) {
        (self.settings, self.dump)
    }
}

impl<T> Deref for Loaded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.settings
    }
}

/// What a command line asks of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Action {
    /// Load and run the service.
    #[default]
    Run,
    /// Print the effective settings (`--print-config`) and exit.
    PrintConfig,
    /// Validate, print and exit 0 or 78 (`--check-config`), for deploy
    /// pipelines.
    CheckConfig,
}

/// The settings part of a service's command line: `--set key=value`
/// (repeatable), `--print-config`, `--check-config`.
///
/// ```
/// use opsready_settings::{Action, CommandLine};
///
/// let cli = CommandLine::parse(["--set", "http.port=9000", "--check-config"]).unwrap();
/// assert_eq!(cli.action(), Action::CheckConfig);
/// assert_eq!(cli.overrides(), [("http.port".to_owned(), "9000".to_owned())]);
/// assert!(CommandLine::parse(["--sett", "x=1"]).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    overrides: Vec<(String, String)>,
    action: Action,
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandLine")
            .field("overrides", &MaskedPairs(&self.overrides))
            .field("action", &self.action)
            .finish()
    }
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("prefix", &self.prefix)
            .field("config_dir", &self.config_dir)
            .field("env", &self.env.as_deref().map(MaskedPairs))
            .field("overrides", &MaskedPairs(&self.overrides))
            .finish()
    }
}

/// Names and values as `Debug` shows them: a value whose name looks like a
/// credential's masked whole, the credentials any other value quotes
/// masked, as in the dump.
struct MaskedPairs<'a>(&'a [(String, String)]);

impl fmt::Debug for MaskedPairs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if opsready_vocab::is_sensitive_name(name) {
                    std::borrow::Cow::Borrowed(REDACTED)
                } else {
                    opsready_vocab::redact_secrets(value)
                };
                (name, shown)
            }))
            .finish()
    }
}

const USAGE: &str = "\
options:
  --set KEY=VALUE   override one setting (dotted key), above files and environment
  --print-config    print the effective settings with their origins, then exit
  --check-config    validate the settings, print them, exit 0 (valid) or 78 (invalid)
  -h, --help        print this help";

impl CommandLine {
    /// Parses the process's arguments; prints the usage and exits 0 on
    /// `--help`, or exits 64 (`EX_USAGE`) on an argument it does not know.
    pub fn from_args_or_exit() -> Self {
        match Self::parse(std::env::args_os().skip(1)) {
            Ok(command_line) => command_line,
            Err(error) if error.help => {
                eprintln!("{USAGE}");
                std::process::exit(0)
            }
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(EX_USAGE)
            }
        }
    }

    /// Parses arguments (without the program name).
    pub fn parse<I, S>(args: I) -> Result<Self, UsageError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut parsed = Self::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let arg = arg.into_string().map_err(|arg| not_utf8(&arg))?;
            let pair = match arg.as_str() {
                "--print-config" => {
                    parsed.action = Action::PrintConfig;
                    continue;
                }
                "--check-config" => {
                    parsed.action = Action::CheckConfig;
                    continue;
                }
                "-h" | "--help" => {
                    return Err(UsageError {
                        message: String::new(),
                        help: true,
                    });
                }
                "--set" => args
                    .next()
                    .ok_or_else(|| UsageError::new("--set needs KEY=VALUE".to_owned()))?
                    .into_string()
                    .map_err(|arg| not_utf8(&arg))?,
                other => match other.strip_prefix("--set=") {
                    Some(pair) => pair.to_owned(),
                    // Not an option: a value, maybe the rest of a secret
                    // the shell split at a space (`--set db.password=a b`).
                    None if !other.starts_with('-') => {
                        return Err(UsageError::new(
                            "an argument that is no option (not shown: it may be a value); \
                             quote a --set value that holds spaces"
                                .to_owned(),
                        ));
                    }
                    None => {
                        return Err(UsageError::new(format!(
                            "unknown argument `{}`",
                            without_value(other)
                        )));
                    }
                },
            };
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                UsageError::new(format!(
                    "--set {pair}: expected KEY=VALUE, as in http.port=8080"
                ))
            })?;
            parsed
                .overrides
                .push((key.trim().to_owned(), value.to_owned()));
        }
        Ok(parsed)
    }

    /// What the command line asks for.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The `--set` overrides, in order.
    pub fn overrides(&self) -> &[(String, String)] {
        &self.overrides
    }
}

/// A command line that [`CommandLine::parse`] does not accept.
#[derive(Debug, Clone)]
pub struct UsageError {
    message: String,
    help: bool,
}

impl UsageError {
    fn new(message: String) -> Self {
        Self {
            message,
            help: false,
        }
    }

    /// Whether the user asked for `--help` (not an error: print the usage
    /// and exit 0).
    pub fn is_help(&self) -> bool {
        self.help
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.help {
            writeln!(f, "error: {}", self.message)?;
            writeln!(f)?;
        }
        f.write_str(USAGE)
    }
}

impl std::error::Error for UsageError {}

/// A problem met while deserializing, kept until the end of the load.
#[derive(Debug)]
struct Failure {
    path: String,
    tag: Tag,
    kind: ErrorKind,
    /// About the entry's key: its value is not shown.
    of_key: bool,
}

#[derive(Debug)]
struct Extraction<T> {
    value: Option<T>,
    failures: Vec<Failure>,
    /// Unknown keys with the tag of their value and the names known beside
    /// them.
    unknown: BTreeMap<String, (Tag, Vec<String>)>,
    secrets: HashSet<String>,
    /// Missing keys that are maps.
    maps: HashSet<String>,
    skip: HashSet<String>,
    /// Keys a struct field took, in the last pass.
    accepted: HashSet<String>,
    /// The settings type's own field names (its sections).
    root_fields: HashSet<&'static str>,
}

/// The diagnostic of a configuration file that cannot be read.
fn unreadable(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        kind: DiagnosticKind::Source,
        key: None,
        origin: Origin::File(path.to_path_buf()),
        message,
        value: None,
        help: Some(format!("fix or remove {}", path.display())),
    }
}

impl Loader {
    /// `APP_HTTP__PORT`: one underscore after the prefix, then a path whose
    /// first part is one of the settings' sections. It would set nothing
    /// without a word. Variables whose first part names no section
    /// (another service's `APP_WORKER__…`, `APP_ENV`) may be anyone's.
    fn single_underscores(
        &self,
        vars: &[(String, String)],
        roots: &HashSet<&str>,
    ) -> Vec<Diagnostic> {
        let single = format!("{}_", self.prefix);
        vars.iter()
            .filter_map(|(name, _)| {
                let rest = name.strip_prefix(&single)?;
                let (first, _) = rest.split_once("__")?;
                let names_a_section = !first.is_empty()
                    && !first.starts_with('_')
                    && roots.contains(first.to_ascii_lowercase().as_str());
                names_a_section.then(|| Diagnostic {
                    kind: DiagnosticKind::Source,
                    key: None,
                    origin: Origin::Env(name.clone()),
                    message: "one underscore after the prefix: the variable sets nothing"
                        .to_owned(),
                    value: None,
                    help: Some(format!(
                        "rename it {}__{rest}, with two underscores after {}",
                        self.prefix, self.prefix
                    )),
                })
            })
            .collect()
    }

    /// An environment chosen by `{PREFIX}_ENV` that has no file, when the
    /// config directory has files for other environments: most likely a
    /// typo (`prodution`), which would otherwise run the service on the
    /// defaults without a word. A service configured by variables alone
    /// (no config directory, or only `default.toml`) needs no file.
    fn no_file_for(&self, env_var: &str, environment: &str, path: &Path) -> Option<Diagnostic> {
        // Files an environment could be named after: other `.toml` files
        // (`features.toml`, `default.local.toml`) are not environments.
        let mut others: Vec<String> = std::fs::read_dir(&self.config_dir)
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".toml")?;
                let is_file = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
                (is_file && stem != "default" && is_environment_name(stem)).then(|| stem.to_owned())
            })
            .collect();
        if others.is_empty() {
            return None;
        }
        others.sort();
        let others = others
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(Diagnostic {
            kind: DiagnosticKind::Source,
            key: None,
            origin: Origin::Env(env_var.to_owned()),
            message: format!(
                "`{environment}` names no settings file: {} does not exist",
                path.display()
            ),
            value: None,
            help: Some(format!(
                "set {env_var} to an environment that has a file ({others} in {}), or create {} (it may be empty)",
                self.config_dir.display(),
                path.display()
            )),
        })
    }
}

/// What a value of the type serde `expected` is written as, in words an
/// operator can act on: Rust's names for numbers say nothing of their
/// range, and a list is written differently in a variable and in a file.
fn accepted_forms(expected: &str) -> Option<String> {
    let whole = |low: &str, high: &str| Some(format!("a whole number from {low} to {high}"));
    match expected {
        "u8" => whole("0", "255"),
        "u16" => whole("0", "65535"),
        "u32" => whole("0", "4294967295"),
        "u64" | "usize" => Some("a whole number, 0 or more".to_owned()),
        "i8" => whole("-128", "127"),
        "i16" => whole("-32768", "32767"),
        "i32" => whole("-2147483648", "2147483647"),
        "i64" | "isize" => Some("a whole number".to_owned()),
        "f32" | "f64" => Some("a number, such as `0.5` or `2`".to_owned()),
        "a boolean" => {
            Some("`true` or `false` (`1` and `0` too in a variable or `--set`)".to_owned())
        }
        "a sequence" => {
            Some("a list: `a,b,c` in a variable or `--set`, `[\"a\", \"b\"]` in a file".to_owned())
        }
        "a map" => Some(
            "a table: `[section]` in a file, one variable or `--set` per key below it".to_owned(),
        ),
        "a string" => Some("text".to_owned()),
        _ => None,
    }
}

/// Whether `name` can name an environment (and its file): letters,
/// digits, `-` and `_`, so that it cannot lead out of the config directory.
fn is_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// An argument as a usage error may quote it: up to its first `=`, since
/// what follows may be a secret (`--sett=db.password=…`).
fn without_value(arg: &str) -> String {
    match arg.split_once('=') {
        Some((key, _)) => format!("{key}=…"),
        None => arg.to_owned(),
    }
}

/// The usage error of an argument that is not UTF-8, quoting at most what
/// comes before its first `=`.
fn not_utf8(arg: &OsString) -> UsageError {
    let lossy = arg.to_string_lossy();
    UsageError::new(match lossy.split_once('=') {
        Some(_) => format!(
            "argument `{}` is not UTF-8 (its value is not shown)",
            without_value(&lossy)
        ),
        None => "an argument is not UTF-8 (it is not shown)".to_owned(),
    })
}

/// A TOML parser's message without the lines it quotes from the file
/// (`2 | password = "…"` and the caret under it): the line of a syntax
/// error may hold a secret, and the line and column say where it is.
fn without_quoted_lines(message: &str) -> String {
    let quoted = |line: &str| {
        line.trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start()
            .starts_with('|')
    };
    let kept: Vec<&str> = message
        .lines()
        .filter(|line| !line.trim().is_empty() && !quoted(line))
        .collect();
    opsready_vocab::redact_secrets(&kept.join("\n")).into_owned()
}

/// Enough passes for dozens of problems; each pass only runs after an error.
const MAX_PASSES: usize = 512;

/// Deserializes `T`, and after each error again, with the bad key left out (so
/// its default applies) or a missing key filled with a stand-in, until it
/// succeeds or cannot go on: serde stops at the first error, a person fixing
/// a deployment wants them all.
fn extract<T: DeserializeOwned>(root: &Value) -> Extraction<T> {
    let mut failures = Vec::new();
    let mut unknown = BTreeMap::new();
    let mut secrets = HashSet::new();
    let mut maps = HashSet::new();
    let mut skip: HashSet<String> = HashSet::new();
    let mut placeholders: HashMap<String, usize> = HashMap::new();
    // Missing keys tried as empty tables, not reported unless that fails.
    let mut pending: HashMap<String, &'static str> = HashMap::new();
    let mut value = None;
    let mut accepted = HashSet::new();
    let mut root_fields = HashSet::new();
    for _ in 0..MAX_PASSES {
        let session = Session {
            skip: skip.clone(),
            placeholders: placeholders.clone(),
            ..Session::default()
        };
        let result = T::deserialize(De::root(root, &session));
        secrets.extend(session.secrets.take());
        maps.extend(session.maps.take());
        accepted = session.accepted.take();
        root_fields.extend(session.root_fields.take());
        for (key, (tag, fields)) in session.unknown.take() {
            unknown.insert(key, (tag, fields.iter().map(|f| (*f).to_owned()).collect()));
        }
        let error = match result {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(error) => error,
        };
        let path = error.path.unwrap_or_default();
        let skipped = |key: &str| skip.iter().any(|s| is_within(key, s));
        // A consequence of a stand-in or of a key left out is not news.
        let pretended = |key: &str| {
            placeholders
                .iter()
                .any(|(p, mode)| *mode != EMPTY_TABLE && is_within(key, p))
        };
        match error.kind {
            ErrorKind::MissingField(field) => {
                let key = join(&path, field);
                if placeholders.contains_key(&key) {
                    break;
                }
                if !skipped(&key) && !pretended(&key) {
                    pending.insert(key.clone(), field);
                }
                placeholders.insert(key, EMPTY_TABLE);
            }
            ErrorKind::UnknownField { expected } => {
                // Only from a struct that denies unknown fields below a map
                // (a flattened one): it is reported as an unknown key.
                let known = expected.iter().map(|f| (*f).to_owned()).collect();
                unknown.insert(path.clone(), (error.tag, known));
                skip.insert(path);
            }
            ErrorKind::PlaceholderExhausted => break,
            kind => {
                let stand_in = placeholders
                    .keys()
                    .filter(|p| is_within(&path, p))
                    .max_by_key(|p| p.len())
                    .cloned();
                if let Some(stand_in) = stand_in {
                    let mode = placeholders.get(&stand_in).copied().unwrap_or_default();
                    let next = if mode == EMPTY_TABLE {
                        // Not a section after all: the key itself is missing.
                        if let Some(field) = pending.remove(&stand_in) {
                            failures.push(missing(stand_in.clone(), field));
                        }
                        0
                    } else {
                        mode + 1
                    };
                    if next >= PLACEHOLDER_MODES {
                        break;
                    }
                    placeholders.retain(|p, _| !is_within(p, &stand_in));
                    placeholders.insert(stand_in, next);
                    continue;
                }
                let consequence = skipped(&path) || skip.iter().any(|s| is_within(s, &path));
                if !consequence {
                    failures.push(Failure {
                        path: path.clone(),
                        tag: error.tag,
                        kind,
                        of_key: error.of_key,
                    });
                }
                if path.is_empty() || skip.contains(&path) {
                    break;
                }
                skip.insert(path);
            }
        }
    }
    if value.is_none() {
        // The load stopped early: a pending key with no problem found below
        // it is reported as missing, lest it be lost.
        let mut rest: Vec<_> = pending
            .into_iter()
            .filter(|(key, _)| !failures.iter().any(|f| is_within(&f.path, key)))
            .collect();
        rest.sort();
        failures.extend(rest.into_iter().map(|(key, field)| missing(key, field)));
    }
    Extraction {
        value,
        failures,
        unknown,
        secrets,
        maps,
        skip,
        accepted,
        root_fields,
    }
}

fn missing(path: String, field: &'static str) -> Failure {
    Failure {
        path,
        tag: Tag::Default,
        kind: ErrorKind::MissingField(field),
        of_key: false,
    }
}

/// Keys of the input that the settings type did not take, found by
/// comparison with the serialized settings; catches what field tracking
/// cannot see, such as keys below a `#[serde(flatten)]` section.
fn unused_keys(
    input: &Value,
    output: &serde_json::Value,
    path: &str,
    accepted: &HashSet<String>,
    unknown: &mut BTreeMap<String, (Tag, Vec<String>)>,
) {
    let (Value::Dict(_, dict), serde_json::Value::Object(fields)) = (input, output) else {
        return;
    };
    for (key, value) in dict {
        let key_path = join(path, key);
        match fields.get(key) {
            Some(output) => unused_keys(value, output, &key_path, accepted, unknown),
            // Taken under an alias: serialized under its canonical name.
            None if accepted.contains(&key_path) => {}
            None => {
                let known = fields.keys().cloned().collect();
                unknown.entry(key_path).or_insert((value.tag(), known));
            }
        }
    }
}

/// Turns what the load found into diagnostics a person can act on.
struct Report<'a> {
    loader: &'a Loader,
    figment: &'a Figment,
    root: &'a Value,
}

impl Report<'_> {
    fn env_var(&self, key: &str) -> Option<String> {
        if key.contains('[') || key.is_empty() {
            return None;
        }
        let mut name = self.loader.prefix.clone();
        for part in key.split('.') {
            name.push_str("__");
            name.push_str(&part.to_ascii_uppercase());
        }
        Some(name)
    }

    fn shown_value(&self, key: &str, secret: bool) -> Option<String> {
        let node = find(self.root, key)?;
        let text = de::scalar_text(node)?;
        if secret {
            return Some(REDACTED.to_owned());
        }
        let text = opsready_vocab::redact_secrets(&text);
        let shown: String = text.chars().take(80).collect();
        let ellipsis = if shown.len() < text.len() { "…" } else { "" };
        Some(match node {
            Value::String(..) => format!("{shown:?}{ellipsis}"),
            _ => format!("{shown}{ellipsis}"),
        })
    }

    fn fix_for(&self, key: &str, origin: &Origin) -> String {
        match origin {
            Origin::Env(var) => format!("set {var} to a valid value, or unset it"),
            Origin::File(file) => format!("fix `{key}` in {}", file.display()),
            Origin::CommandLine(key) => format!("fix --set {key}=…"),
            // The default breaks a rule only next to another setting (a
            // drain delay longer than a deadline that was lowered): the fix
            // is to set this one too.
            Origin::Default => match self.env_var(key) {
                Some(var) => format!("this is the default; set {var} (or `{key}` in a file)"),
                None => format!("this is the default; set `{key}` in a file"),
            },
        }
    }

    fn failures<T>(&self, extraction: &Extraction<T>) -> Vec<Diagnostic> {
        extraction
            .failures
            .iter()
            .map(|failure| {
                let key = failure.path.clone();
                let secret = extraction.secrets.iter().any(|s| is_within(&key, s))
                    || is_sensitive_key(&key)
                    || is_under_sensitive_key(&key);
                match &failure.kind {
                    ErrorKind::MissingField(field) => {
                        self.missing(&key, field, extraction.maps.contains(&key))
                    }
                    kind => {
                        let origin = Origin::of(self.figment, failure.tag, &key);
                        let message = match kind {
                            ErrorKind::Custom(_)
                            | ErrorKind::InvalidValue { .. }
                            | ErrorKind::UnknownVariant { .. }
                                if secret =>
                            {
                                "invalid value (the reason is not shown: this key holds a secret)"
                                    .to_owned()
                            }
                            // A parser's reason may quote the value, which
                            // may hold a credential a key's name did not
                            // give away (a URL's password).
                            kind => opsready_vocab::redact_secrets(&kind.to_string()).into_owned(),
                        };
                        let help = match kind {
                            ErrorKind::UnknownVariant { variant, expected } if !secret => {
                                suggest(variant, expected).map(|s| format!("did you mean `{s}`?"))
                            }
                            // What the type takes, after the fix: a type
                            // error's own text names it as Rust does
                            // (`u16`, `a sequence`).
                            ErrorKind::InvalidType { expected, .. }
                            | ErrorKind::InvalidValue { expected } => {
                                accepted_forms(expected).map(|forms| {
                                    format!("{}; it takes {forms}", self.fix_for(&key, &origin))
                                })
                            }
                            _ => None,
                        };
                        Diagnostic {
                            kind: DiagnosticKind::InvalidValue,
                            // A bad key's value was never read: whether it
                            // is a secret is unknown.
                            value: if failure.of_key {
                                None
                            } else {
                                self.shown_value(&key, secret)
                            },
                            help: Some(help.unwrap_or_else(|| self.fix_for(&key, &origin))),
                            key: (!key.is_empty()).then_some(key),
                            origin,
                            message,
                        }
                    }
                }
            })
            .collect()
    }

    /// A required key that nothing set; `map` when its value is a map of
    /// entries rather than one value or a section.
    fn missing(&self, key: &str, field: &str, map: bool) -> Diagnostic {
        let file = self.loader.config_dir.join("default.toml");
        let parent = key.strip_suffix(field).unwrap_or("").trim_end_matches('.');
        let in_file = if map && !key.contains('[') {
            format!("a `[{key}]` table with its entries to {}", file.display())
        } else if map {
            format!("its entries to {}", file.display())
        } else if parent.is_empty() {
            format!("`{field} = …` to {}", file.display())
        } else {
            format!("`{field} = …` under `[{parent}]` in {}", file.display())
        };
        let help = match (self.env_var(key), map) {
            (Some(var), false) => format!("set the environment variable {var}, or add {in_file}"),
            (Some(var), true) => format!(
                "set a variable {var}__NAME per entry ({var}__NAME__KEY when entries are tables), or add {in_file}"
            ),
            (None, _) => format!("add {in_file}"),
        };
        Diagnostic {
            kind: DiagnosticKind::MissingKey,
            key: Some(key.to_owned()),
            origin: Origin::Default,
            message: "missing required key".to_owned(),
            value: None,
            help: Some(help),
        }
    }

    fn unknown_key(&self, key: &str, tag: Tag, known: &[String]) -> Diagnostic {
        let origin = Origin::of(self.figment, tag, key);
        let (parent, name) = key.rsplit_once('.').unwrap_or(("", key));
        let candidates: Vec<&str> = known.iter().map(String::as_str).collect();
        let help = match suggest(name, &candidates) {
            Some(suggestion) => {
                let full = join(parent, suggestion);
                match (&origin, self.env_var(&full)) {
                    // The variable set a key below the unknown section
                    // (`APP__HTPP__PORT`): the same one, spelt right.
                    (Origin::Env(var), Some(right)) if !var.contains(", ") => {
                        let depth = full.split('.').count();
                        let rest: Vec<&str> = var.split("__").skip(depth + 1).collect();
                        let var = if rest.is_empty() {
                            right
                        } else {
                            format!("{right}__{}", rest.join("__"))
                        };
                        format!("did you mean `{full}` ({var})?")
                    }
                    (Origin::Env(_), Some(var)) => format!("did you mean `{full}` ({var})?"),
                    _ => format!("did you mean `{full}`?"),
                }
            }
            None => format!("remove it; {}", self.fix_for(key, &origin)),
        };
        Diagnostic {
            kind: DiagnosticKind::UnknownKey,
            key: Some(key.to_owned()),
            origin,
            message: "unknown key: no setting has this name".to_owned(),
            value: None,
            help: Some(help),
        }
    }

    fn violation(
        &self,
        key: &str,
        message: &str,
        secrets: &HashSet<String>,
        aliases: &Aliases,
    ) -> Diagnostic {
        let secret = secrets.iter().any(|s| is_within(key, s))
            || is_sensitive_key(key)
            || is_under_sensitive_key(key);
        // Where the input has the value: under an alias, maybe.
        let given = aliases.input_key(key);
        let origin = find(self.root, &given).map_or(Origin::Default, |node| {
            Origin::of(self.figment, node.tag(), &given)
        });
        // A rule's message may quote the value: a URL's password, or all
        // of a secret (`… got "hunter2"`), as it is or escaped (`{:?}`),
        // the key's own or one below it (a rule on a section).
        let mut message = opsready_vocab::redact_secrets(message).into_owned();
        let below = secrets.iter().filter(|s| is_within(s, key));
        let quoted = (secret.then_some(key))
            .into_iter()
            .chain(below.map(String::as_str))
            .filter_map(|path| find(self.root, &aliases.input_key(path)).and_then(de::scalar_text))
            .filter(|text| !text.is_empty());
        for text in quoted {
            let escaped = format!("{text:?}");
            let escaped = &escaped[1..escaped.len() - 1];
            message = message
                .replace(text.as_str(), REDACTED)
                .replace(escaped, REDACTED);
        }
        Diagnostic {
            kind: DiagnosticKind::Violation,
            value: self.shown_value(&given, secret),
            help: Some(self.fix_for(&given, &origin)),
            key: Some(key.to_owned()),
            origin,
            message,
        }
    }
}

/// The closest of `candidates` to `name`, if close enough to be a typo.
fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // Edit distance catches short swaps (`tsl` for `tls`) that Jaro-Winkler
    // misses; Jaro-Winkler catches long names with a few letters off.
    let max_edits = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(name, c),
                strsim::jaro_winkler(name, c),
                *c,
            )
        })
        .filter(|(edits, similarity, _)| *edits <= max_edits || *similarity >= 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggestions_catch_swaps_drops_and_near_misses_but_not_strangers() {
        assert_eq!(suggest("tsl", &["plain", "tls"]), Some("tls"));
        assert_eq!(
            suggest("read_timout", &["read_timeout", "write_timeout"]),
            Some("read_timeout")
        );
        assert_eq!(suggest("prot", &["port", "addr"]), Some("port"));
        assert_eq!(suggest("colour", &["port", "addr"]), None);
    }
}

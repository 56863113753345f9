//! [`LoadError`]: every problem of one load, written for a person at a
//! terminal.

use std::fmt;

use crate::origin::Origin;

/// The exit status for bad settings: `EX_CONFIG` from `sysexits.h`.
pub const EX_CONFIG: i32 = 78;

/// The exit status for a bad command line: `EX_USAGE` from `sysexits.h`.
pub const EX_USAGE: i32 = 64;

/// What kind of problem a [`Diagnostic`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// A value that does not parse as its key's type.
    InvalidValue,
    /// A key that no setting has (often a typo).
    UnknownKey,
    /// A required key that no layer sets.
    MissingKey,
    /// A value that parses but breaks a rule of the service
    /// ([`crate::Validate`]).
    Violation,
    /// A layer that cannot be read: an unreadable or malformed file, a
    /// malformed environment variable name, a bad `--set`.
    Source,
}

/// One problem found while loading settings.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub(crate) kind: DiagnosticKind,
    pub(crate) key: Option<String>,
    pub(crate) origin: Origin,
    pub(crate) message: String,
    pub(crate) value: Option<String>,
    pub(crate) help: Option<String>,
}

impl Diagnostic {
    /// What kind of problem this is.
    pub fn kind(&self) -> DiagnosticKind {
        self.kind
    }

    /// The dotted key (`server.addr`), when the problem concerns one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Where the offending value came from; [`Origin::Default`] for a
    /// missing key.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The offending value as given, redacted when it is (or may be) a
    /// secret.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// How to fix it, when there is more to say than the message.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, &self.value) {
            (Some(key), Some(value)) => writeln!(f, "{key} = {value}")?,
            (Some(key), None) => writeln!(f, "{key}")?,
            (None, _) => writeln!(f, "{}", self.origin)?,
        }
        if self.key.is_some() && self.origin != Origin::Default {
            writeln!(f, "    from: {}", self.origin)?;
        }
        let mut lines = self.message.lines();
        writeln!(f, "    error: {}", lines.next().unwrap_or_default())?;
        for line in lines {
            writeln!(f, "           {line}")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "    help: {help}")?;
        }
        Ok(())
    }
}

/// Settings could not be loaded. Holds every problem the load found, not only
/// the first.
///
/// Its `Display` is meant for a terminal: a headline, then each problem with
/// its key, value (redacted where needed), origin, reason and fix.
/// [`LoadError::exit`] prints it and exits with [`EX_CONFIG`].
#[derive(Debug, Clone)]
pub struct LoadError {
    pub(crate) prefix: String,
    pub(crate) environment: String,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    /// Every problem found, in the order of the layers and keys.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Prints the error to standard error and exits with status 78
    /// (`EX_CONFIG`), the status service managers read as "fix the
    /// configuration, restarting will not help".
    pub fn exit(&self) -> ! {
        eprintln!("{self}");
        std::process::exit(EX_CONFIG)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        writeln!(
            f,
            "invalid settings for {} (environment `{}`): {n} problem{}",
            self.prefix,
            self.environment,
            if n == 1 { "" } else { "s" }
        )?;
        for diagnostic in &self.diagnostics {
            writeln!(f)?;
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

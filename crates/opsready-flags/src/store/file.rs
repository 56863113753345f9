//! [`FileStore`]: flags in one JSON or TOML file, the embedded default.
//!
//! Its documentation (the file's layout, an example, the gotchas) is on
//! the type, which the crate exports: this module is private.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::ready;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::value::{MapAccessDeserializer, StrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Action, AuditEntry, BoxFuture, Change, Expected, Store, StoredFlag};
use crate::error::Error;
use crate::flag::Flag;
use crate::validate::{Violation, pointer_token};

/// The actor recorded for a change made by editing the file.
const HAND_ACTOR: &str = "file";

/// The reason recorded for a change made by editing the file.
const HAND_REASON: &str = "edited by hand";

/// How recently a file may have been modified for its size and time
/// alone not to prove it unchanged: file systems with coarse timestamps
/// would hide an edit of the same length made within the same tick.
const RACY: Duration = Duration::from_secs(2);

/// A [`Store`] in one JSON or TOML file: the embedded default, for a
/// service that runs as one process and whose operators may edit flags by
/// hand.
///
/// Versions, the audit log and change notifications work as in any store;
/// writes are crash-safe; hand edits are picked up by polling and audited.
/// Clones share the same file, state and polling task.
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use opsready_flags::{FileStore, Flag, Flags, Store};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("data").join("flags.json");
/// // Created, with its directories, when missing.
/// let flags = Flags::new(FileStore::open(&path).await?).await?;
/// flags.create(Flag::boolean("greeting.shout"), "alice", "launch").await?;
/// flags.kill("greeting.shout", "bob", "too loud").await?;
///
/// // The live definitions come first, keyed by flag, then the audit log.
/// let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
/// assert_eq!(file["flags"]["greeting.shout"]["version"], 2);
/// assert_eq!(file["flags"]["greeting.shout"]["definition"]["enabled"], false);
/// assert_eq!(file["audit"][1]["action"], "kill");
///
/// // After a restart everything is there: versions and history.
/// drop(flags);
/// let store = FileStore::open(&path).await?;
/// assert_eq!(store.get("greeting.shout").await?.unwrap().version, 2);
/// assert_eq!(store.history("greeting.shout").await?.len(), 2);
/// # Ok::<(), opsready_flags::Error>(())
/// # }).unwrap();
/// ```
///
/// # The file
///
/// The extension chooses the format: `.json` or `.toml`. Live flags come
/// first, keyed by flag key, each with its version and its definition
/// (the same definition the admin API and the audit log show); then the
/// append-only audit log, oldest first. One file holds both, so one
/// atomic write covers a change and its record.
///
/// ```json
/// {
///   "flags": {
///     "greeting.shout": {
///       "version": 2,
///       "definition": {
///         "key": "greeting.shout",
///         "type": "bool",
///         "variants": { "off": false, "on": true },
///         "default_variant": "off",
///         "enabled": false,
///         "kind": "release"
///       }
///     }
///   },
///   "audit": [
///     { "key": "greeting.shout", "version": 1, "action": "create", "actor": "alice",
///       "reason": "launch", "at": "2030-01-31T09:30:00.123Z", "before": null, "after": { … } },
///     { "key": "greeting.shout", "version": 2, "action": "kill", … }
///   ]
/// }
/// ```
///
/// ```toml
/// [flags."greeting.shout"]
/// version = 2
///
/// [flags."greeting.shout".definition]
/// key = "greeting.shout"
/// type = "bool"
/// default_variant = "off"
/// enabled = false
/// kind = "release"
///
/// [flags."greeting.shout".definition.variants]
/// off = false
/// on = true
///
/// [[audit]]
/// key = "greeting.shout"
/// version = 1
/// action = "create"
/// # …
/// ```
///
/// TOML has no null: absent values (a create's `before`) are left out.
/// When writing a flag by hand, `version` and the definition's `key` may
/// be left out: the entry's key names the flag, and the store counts
/// versions. A file holding only `flags` is a fine start. In TOML, quote
/// a key that holds dots: `[flags."greeting.shout"]`.
///
/// # Gotchas
///
/// - **One process per file.** Another process writing the same file (a
///   second instance on the host, an admin tool) loses nothing: writers
///   take turns through a lock file next to it (`.flags.json.lock`) and
///   reload before writing. But each sees the others' changes only when it
///   polls, and a fleet wants a shared database.
/// - **Polling.** The file is checked every
///   [`DEFAULT_POLL_INTERVAL`](FileStore::DEFAULT_POLL_INTERVAL) (500 ms;
///   see [`FileStore::open_with_poll`]). A change is taken in once the
///   file has stayed the same for one more interval, so that a file still
///   being written is not read half-way: allow two intervals. The store's
///   own writes are recognised and not read back. Polling needs a Tokio
///   runtime with time enabled, and stops when the last clone of the
///   store is dropped.
/// - **Hand edits are audited at once.** A definition added, changed or
///   removed by hand becomes a new version, recorded as a `create`,
///   `update` or `delete` by actor `file` with reason `edited by hand`,
///   and the file is rewritten right away to hold that record. An editor
///   that still has the file open will say it changed. A definition of a
///   killed flag written without `enabled` stays killed: only an explicit
///   `enabled = true` turns it back on.
/// - **TOML comments stay.** A TOML file is rewritten into its own text:
///   comments, blank lines, key order and inline tables stay where the
///   content they sit by stays; a deleted flag's table leaves with the
///   comments above it; new flags and audit entries come in the store's
///   layout. (Should that ever not read back as the store's content, the
///   file is written in the store's layout instead, without the comments.)
///   A JSON file, which has no comments, is always written in the store's
///   layout. Versions are the store's to
///   count: an edit of a `version` alone is ignored, and undone at the
///   next write. Leave the audit log alone: entries removed by hand are
///   written back by a process that read them.
/// - **A stale copy undoes nothing.** A file saved from a copy older than
///   a flag's latest versions (an editor's buffer opened before a kill)
///   lacks that flag's latest audit entries. What it says of that flag is
///   its past, not an edit: the live definition stays and is written back,
///   and a warning names the flag. Edit the file as it is now. Flags whose
///   entries are all there take the copy's edits as usual. This holds
///   across restarts too: every write also goes to a hidden copy,
///   `.flags.json.written`, which [`open`](FileStore::open) reads as what
///   the stores last knew. To replace the flags wholesale (a file from a
///   backup, a fresh start) while the service is stopped, delete that copy
///   as well, or the entries the new file lacks are put back.
/// - **A bad edit changes nothing, and blocks no kill.** When the file
///   does not parse, or a definition edited by hand fails
///   [`Flag::validate`], the error is logged (`tracing::error!`, with the
///   path, and the line and column of a parse error) and the flags last
///   read stay in force. Changes through the store are refused with a
///   [`BadEdit`](crate::ErrorKind::BadEdit) error naming the problem
///   rather than overwrite the edit, except kills and rollbacks: they
///   apply to the flags in force, the file is written anew, and the edit
///   is kept next to it as `flags.json.rejected-{time}` (named in an
///   error log line) for its author to make again. The flags in force
///   include what other processes wrote since this one last read the file
///   (from `.flags.json.written`, whose layout a TOML file then takes:
///   comments added by hand since the last write stay in the set-aside
///   file). A file that cannot even be read (its permissions changed) is
///   set aside the same way; the store's files are always left readable
///   and writable by their owner. Fixing the file is
///   picked up like any edit. At [`open`](FileStore::open) the
///   `BadEdit` error is returned instead.
/// - **A missing or empty file is not "no flags".** While running, a file
///   deleted or emptied by hand is logged and ignored: the flags stay, and
///   the next change writes them back. To remove flags, remove their
///   entries.
/// - **Crash safety.** Every write goes to a temporary file in the same
///   directory, is flushed to disk, renamed over the file and the
///   directory flushed: after a crash the file is the old one or the new
///   one, never a mix. A change that returned `Ok` is on disk.
/// - TOML cannot hold null, so a JSON flag whose value holds one cannot be
///   written to a `.toml` file: the change fails and nothing is written.
#[derive(Clone)]
pub struct FileStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// Where a write goes before it is renamed over `path`. One name is
    /// enough: writers take turns through `lock_path`.
    temp_path: PathBuf,
    /// Locked by every writer, in this process and others, from reading
    /// the file to renaming the new one over it.
    lock_path: PathBuf,
    /// A copy of the last write, made by every writer after the file: the
    /// flags as the stores last left them, whatever happened to the file
    /// since (a bad edit, a stale copy saved while no store ran).
    written_path: PathBuf,
    format: Format,
    /// What `load`, `get` and `history` read: swapped whole after a write
    /// or a reload, never held across file work.
    state: Mutex<Arc<State>>,
    revision: watch::Sender<u64>,
    /// Serialises this process's writers and polls, so that they queue
    /// here rather than on the blocking pool.
    writer: tokio::sync::Mutex<()>,
    /// What is known of the file. Taken for the whole of each blocking
    /// step, so that a caller that stopped waiting (its future dropped
    /// while the step runs) cannot let another step overlap it.
    disk: Mutex<Disk>,
    handle: Handle,
    #[cfg(test)]
    fault: Mutex<Option<Step>>,
}

/// The flags and their log, as last written or read.
#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    live: BTreeMap<String, StoredFlag>,
    /// Every entry, in the order applied.
    log: Vec<AuditEntry>,
}

/// What is known of the file.
#[derive(Debug, Default)]
struct Disk {
    /// The file whose content `state` reflects.
    seen: Option<Seen>,
    /// Content that differs from `seen`, found by one poll: taken in when
    /// the next poll finds it unchanged.
    pending: Option<u64>,
    /// Content already reported as unusable: not logged again.
    reported: Option<u64>,
}

/// A version of the file: its metadata and the hash of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    stamp: Stamp,
    hash: u64,
}

impl Seen {
    fn of(metadata: &fs::Metadata, bytes: &[u8]) -> Self {
        Self {
            stamp: Stamp::of(metadata),
            hash: hash(bytes),
        }
    }

    /// Whether an edit could hide behind an unchanged stamp.
    fn is_racy(&self) -> bool {
        self.stamp
            .modified
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_none_or(|age| age < RACY)
    }
}

/// What `stat` says about a file: enough to skip reading it when nothing
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Self {
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode: inode(metadata),
        }
    }
}

#[cfg(unix)]
fn inode(metadata: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.ino()
}

#[cfg(not(unix))]
fn inode(_metadata: &fs::Metadata) -> u64 {
    0
}

#[cfg(unix)]
fn device(metadata: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.dev()
}

#[cfg(not(unix))]
fn device(_metadata: &fs::Metadata) -> u64 {
    0
}

/// The steps of an atomic write, after each of which a test can make the
/// write fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The temporary file is written, not yet flushed.
    Written,
    /// The temporary file is flushed to disk.
    Synced,
    /// The temporary file is renamed over the file; the directory is not
    /// flushed yet.
    Renamed,
}

impl FileStore {
    /// How often [`open`](Self::open) checks the file for hand edits.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

    /// Opens the flag file at `path`, JSON or TOML by its extension,
    /// creating it (and its directories) empty when missing, and checks it
    /// for hand edits every 500 ms.
    ///
    /// A relative path is resolved against the working directory now.
    /// Definitions found in the file without a record in its audit log
    /// (a file written by hand) are recorded as created by `file`.
    ///
    /// # Errors
    ///
    /// [`BadEdit`](crate::ErrorKind::BadEdit): a file that does not parse
    /// (the error names the line and column) or holds invalid
    /// definitions. [`Backend`](crate::ErrorKind::Backend): an extension
    /// other than `.json` or `.toml`; a file system error; no Tokio
    /// runtime.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with_poll(path, Self::DEFAULT_POLL_INTERVAL).await
    }

    /// Opens the flag file at `path` like [`open`](Self::open), checking
    /// it for hand edits every `interval` instead. Defaults to
    /// [`DEFAULT_POLL_INTERVAL`](Self::DEFAULT_POLL_INTERVAL), 500 ms.
    ///
    /// `Duration::ZERO` turns polling off: hand edits and other writers'
    /// changes are then taken in only when this store next writes.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with_poll(
        path: impl Into<PathBuf>,
        interval: Duration,
    ) -> Result<Self, Error> {
        let path = path.into();
        let format = Format::of(&path)?;
        let handle = Handle::try_current()
            .map_err(|_| Error::backend("the file store needs a Tokio runtime"))?;
        let spawner = handle.clone();
        let shared = blocking(&spawner, move || Shared::open(&path, format, handle)).await?;
        let shared = Arc::new(shared);
        if !interval.is_zero() {
            spawner.spawn(poll(Arc::downgrade(&shared), interval));
        }
        Ok(Self { shared })
    }

    /// The file, as an absolute path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Every recorded change of every flag, in the order applied.
    #[must_use]
    pub fn audit_log(&self) -> Vec<AuditEntry> {
        self.shared.state().log.clone()
    }

    /// Makes the next writes fail after `step` (none: write normally).
    #[cfg(test)]
    fn fail_after(&self, step: Option<Step>) {
        *lock(&self.shared.fault) = step;
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("FileStore")
            .field("path", &self.shared.path)
            .field("flags", &state.live.len())
            .field("changes", &state.log.len())
            .finish()
    }
}

impl Store for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredFlag>, Error>> {
        let flags = self.shared.state().live.values().cloned().collect();
        Box::pin(ready(Ok(flags)))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredFlag>, Error>> {
        let flag = self.shared.state().live.get(key).cloned();
        Box::pin(ready(Ok(flag)))
    }

    fn apply(&self, change: Change) -> BoxFuture<'_, Result<AuditEntry, Error>> {
        Box::pin(async move {
            let _writer = self.shared.writer.lock().await;
            let shared = Arc::clone(&self.shared);
            blocking(&self.shared.runtime(), move || shared.apply(change)).await
        })
    }

    fn history<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<AuditEntry>, Error>> {
        let mut entries: Vec<AuditEntry> = self
            .shared
            .state()
            .log
            .iter()
            .filter(|entry| entry.key == key)
            .cloned()
            .collect();
        // A log merged from a file edited by hand may be out of order.
        entries.sort_by_key(|entry| entry.version);
        Box::pin(ready(Ok(entries)))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    handle: &Handle,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    handle
        .spawn_blocking(work)
        .await
        .map_err(|error| Error::backend(format!("the flag file task failed: {error}")))?
}

/// Checks the file every `interval` until the store is dropped.
async fn poll(store: Weak<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Held only for one check, so that dropping the store ends the task.
        let Some(shared) = store.upgrade() else {
            return;
        };
        let _writer = shared.writer.lock().await;
        let task = Arc::clone(&shared);
        if let Err(error) = shared.handle.spawn_blocking(move || task.poll()).await {
            tracing::error!(%error, "checking the flag file failed");
        }
    }
}

/// Why the file's content was not taken in.
#[derive(Debug)]
enum Refusal {
    Malformed {
        hash: u64,
        problem: ParseError,
    },
    Invalid {
        hash: u64,
        problems: Vec<Violation>,
    },
    /// Reading or writing failed.
    Failed(Error),
}

/// What a refused change says of a bad edit: what to do, and that kills
/// and rollbacks need not wait.
const FIX_FIRST: &str = "fix the file or undo the edit, then send the change again \
     (nothing was written; a kill or a rollback goes through, setting the edit aside)";

impl Refusal {
    /// What is wrong, without the advice.
    fn describe(&self, path: &Path) -> String {
        match self {
            Self::Malformed { problem, .. } => format!(
                "the flag file `{}` does not parse at {problem}",
                path.display()
            ),
            Self::Invalid { problems, .. } => format!(
                "the flag file `{}` holds invalid definitions: {}",
                path.display(),
                list(problems)
            ),
            Self::Failed(error) => error.to_string(),
        }
    }

    /// The error of a change refused because of `self`.
    fn into_error(self, path: &Path) -> Error {
        match self {
            Self::Failed(error) => error,
            bad => Error::bad_edit(format!("{}; {FIX_FIRST}", bad.describe(path))),
        }
    }

    /// The error of an `open` refused because of `self`.
    fn into_open_error(self, path: &Path) -> Error {
        match self {
            Self::Failed(error) => error,
            bad => Error::bad_edit(format!(
                "{}; fix the file or undo the edit (nothing was written)",
                bad.describe(path)
            )),
        }
    }
}

fn list(problems: &[Violation]) -> String {
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    problems.join("; ")
}

/// What reading the file found.
enum Content {
    Missing,
    /// Only whitespace.
    Blank(Seen),
    Text(Vec<u8>, Seen),
}

impl Shared {
    /// Opens (or creates) the file and reads it; blocking.
    fn open(path: &Path, format: Format, handle: Handle) -> Result<Self, Error> {
        let failed = |doing: &str, error: io::Error| {
            Error::backend(format!("cannot {doing} `{}`: {error}", path.display()))
        };
        let path = std::path::absolute(path).map_err(|error| failed("resolve", error))?;
        let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else {
            return Err(Error::backend(format!(
                "`{}` names no flag file",
                path.display()
            )));
        };
        let name = name.to_string_lossy();
        fs::create_dir_all(dir).map_err(|error| failed("create the directory of", error))?;
        let shared = Self {
            temp_path: dir.join(format!(".{name}.tmp")),
            lock_path: dir.join(format!(".{name}.lock")),
            written_path: dir.join(format!(".{name}.written")),
            path,
            format,
            state: Mutex::new(Arc::new(State::default())),
            revision: watch::Sender::new(0),
            writer: tokio::sync::Mutex::new(()),
            disk: Mutex::new(Disk::default()),
            handle,
            #[cfg(test)]
            fault: Mutex::new(None),
        };
        {
            let mut disk = lock(&shared.disk);
            let _lock = shared.lock_file()?;
            match shared
                .read()
                .map_err(|refusal| refusal.into_open_error(&shared.path))?
            {
                Content::Missing | Content::Blank(_) => {
                    let seen = shared.write(&State::default(), None)?;
                    disk.seen = Some(seen);
                }
                Content::Text(bytes, seen) => {
                    // What the stores last wrote is known, as it would be
                    // to a running store: a file saved from a copy older
                    // than that (an editor's buffer from before a kill,
                    // saved while the service was stopped) undoes nothing.
                    if let Some(known) = shared.written_state() {
                        *lock(&shared.state) = Arc::new(known);
                    }
                    shared
                        .take_in(&mut disk, &bytes, seen)
                        .map_err(|refusal| refusal.into_open_error(&shared.path))?;
                }
            }
        }
        Ok(shared)
    }

    fn state(&self) -> Arc<State> {
        Arc::clone(&lock(&self.state))
    }

    /// The runtime of the caller, if any, else the one that opened the
    /// store (which may have shut down since: its tasks then fail).
    fn runtime(&self) -> Handle {
        Handle::try_current().unwrap_or_else(|_| self.handle.clone())
    }

    /// Applies `change`: takes in what changed on disk, checks, records,
    /// writes, and only then updates the state; blocking.
    fn apply(&self, change: Change) -> Result<AuditEntry, Error> {
        let mut disk = lock(&self.disk);
        let _lock = self.lock_file()?;
        // Another writer or a hand edit may have changed the file since it
        // was last read: the change is checked against what is there now,
        // and a bad edit is refused rather than overwritten. Except by a
        // kill or a rollback, which cannot wait for someone to fix the
        // file at 3 a.m.: they apply to the flags in force, and the edit is
        // set aside for its author.
        let overriding = overrides_bad_edits(change.action());
        // The text the write below carries the change into, and what is
        // wrong with the file when the change overrides a bad edit.
        let (current, bad) = match self.read() {
            Ok(Content::Text(bytes, seen)) if Some(seen.hash) != disk.seen.map(|s| s.hash) => {
                match self.take_in(&mut disk, &bytes, seen) {
                    // Taking the edit in may have written the file again.
                    Ok(()) => (fs::read(&self.path).ok(), None),
                    Err(Refusal::Failed(error)) => return Err(error),
                    Err(refusal) if overriding => (None, Some(refusal.describe(&self.path))),
                    Err(refusal) => return Err(refusal.into_error(&self.path)),
                }
            }
            Ok(Content::Text(bytes, _)) => (Some(bytes), None),
            // Missing or blank, which the write below repairs.
            Ok(Content::Missing | Content::Blank(_)) => (None, None),
            // Unreadable: its permissions changed by hand, say.
            Err(refusal) if overriding => (None, Some(refusal.describe(&self.path))),
            Err(refusal) => return Err(refusal.into_error(&self.path)),
        };
        let (mut next, current) = match bad {
            None => (State::clone(&self.state()), current),
            Some(_) => {
                let (base, text) = self.last_good();
                // What other writers recorded is in force from now on,
                // whatever becomes of this change: a kill based on a version
                // this process had not read yet conflicts, and its retry
                // then finds the version it must be based on.
                self.adopt(base.clone());
                (base, text)
            }
        };
        let entry = record(&mut next, change, now())?;
        let aside = match &bad {
            Some(_) => Some(self.set_aside()?),
            None => None,
        };
        // On failure the state stays as it was. The file may still hold the
        // change, if only flushing the directory failed: the next poll or
        // write then reads it back, like any other writer's change.
        let seen = match self.write(&next, current.as_deref()) {
            Ok(seen) => seen,
            Err(error) => {
                if let Some(aside) = &aside {
                    self.unset_aside(aside);
                }
                return Err(error);
            }
        };
        self.commit(next, seen, &mut disk);
        if let (Some(problem), Some(aside)) = (bad, aside) {
            tracing::error!(
                path = %self.path.display(),
                kept = %aside.display(),
                key = %entry.key,
                action = %entry.action,
                "{problem}; the {} of flag `{}` was applied to the flags in force, and the \
                 edit was moved to `{}`: make it again, fixed, in the flag file",
                entry.action,
                entry.key,
                aside.display()
            );
        }
        Ok(entry)
    }

    /// What a change that overrides a bad edit applies to: the flags in
    /// force, with what other writers recorded that this process has not
    /// read yet (from the copy every writer keeps of its last write), and
    /// that copy's text, whose layout a TOML file keeps.
    fn last_good(&self) -> (State, Option<Vec<u8>>) {
        let state = self.state();
        self.written()
            .and_then(|(document, bytes)| {
                Some((merge(document, &state, now()).ok()?.state, Some(bytes)))
            })
            .unwrap_or_else(|| (State::clone(&state), None))
    }

    /// The state the copy of the last write holds, if it is there and
    /// reads.
    fn written_state(&self) -> Option<State> {
        let (document, _) = self.written()?;
        Some(merge(document, &State::default(), now()).ok()?.state)
    }

    /// The copy of the last write, parsed, and its text.
    fn written(&self) -> Option<(Document, Vec<u8>)> {
        let bytes = fs::read(&self.written_path).ok()?;
        let document = self.format.parse(&bytes).ok()?;
        Some((document, bytes))
    }

    /// One check of the file for changes made elsewhere; blocking. Never
    /// fails: problems are logged.
    fn poll(&self) {
        let mut disk = lock(&self.disk);
        match fs::metadata(&self.path) {
            Ok(metadata) => {
                let stamp = Stamp::of(&metadata);
                if disk
                    .seen
                    .is_some_and(|seen| seen.stamp == stamp && !seen.is_racy())
                {
                    disk.pending = None;
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "cannot check the flag file");
                return;
            }
        }
        let content = match self.read() {
            Ok(content) => content,
            Err(refusal) => return self.report(&mut disk, refusal),
        };
        let seen = match content {
            Content::Missing => {
                // Reported once: `seen` is cleared, and the next poll finds
                // nothing to compare and nothing to read again.
                if disk.seen.take().is_some() {
                    tracing::error!(
                        path = %self.path.display(),
                        "the flag file is gone; keeping the flags last read, and writing them again at the next change"
                    );
                }
                return;
            }
            Content::Blank(seen) => {
                if disk.seen.map(|s| s.hash) != Some(seen.hash) {
                    tracing::error!(
                        path = %self.path.display(),
                        "the flag file is empty; keeping the flags last read, and writing them again at the next change"
                    );
                }
                disk.seen = Some(seen);
                return;
            }
            Content::Text(_, seen) => seen,
        };
        if disk.seen.map(|s| s.hash) == Some(seen.hash) {
            // Touched, or this store's own write seen again.
            disk.seen = Some(seen);
            disk.pending = None;
            return;
        }
        if disk.reported == Some(seen.hash) {
            return;
        }
        if disk.pending != Some(seen.hash) {
            // An editor may be writing the file in place: wait until it has
            // stayed the same for one interval.
            disk.pending = Some(seen.hash);
            return;
        }
        disk.pending = None;
        let result = match self.lock_file() {
            // Read again under the lock: another writer may have replaced it.
            Ok(_lock) => match self.read() {
                Ok(Content::Text(bytes, seen)) => self.take_in(&mut disk, &bytes, seen),
                Ok(_) => Ok(()),
                Err(refusal) => Err(refusal),
            },
            Err(error) => Err(Refusal::Failed(error)),
        };
        if let Err(refusal) = result {
            self.report(&mut disk, refusal);
        }
    }

    /// Logs a refusal, once per content.
    fn report(&self, disk: &mut Disk, refusal: Refusal) {
        let path = self.path.display();
        match refusal {
            Refusal::Malformed { hash, problem } => {
                if disk.reported.replace(hash) != Some(hash) {
                    tracing::error!(
                        path = %path,
                        line = problem.line,
                        column = problem.column,
                        "the flag file does not parse at {problem}; keeping the flags last read"
                    );
                }
            }
            Refusal::Invalid { hash, problems } => {
                if disk.reported.replace(hash) != Some(hash) {
                    tracing::error!(
                        path = %path,
                        "the flag file holds invalid definitions: {}; keeping the flags last read",
                        list(&problems)
                    );
                }
            }
            Refusal::Failed(error) => {
                tracing::error!(path = %path, %error, "cannot take in the changed flag file");
            }
        }
    }

    /// Takes in the file's content: parses it, records hand edits (writing
    /// the file again when it recorded any) and swaps the state. On a
    /// refusal nothing changes.
    fn take_in(&self, disk: &mut Disk, bytes: &[u8], seen: Seen) -> Result<(), Refusal> {
        let document = self
            .format
            .parse(bytes)
            .map_err(|problem| Refusal::Malformed {
                hash: seen.hash,
                problem,
            })?;
        let merged =
            merge(document, &self.state(), now()).map_err(|problems| Refusal::Invalid {
                hash: seen.hash,
                problems,
            })?;
        let seen = if merged.rewrite {
            let seen = self
                .write(&merged.state, Some(bytes))
                .map_err(Refusal::Failed)?;
            for key in &merged.stale {
                tracing::warn!(
                    path = %self.path.display(),
                    key = %key,
                    "the flag file was saved from a copy older than this flag's latest \
                     versions (their audit entries were missing): its definition there was \
                     not taken and the live one was written back; edit the file as it is now"
                );
            }
            for entry in &merged.recorded {
                tracing::info!(
                    path = %self.path.display(),
                    key = %entry.key,
                    version = entry.version,
                    action = %entry.action,
                    "recorded a hand edit of the flag file"
                );
            }
            seen
        } else {
            seen
        };
        self.commit(merged.state, seen, disk);
        Ok(())
    }

    /// Makes `state` current, as written to or read from `seen`.
    fn commit(&self, state: State, seen: Seen, disk: &mut Disk) {
        disk.seen = Some(seen);
        disk.pending = None;
        disk.reported = None;
        self.adopt(state);
    }

    /// Makes `state` current in memory, waking the readers when it
    /// changed; the file is the caller's business (a kill overriding a bad
    /// edit adopts what other writers recorded before it writes).
    fn adopt(&self, state: State) {
        let mut current = lock(&self.state);
        if **current == state {
            return;
        }
        *current = Arc::new(state);
        drop(current);
        // After the swap, so that woken readers find the change.
        self.revision
            .send_modify(|revision| *revision = revision.wrapping_add(1));
    }

    fn read(&self) -> Result<Content, Refusal> {
        let failed = |error: io::Error| {
            Refusal::Failed(Error::backend(format!(
                "cannot read `{}`: {error}",
                self.path.display()
            )))
        };
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Content::Missing),
            Err(error) => return Err(failed(error)),
        };
        // Taken from the open file before reading, so that a write landing
        // meanwhile changes the stamp the next poll compares.
        let metadata = file.metadata().map_err(failed)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(failed)?;
        let seen = Seen::of(&metadata, &bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Content::Blank(seen));
        }
        Ok(Content::Text(bytes, seen))
    }

    /// Writes `state` atomically; returns what the file now is. A TOML
    /// file keeps the comments and layout of `current`, the file's text as
    /// read under the writers' lock (`None` when there is none), where the
    /// content stays.
    fn write(&self, state: &State, current: Option<&[u8]>) -> Result<Seen, Error> {
        let previous = match self.format {
            Format::Toml => current.and_then(|bytes| std::str::from_utf8(bytes).ok()),
            Format::Json => None,
        };
        let bytes = self.format.render(state, previous).map_err(|error| {
            Error::backend(format!(
                "cannot write the flags as {}: {error}",
                self.format
            ))
        })?;
        let stamp = write_atomically(
            &self.path,
            &self.temp_path,
            &self.path,
            &bytes,
            self.fault(),
        )
        .map_err(|error| {
            Error::backend(format!(
                "cannot write the flag file `{}`: {error}",
                self.path.display()
            ))
        })?;
        // After the file, so that the copy is never ahead of it. The change
        // stands without it: only a kill overriding a bad edit, or an open
        // of a stale copy, would miss what it lacks.
        if let Err(error) = write_atomically(
            &self.written_path,
            &self.temp_path,
            &self.path,
            &bytes,
            None,
        ) {
            tracing::warn!(
                path = %self.written_path.display(),
                %error,
                "cannot keep a copy of the flag file's last write"
            );
        }
        Ok(Seen {
            stamp,
            hash: hash(&bytes),
        })
    }

    /// Keeps the file, a bad edit that a kill or a rollback is about to
    /// replace, next to it as `{name}.rejected-{time}`: a second name for
    /// the same file, so that nothing is copied (an unreadable file too)
    /// and an editor still writing it in place finishes there. Where the
    /// file system has no hard links, a copy. Returns where.
    fn set_aside(&self) -> Result<PathBuf, Error> {
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        // `:` is not allowed in Windows file names, and awkward in shells.
        let time = crate::time::format(now()).replace(':', "-");
        let failed = |aside: &Path, error: io::Error| {
            Error::backend(format!(
                "cannot set the bad edit of the flag file aside in `{}` (nothing was written): {error}",
                aside.display()
            ))
        };
        for tried in 0..100 {
            let suffix = if tried == 0 {
                String::new()
            } else {
                format!("-{tried}")
            };
            let aside = self
                .path
                .with_file_name(format!("{name}.rejected-{time}{suffix}"));
            let kept = match fs::hard_link(&self.path, &aside) {
                Ok(()) => sync_directory(&aside).inspect_err(|_| {
                    // The file is still where it was.
                    let _ = fs::remove_file(&aside);
                }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(link) => match fs::read(&self.path) {
                    Ok(bytes) => keep(&aside, &self.path, &bytes),
                    Err(_) => Err(link),
                },
            };
            return match kept {
                Ok(()) => Ok(aside),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => Err(failed(&aside, error)),
            };
        }
        Err(failed(
            &self.path.with_file_name(format!("{name}.rejected-{time}")),
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }

    /// Undoes [`set_aside`](Self::set_aside) after the write failed, when
    /// the file still holds the edit: a second copy would only mislead.
    fn unset_aside(&self, aside: &Path) {
        let same = match (fs::metadata(&self.path), fs::metadata(aside)) {
            (Ok(file), Ok(kept)) => {
                (inode(&file) != 0
                    && inode(&file) == inode(&kept)
                    && device(&file) == device(&kept))
                    || matches!((fs::read(&self.path), fs::read(aside)), (Ok(a), Ok(b)) if a == b)
            }
            _ => false,
        };
        if same {
            let _ = fs::remove_file(aside);
        } else {
            tracing::error!(
                path = %self.path.display(),
                kept = %aside.display(),
                "the bad edit of the flag file is kept in `{}`; writing the change failed",
                aside.display()
            );
        }
    }

    /// Takes the lock every writer of the file holds, across processes;
    /// released when the returned file is dropped.
    fn lock_file(&self) -> Result<File, Error> {
        let failed = |error: io::Error| {
            Error::backend(format!(
                "cannot lock `{}`: {error}",
                self.lock_path.display()
            ))
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(failed)?;
        match file.lock() {
            Ok(()) => Ok(file),
            // A file system without locks: one process per file it is.
            Err(error) if error.kind() == io::ErrorKind::Unsupported => Ok(file),
            Err(error) => Err(failed(error)),
        }
    }

    #[cfg(test)]
    fn fault(&self) -> Option<Step> {
        *lock(&self.fault)
    }

    #[cfg(not(test))]
    fn fault(&self) -> Option<Step> {
        None
    }
}

// No lock is held across file work that could panic halfway through an
// update: state is swapped whole, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The time of a change, to the millisecond the file holds: a change
/// reads the same from this store as from the file after a restart.
fn now() -> SystemTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH
        + Duration::new(
            since_epoch.as_secs(),
            since_epoch.subsec_millis() * 1_000_000,
        )
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Writes `bytes` to `temp` (with the permissions of `like`), flushes it,
/// renames it over `path` and flushes the directory, so that a crash at
/// any point leaves the old file or the new one. Returns the new file's
/// stamp.
fn write_atomically(
    path: &Path,
    temp: &Path,
    like: &Path,
    bytes: &[u8],
    fault: Option<Step>,
) -> io::Result<Stamp> {
    let fail_after = |step: Step| {
        if fault == Some(step) {
            Err(io::Error::other(format!("injected failure after {step:?}")))
        } else {
            Ok(())
        }
    };
    let stamp = match write_temporary(like, temp, bytes, fail_after) {
        Ok(stamp) => stamp,
        Err(error) => {
            // Best effort: a leftover is overwritten by the next write.
            let _ = fs::remove_file(temp);
            return Err(error);
        }
    };
    fs::rename(temp, path)?;
    fail_after(Step::Renamed)?;
    sync_directory(path)?;
    Ok(stamp)
}

/// Writes and flushes the temporary file of [`write_atomically`], with
/// the permissions of `like` when it exists.
fn write_temporary(
    like: &Path,
    temp: &Path,
    bytes: &[u8],
    fail_after: impl Fn(Step) -> io::Result<()>,
) -> io::Result<Stamp> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)?;
    // Keep the permissions the file was given (say, readable by its owner
    // only) rather than the defaults of a new file; but the store must be
    // able to read and write what it writes (a file made unreadable by
    // hand, set aside by a kill, must not pass that on).
    if let Ok(metadata) = fs::metadata(like) {
        #[allow(unused_mut)] // changed on Unix only
        let mut permissions = metadata.permissions();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            permissions.set_mode(permissions.mode() | 0o600);
        }
        file.set_permissions(permissions)?;
    }
    file.write_all(bytes)?;
    fail_after(Step::Written)?;
    file.sync_all()?;
    fail_after(Step::Synced)?;
    // A rename keeps the modification time and the inode.
    file.metadata().map(|metadata| Stamp::of(&metadata))
}

/// Whether a change of `action` goes through a bad hand edit, setting it
/// aside: the changes that make a flag safe again.
fn overrides_bad_edits(action: &Action) -> bool {
    matches!(action, Action::Kill | Action::Rollback)
}

/// Writes `bytes` to the new file `aside`, with the permissions of
/// `like`, and flushes it and its directory.
fn keep(aside: &Path, like: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(aside)?;
    let written = (|| {
        if let Ok(metadata) = fs::metadata(like) {
            file.set_permissions(metadata.permissions())?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        sync_directory(aside)
    })();
    if written.is_err() {
        // Best effort: a partial copy would pass for the edit.
        let _ = fs::remove_file(aside);
    }
    written
}

/// Flushes the directory entry of `path`, which makes a rename durable.
#[cfg(unix)]
fn sync_directory(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Windows cannot open a directory as a file; its renames are durable
/// once the file is flushed.
#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Applies `change` to `state`, checked and recorded like any store does.
fn record(state: &mut State, change: Change, at: SystemTime) -> Result<AuditEntry, Error> {
    let key = change.key().to_owned();
    let latest = state
        .log
        .iter()
        .filter(|entry| entry.key == key)
        .map(|entry| entry.version)
        .max();
    let before = state.live.get(&key).map(|stored| stored.flag.clone());
    let version = change.check(latest, before.is_some())?;
    let entry = change.record(version, before, at);
    match &entry.after {
        Some(flag) => state
            .live
            .insert(key, StoredFlag::new(flag.clone(), version)),
        None => state.live.remove(&key),
    };
    state.log.push(entry.clone());
    Ok(entry)
}

/// The state a file describes, given what this process knew.
#[derive(Debug)]
struct Merged {
    state: State,
    /// Hand edits recorded now.
    recorded: Vec<AuditEntry>,
    /// Flags whose definition in the file was not taken: the file was
    /// saved from a copy older than their latest versions.
    stale: Vec<String>,
    /// Whether the file must be written to hold `state`.
    rewrite: bool,
}

/// Reconciles a file with the state this process knew:
///
/// - the audit log is append-only: entries this process knew and the file
///   lost (an editor saving a stale copy over it) are put back;
/// - the live flags are what the log says, at its versions;
/// - a definition that differs from what the log says was edited by hand,
///   and is recorded as a change by `file`, checked like any change;
/// - except for a flag whose entries the file lost: the file was saved
///   from a copy older than them (an editor's stale buffer), so what it
///   says of that flag is its past, not an edit. Taking it would undo a
///   kill, or delete a flag created since, without anyone asking.
///
/// Returns the violations of every definition edited by hand that is
/// invalid, each located in the file.
fn merge(document: Document, known: &State, at: SystemTime) -> Result<Merged, Vec<Violation>> {
    let mut log = document.audit;
    let in_file: HashSet<(String, u64)> = log
        .iter()
        .map(|entry| (entry.key.clone(), entry.version))
        .collect();
    let lost: Vec<AuditEntry> = known
        .log
        .iter()
        .filter(|entry| !in_file.contains(&(entry.key.clone(), entry.version)))
        .cloned()
        .collect();
    let restored = !lost.is_empty();
    let behind: BTreeSet<String> = lost.iter().map(|entry| entry.key.clone()).collect();
    log.extend(lost);
    let mut stale = Vec::new();

    let mut latest: BTreeMap<&str, &AuditEntry> = BTreeMap::new();
    for entry in &log {
        let slot = latest.entry(entry.key.as_str()).or_insert(entry);
        if entry.version >= slot.version {
            *slot = entry;
        }
    }
    let live: BTreeMap<String, StoredFlag> = latest
        .values()
        .filter_map(|entry| {
            let flag = entry.after.clone()?;
            Some((entry.key.clone(), StoredFlag::new(flag, entry.version)))
        })
        .collect();

    let mut changes = Vec::new();
    for (key, stored) in &live {
        if !document.flags.0.contains_key(key) {
            if behind.contains(key) {
                stale.push(key.clone());
                continue;
            }
            let delete = Change::new(
                Action::Delete,
                key.as_str(),
                Expected::Version(stored.version),
                None,
                HAND_ACTOR,
                HAND_REASON,
            );
            changes.push((key.clone(), delete));
        }
    }
    let Entries(definitions, without_enabled) = document.flags;
    for (key, mut definition) in definitions {
        // A definition written without `enabled` keeps a kill: only an
        // explicit `enabled = true` turns a killed flag back on (a
        // definition copied from the docs or another flag would otherwise
        // undo the kill unnoticed).
        if without_enabled.contains(&key)
            && live.get(&key).is_some_and(|stored| !stored.flag.enabled)
        {
            definition.enabled = false;
        }
        let change = match live.get(&key) {
            Some(stored) if stored.flag == definition => continue,
            _ if behind.contains(&key) => {
                stale.push(key);
                continue;
            }
            // Only what the edit brings in is refused, not what a newer
            // release wrote there before (an unknown kind).
            Some(stored) => Change::checked(
                Action::Update,
                key.as_str(),
                Expected::Version(stored.version),
                Some(definition),
                HAND_ACTOR,
                HAND_REASON,
                &stored.flag.validate().err().unwrap_or_default(),
            ),
            None => Change::create(definition, HAND_ACTOR, HAND_REASON),
        };
        changes.push((key, change));
    }

    let mut state = State { live, log };
    let mut recorded = Vec::new();
    let mut problems = Vec::new();
    for (key, change) in changes {
        let prefix = format!("/flags/{}/definition", pointer_token(&key));
        match change.and_then(|change| record(&mut state, change, at)) {
            Ok(entry) => recorded.push(entry),
            Err(error) if error.violations().is_empty() => {
                problems.push(Violation::new(prefix, error.to_string()));
            }
            Err(error) => problems.extend(error.violations().iter().map(|violation| {
                Violation::new(
                    format!("{prefix}{}", violation.pointer),
                    violation.message.clone(),
                )
            })),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let rewrite = restored || !recorded.is_empty();
    Ok(Merged {
        stale,
        state,
        recorded,
        rewrite,
    })
}

/// The file's format, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Toml,
}

impl Format {
    fn of(path: &Path) -> Result<Self, Error> {
        let extension = path
            .extension()
            .map(|extension| extension.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("json") => Ok(Self::Json),
            Some("toml") => Ok(Self::Toml),
            _ => Err(Error::backend(format!(
                "the flag file `{}` must end in `.json` or `.toml`, which says its format",
                path.display()
            ))),
        }
    }

    /// The file's new content. `previous`, the TOML file's current text,
    /// gives the layout to keep.
    fn render(self, state: &State, previous: Option<&str>) -> Result<Vec<u8>, String> {
        let document = DocumentOut {
            flags: state
                .live
                .iter()
                .map(|(key, stored)| {
                    let entry = EntryOut {
                        version: stored.version,
                        definition: &stored.flag,
                    };
                    (key.as_str(), entry)
                })
                .collect(),
            audit: &state.log,
        };
        match self {
            Self::Json => {
                let mut bytes =
                    serde_json::to_vec_pretty(&document).map_err(|error| error.to_string())?;
                bytes.push(b'\n');
                Ok(bytes)
            }
            Self::Toml => {
                let fresh = toml::to_string(&document).map_err(|error| error.to_string())?;
                let text = previous
                    .and_then(|previous| super::toml_layout::keep_layout(previous, &fresh))
                    .unwrap_or(fresh);
                Ok(text.into_bytes())
            }
        }
    }

    fn parse(self, bytes: &[u8]) -> Result<Document, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|error| {
            let valid = String::from_utf8_lossy(&bytes[..error.valid_up_to()]);
            let (line, column) = line_column(&valid, valid.len());
            ParseError {
                line,
                column,
                message: "the file is not UTF-8".to_owned(),
            }
        })?;
        match self {
            Self::Json => serde_json::from_str(text).map_err(|error| {
                let message = error.to_string();
                let suffix = format!(" at line {} column {}", error.line(), error.column());
                ParseError {
                    line: error.line(),
                    column: error.column(),
                    message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
                }
            }),
            Self::Toml => toml::from_str(text).map_err(|error| {
                let (line, column) = error
                    .span()
                    .map_or((0, 0), |span| line_column(text, span.start));
                ParseError {
                    line,
                    column,
                    message: error.message().to_owned(),
                }
            }),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        })
    }
}

/// Where and why a file does not parse; lines and columns count from 1
/// (0: unknown).
#[derive(Debug)]
struct ParseError {
    line: usize,
    column: usize,
    message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// The line and column, from 1, of the byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    flags: BTreeMap<&'a str, EntryOut<'a>>,
    audit: &'a [AuditEntry],
}

#[derive(Serialize)]
struct EntryOut<'a> {
    version: u64,
    definition: &'a Flag,
}

/// A file as read. Unknown top-level fields are refused: a misspelt
/// `flags` must not read as "every flag deleted".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    flags: Entries,
    #[serde(default)]
    audit: Vec<AuditEntry>,
}

/// The `flags` table: each definition by its key. Its `version` is read
/// and checked to be a number, but the store's count is the log's. Then
/// the keys whose definition leaves `enabled` out.
#[derive(Debug, Default)]
struct Entries(BTreeMap<String, Flag>, BTreeSet<String>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flags by key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut entries = BTreeMap::new();
        let mut without_enabled = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.contains_key(&key) {
                return Err(de::Error::custom(format!("flag `{key}` appears twice")));
            }
            let (flag, enabled_given) = map.next_value_seed(EntrySeed(&key))?;
            if !enabled_given {
                without_enabled.insert(key.clone());
            }
            entries.insert(key, flag);
        }
        Ok(Entries(entries, without_enabled))
    }
}

/// One entry of `flags`, whose key names the flag.
struct EntrySeed<'k>(&'k str);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EntryField {
    Version,
    Definition,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    /// The definition, and whether it gives `enabled`.
    type Value = (Flag, bool);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(Flag, bool), D::Error> {
        deserializer.deserialize_struct("entry", &["version", "definition"], self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = (Flag, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the version and definition of flag `{}`", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(Flag, bool), A::Error> {
        let mut version = false;
        let mut definition = None;
        while let Some(field) = map.next_key::<EntryField>()? {
            match field {
                EntryField::Version if version => {
                    return Err(de::Error::duplicate_field("version"));
                }
                EntryField::Version => {
                    map.next_value::<u64>()?;
                    version = true;
                }
                EntryField::Definition if definition.is_some() => {
                    return Err(de::Error::duplicate_field("definition"));
                }
                EntryField::Definition => {
                    definition = Some(map.next_value_seed(DefinitionSeed(self.0))?);
                }
            }
        }
        definition.ok_or_else(|| de::Error::missing_field("definition"))
    }
}

/// A definition whose `key` may be left out: it is the entry's.
struct DefinitionSeed<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for DefinitionSeed<'_> {
    type Value = (Flag, bool);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(Flag, bool), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DefinitionSeed<'_> {
    type Value = (Flag, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the definition of flag `{}`", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(Flag, bool), A::Error> {
        // Reading through the file's own deserializer, rather than through
        // an intermediate value, keeps the line of an error and TOML's
        // dates.
        let enabled_given = std::cell::Cell::new(false);
        let flag = Flag::deserialize(MapAccessDeserializer::new(WithKey {
            key: self.0,
            map,
            next: Injected::Key,
            enabled_given: &enabled_given,
        }))?;
        Ok((flag, enabled_given.get()))
    }
}

/// A definition's fields, with `key` first, given by the entry; notes
/// whether `enabled` is among them.
struct WithKey<'k, A> {
    key: &'k str,
    map: A,
    next: Injected,
    enabled_given: &'k std::cell::Cell<bool>,
}

#[derive(PartialEq, Eq)]
enum Injected {
    Key,
    Value,
    Done,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithKey<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.next == Injected::Key {
            self.next = Injected::Value;
            return seed.deserialize(StrDeserializer::new("key")).map(Some);
        }
        while let Some(name) = self.map.next_key::<String>()? {
            if name == "key" {
                let written: String = self.map.next_value()?;
                if written != self.key {
                    return Err(de::Error::custom(format!(
                        "the definition's key `{written}` is not its entry's `{}`",
                        self.key
                    )));
                }
                continue;
            }
            if name == "enabled" {
                self.enabled_given.set(true);
            }
            return seed.deserialize(StringDeserializer::new(name)).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        if self.next == Injected::Value {
            self.next = Injected::Done;
            return seed.deserialize(StrDeserializer::new(self.key));
        }
        self.map.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind;

    fn change(flag: Flag) -> Change {
        Change::create(flag, "alice", "launch").unwrap()
    }

    fn read_state(path: &Path) -> State {
        let format = Format::of(path).unwrap();
        let document = format.parse(&fs::read(path).unwrap()).unwrap();
        merge(document, &State::default(), now()).unwrap().state
    }

    fn keys(state: &State) -> Vec<(String, u64)> {
        state
            .live
            .iter()
            .map(|(key, stored)| (key.clone(), stored.version))
            .collect()
    }

    #[tokio::test]
    async fn a_failed_write_leaves_the_old_or_the_new_file_and_loses_nothing_acknowledged() {
        for extension in ["json", "toml"] {
            for step in [Step::Written, Step::Synced, Step::Renamed] {
                // Arrange
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(format!("flags.{extension}"));
                let store = FileStore::open_with_poll(&path, Duration::ZERO)
                    .await
                    .unwrap();
                store.apply(change(Flag::boolean("kept"))).await.unwrap();
                let old = fs::read(&path).unwrap();
                let revision = store.subscribe();

                // Act
                store.fail_after(Some(step));
                let error = store
                    .apply(change(Flag::boolean("failed")))
                    .await
                    .unwrap_err();

                // Assert: the caller is told, and this store keeps the old state.
                assert_eq!(error.kind(), ErrorKind::Backend, "{step:?}");
                assert!(error.to_string().contains("injected"), "{error}");
                assert!(store.get("failed").await.unwrap().is_none(), "{step:?}");
                assert!(!revision.has_changed().unwrap(), "{step:?}");
                // The file parses and is the old one, or (once renamed) the new.
                let on_disk = read_state(&path);
                if step == Step::Renamed {
                    assert_eq!(
                        keys(&on_disk),
                        [("failed".to_owned(), 1), ("kept".to_owned(), 1)]
                    );
                } else {
                    assert_eq!(fs::read(&path).unwrap(), old, "{step:?}");
                }
                // A fresh store sees every acknowledged change.
                let reopened = FileStore::open_with_poll(&path, Duration::ZERO)
                    .await
                    .unwrap();
                assert_eq!(reopened.get("kept").await.unwrap().unwrap().version, 1);
                assert_eq!(reopened.history("kept").await.unwrap().len(), 1);
                drop(reopened);

                // And the store goes on: its next write is based on the file.
                store.fail_after(None);
                store.apply(change(Flag::boolean("next"))).await.unwrap();
                let on_disk = read_state(&path);
                assert!(on_disk.live.contains_key("kept"), "{step:?}");
                assert!(on_disk.live.contains_key("next"), "{step:?}");
                assert_eq!(
                    on_disk.live.contains_key("failed"),
                    step == Step::Renamed,
                    "{step:?}"
                );
                assert_eq!(
                    on_disk
                        .log
                        .iter()
                        .filter(|entry| entry.key == "failed")
                        .count(),
                    usize::from(step == Step::Renamed),
                    "{step:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn dropping_the_store_stops_the_polling_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open_with_poll(dir.path().join("f.json"), Duration::from_millis(5))
            .await
            .unwrap();
        let weak = Arc::downgrade(&store.shared);
        drop(store);
        let deadline = Instant::now() + Duration::from_secs(5);
        while weak.strong_count() > 0 {
            assert!(Instant::now() < deadline, "the polling task kept the store");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn toml_leaves_out_what_is_absent() {
        let mut state = State::default();
        record(&mut state, change(Flag::boolean("a")), now()).unwrap();
        let text = String::from_utf8(Format::Toml.render(&state, None).unwrap()).unwrap();
        assert!(!text.contains("before"), "{text}");
        assert!(text.contains("[flags.a.definition]"), "{text}");
        let back = Format::Toml.parse(text.as_bytes()).unwrap();
        assert_eq!(back.audit, state.log);
        assert_eq!(back.flags.0["a"], Flag::boolean("a"));
    }

    #[test]
    fn a_definition_takes_its_key_from_its_entry() {
        let text = br#"{"flags": {"a": {"definition": {"type": "bool", "variants": {"off": false}, "default_variant": "off"}}}}"#;
        let document = Format::Json.parse(text).unwrap();
        assert_eq!(document.flags.0["a"].key, "a");
    }

    #[test]
    fn a_definition_under_another_entrys_key_is_refused_with_its_line() {
        let text = "[flags.a]\nversion = 1\n\n[flags.a.definition]\nkey = \"b\"\ntype = \"bool\"\n";
        let error = Format::Toml.parse(text.as_bytes()).unwrap_err();
        assert!(
            error.message.contains("`b` is not its entry's `a`"),
            "{error}"
        );
        assert!(error.line >= 4, "{error}");
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let json = Format::Json
            .parse(b"{\n  \"flags\": {\n    \"a\": nope\n}")
            .unwrap_err();
        assert_eq!((json.line, json.column), (3, 11), "{json}");
        assert!(!json.message.contains("at line"), "{json}");
        let toml = Format::Toml
            .parse(b"[flags.a]\nversion = = 1\n")
            .unwrap_err();
        assert_eq!(toml.line, 2, "{toml}");
    }

    #[test]
    fn a_misspelt_top_level_field_is_refused_not_read_as_no_flags() {
        let error = Format::Json.parse(br#"{"flag": {}}"#).unwrap_err();
        assert!(error.message.contains("unknown field `flag`"), "{error}");
    }

    #[test]
    fn a_flag_twice_in_json_is_refused() {
        let definition =
            json!({"type": "bool", "variants": {"off": false}, "default_variant": "off"});
        let text = format!(
            r#"{{"flags": {{"a": {{"definition": {definition}}}, "a": {{"definition": {definition}}}}}}}"#
        );
        let error = Format::Json.parse(text.as_bytes()).unwrap_err();
        assert!(error.message.contains("appears twice"), "{error}");
    }

    #[test]
    fn entries_lost_from_the_file_are_put_back() {
        let mut known = State::default();
        record(&mut known, change(Flag::boolean("a")), now()).unwrap();
        let stale = Document {
            flags: Entries::default(),
            audit: Vec::new(),
        };
        let merged = merge(stale, &known, now()).unwrap();
        assert!(merged.rewrite);
        // The file was saved from a copy older than the flag: its absence
        // there is the past, not a hand delete.
        let actions: Vec<&str> = merged.state.log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create"]);
        assert!(merged.recorded.is_empty());
        assert!(merged.state.live.contains_key("a"));
        assert_eq!(merged.stale, ["a"]);
    }

    #[test]
    fn a_flag_deleted_by_hand_with_its_log_intact_is_a_hand_delete() {
        let mut known = State::default();
        record(&mut known, change(Flag::boolean("a")), now()).unwrap();
        let edited = Document {
            flags: Entries::default(),
            audit: known.log.clone(),
        };
        let merged = merge(edited, &known, now()).unwrap();
        let actions: Vec<&str> = merged.state.log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "delete"]);
        assert_eq!(merged.recorded[0].actor, HAND_ACTOR);
        assert_eq!(merged.recorded[0].version, 2);
        assert!(merged.stale.is_empty());
    }

    #[test]
    fn an_invalid_hand_edit_is_located_in_the_file() {
        let document = Document {
            flags: Entries(
                BTreeMap::from([("a".to_owned(), Flag::boolean("a").default_variant("maybe"))]),
                BTreeSet::new(),
            ),
            audit: Vec::new(),
        };
        let problems = merge(document, &State::default(), now()).unwrap_err();
        assert_eq!(problems[0].pointer, "/flags/a/definition/default_variant");
    }

    #[test]
    fn an_unknown_extension_says_which_are_known() {
        let error = Format::of(Path::new("flags.yaml")).unwrap_err();
        assert!(error.to_string().contains("`.json` or `.toml`"), "{error}");
        assert_eq!(Format::of(Path::new("F.JSON")).unwrap(), Format::Json);
    }

    #[test]
    fn lines_and_columns_count_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}

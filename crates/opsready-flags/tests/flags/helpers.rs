//! A store that serves fixed definitions, valid or not, and a runtime for
//! property tests.

use std::future::ready;

use opsready_flags::{AuditEntry, BoxFuture, Change, Error, Store, StoredFlag};
use tokio::sync::watch;

/// Serves the definitions it was built with, as a file edited by hand
/// might: unvalidated. Refuses changes.
pub(crate) struct FixedStore {
    flags: Vec<StoredFlag>,
    revision: watch::Sender<u64>,
}

impl FixedStore {
    pub(crate) fn new(flags: Vec<StoredFlag>) -> Self {
        Self {
            flags,
            revision: watch::Sender::new(0),
        }
    }
}

impl Store for FixedStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredFlag>, Error>> {
        Box::pin(ready(Ok(self.flags.clone())))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredFlag>, Error>> {
        let found = self.flags.iter().find(|s| s.flag.key == key).cloned();
        Box::pin(ready(Ok(found)))
    }

    fn apply(&self, _change: Change) -> BoxFuture<'_, Result<AuditEntry, Error>> {
        Box::pin(ready(Err(Error::backend("read-only"))))
    }

    fn history<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Vec<AuditEntry>, Error>> {
        Box::pin(ready(Ok(Vec::new())))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}

/// A runtime for the async parts of a property test case.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

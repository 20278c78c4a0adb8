//! Opening a persistent database in the browser: SQLite files in the Origin Private File
//! System (OPFS), through the sync-access-handle pool VFS of `sqlite-wasm-vfs`.
//!
//! The pool needs `FileSystemSyncAccessHandle`, which browsers give only to dedicated
//! workers, so a persistent `Database::open` works in a worker; on a page's main thread
//! it fails with [`Error::StorageUnavailable`] saying so (`Database::in_memory` works
//! everywhere). The README's browser section explains the choice against IndexedDB.
//!
//! The pool holds an exclusive access handle on each of its OPFS files while it is
//! installed, so only one worker of an origin can use it at a time. Before touching it
//! a store takes a Web Lock named after the pool and holds it until it closes: a second
//! tab of the app is refused at once with [`Error::OpenInAnotherTab`] (instead of an
//! OPFS error from deep inside the VFS), and it can open as soon as the first closes.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use sqlite_wasm_vfs::sahpool::{OpfsSAHError, OpfsSAHPoolCfgBuilder, install};

use super::{OpenOptions, Store, prepare_writer, start_writer};
use crate::schema::{CheckedSchema, Schema};
use crate::{Error, Result};

/// The VFS (and its OPFS directory) every livesync database of an origin lives in.
const VFS_NAME: &str = "livesync-opfs";
const VFS_DIRECTORY: &str = ".livesync";

/// The browser has no reader connections (one thread, one connection): a store always
/// reads on its writer, as an in-memory store does natively.
pub(crate) enum ReaderPool {}

impl ReaderPool {
    pub(super) async fn run<T: Send + 'static>(
        &self,
        _read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match *self {}
    }

    pub(super) async fn close(&self) {
        match *self {}
    }
}

impl Store {
    /// Opens (or creates) the database `path` (a file name, such as `"app.db"`) in OPFS
    /// and applies `schema`.
    pub(crate) async fn open(
        path: impl AsRef<Path>,
        schema: Schema,
        _options: OpenOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let checked = CheckedSchema::check(&schema)?;
        let lock = super::ProcessLock::acquire(&format!("livesync:{VFS_NAME}"), &path).await?;
        install_pool().await?;
        let writer = {
            let (path, checked) = (path.clone(), checked.clone());
            start_writer(move |publisher| {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags_and_vfs(&path, flags, VFS_NAME)
                    .map_err(|e| Error::while_opening(e, &path))?;
                // No WAL: the pool has no shared memory. The rollback journal is another
                // file of the pool; synchronous = NORMAL skips one flush per commit.
                conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768")
                    .map_err(|e| Error::while_opening(e, &path))?;
                prepare_writer(conn, &checked, publisher).map_err(|e| e.on_file(&path))
            })
            .await?
        };
        tracing::debug!(path = %path.display(), "database opened in OPFS");
        let store = Self::assemble(Some(path), writer, None, schema, checked);
        *store
            .process_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lock);
        Ok(store)
    }
}

/// Installs the pool, or reuses it when this worker installed it before.
async fn install_pool() -> Result<()> {
    let config = OpfsSAHPoolCfgBuilder::new()
        .vfs_name(VFS_NAME)
        .directory(VFS_DIRECTORY)
        .build();
    match install::<sqlite_wasm_rs::WasmOsCallback>(&config, false).await {
        Ok(_pool) => Ok(()), // dropping the handle leaves the VFS installed
        Err(OpfsSAHError::NotSupported) => Err(Error::StorageUnavailable {
            reason: "persistent storage needs OPFS sync access handles, which browsers give only to dedicated workers in a secure context (https or localhost): open the database inside a dedicated worker, or use Database::in_memory on the page".into(),
        }),
        Err(e) => Err(Error::StorageUnavailable {
            reason: format!(
                "the browser refused livesync's OPFS storage ({e}); in private browsing or with storage disabled, use Database::in_memory"
            ),
        }),
    }
}

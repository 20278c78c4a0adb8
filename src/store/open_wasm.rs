//! Opening a persistent database in the browser: SQLite files in the Origin Private File
//! System (OPFS).
//!
//! In a dedicated worker, through the sync-access-handle pool VFS of `sqlite-wasm-vfs`:
//! SQLite reads and writes the file itself, a commit costs what it writes. Browsers give
//! sync access handles only to dedicated workers, so on a page's main thread (where a
//! Dioxus or Leptos app renders) the database is an in-memory image loaded at open and
//! saved after each commit through OPFS's asynchronous API (`page_storage_wasm.rs`),
//! which costs a copy of the whole image per save. The README's browser section has the
//! figures and the choice against IndexedDB.
//!
//! The pool holds an exclusive access handle on each of its OPFS files while it is
//! installed and not paused, and two writers of one file would lose each other's
//! commits, so only one tab or worker of an origin uses livesync's storage at a time.
//! The first store opened in a context takes a Web Lock (`tab_lock_wasm.rs`) and resumes
//! the pool; when the last one closes, the pool is paused (its handles released) and so
//! is the lock. A second tab of the app is therefore refused at once with
//! [`Error::OpenInAnotherTab`] (instead of an OPFS error from deep inside the VFS), and
//! can open as soon as the first has closed its databases, reloaded or gone.

use std::cell::RefCell;
use std::path::Path;

use js_sys::Promise;
use rusqlite::{Connection, MAIN_DB, OpenFlags};
use sqlite_wasm_vfs::sahpool::{OpfsSAHError, OpfsSAHPoolCfgBuilder, OpfsSAHPoolUtil, install};

use super::page_storage_wasm::{self, PageSaves};
use super::tab_lock_wasm::TabLock;

use super::{OpenOptions, Store, Subscriptions, Writer, prepare_writer, start_writer};
use crate::schema::{CheckedSchema, Schema};
use crate::{Error, Result};

/// The VFS (and its OPFS directory) every livesync database of an origin lives in.
const VFS_NAME: &str = "livesync-opfs";
const VFS_DIRECTORY: &str = ".livesync";
/// The Web Lock guarding the pool.
const LOCK_NAME: &str = "livesync:livesync-opfs";

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
    /// and applies `schema`: in the pool in a dedicated worker, as a saved image on a
    /// page's main thread (`page_storage_wasm.rs`).
    pub(crate) async fn open(
        path: impl AsRef<Path>,
        schema: Schema,
        _options: OpenOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let checked = CheckedSchema::check(&schema)?;
        let (lease, backend) = StorageLease::acquire(&path).await?;
        let (writer, saves) = match backend {
            Backend::Pool => (open_in_pool(&path, &checked).await?, None),
            Backend::Page => {
                let name = path.to_string_lossy().into_owned();
                let image = page_storage_wasm::load(&name).await?;
                let writer = {
                    let (path, checked) = (path.clone(), checked.clone());
                    start_writer(move |publisher| {
                        let mut conn = Connection::open_in_memory()?;
                        if let Some(image) = image {
                            let len = image.len();
                            conn.deserialize_read_exact(MAIN_DB, &image[..], len, false)
                                .map_err(|e| Error::while_opening(e, &path))?;
                        }
                        prepare_writer(conn, &checked, publisher).map_err(|e| e.on_file(&path))
                    })
                    .await?
                };
                (writer, Some(PageSaves::new(&name)))
            }
        };
        if let Some(saves) = saves {
            writer.0.save_commits_with(saves);
        }
        tracing::debug!(path = %path.display(), ?backend, "database opened in OPFS");
        let store = Self::assemble(Some(path), writer, None, schema, checked, 1);
        *store
            .process_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lease);
        Ok(store)
    }
}

/// The database file in the OPFS pool (a dedicated worker).
async fn open_in_pool(path: &Path, checked: &CheckedSchema) -> Result<(Writer, Subscriptions)> {
    let (path, checked) = (path.to_path_buf(), checked.clone());
    start_writer(move |publisher| {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags_and_vfs(&path, flags, VFS_NAME)
            .map_err(|e| Error::while_opening(e, &path))?;
        // No WAL: the pool has no shared memory. The rollback journal is another file of
        // the pool, kept between commits (PERSIST: each commit zeroes its header instead
        // of deleting it, which made single-row commits 2-3x cheaper than DELETE in
        // tests/browser_figures.rs); synchronous = NORMAL skips one flush per commit.
        conn.execute_batch(
            "PRAGMA journal_mode = PERSIST; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768",
        )
        .map_err(|e| Error::while_opening(e, &path))?;
        prepare_writer(conn, &checked, publisher).map_err(|e| e.on_file(&path))
    })
    .await
}

/// Where this context's databases live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The OPFS sync-access-handle pool: a dedicated worker.
    Pool,
    /// A page's main thread, where the pool cannot run: saved images.
    Page,
}

/// What this context (page or worker) holds of the browser storage: the Web Lock and
/// the pool, while `open` stores use them.
#[derive(Default)]
struct ContextStorage {
    open: usize,
    lock: Option<TabLock>,
    pool: Option<OpfsSAHPoolUtil>,
    /// Known after the first open: whether the pool can run here.
    backend: Option<Backend>,
    /// Settles once the lock let go of by the last close is really released.
    releasing: Option<Promise>,
}

thread_local! {
    static STORAGE: RefCell<ContextStorage> = RefCell::default();
}

/// One open store's share of [`ContextStorage`]; the last one dropped pauses the pool
/// and releases the lock. (Stored in the store's `process_lock` slot, which is dropped
/// after the connection closed.)
#[derive(Debug)]
pub(crate) struct StorageLease(());

impl StorageLease {
    async fn acquire(path: &Path) -> Result<(Self, Backend)> {
        // Opening is serialised by the facade (`database.rs`), so no other acquire
        // runs between these awaits.
        let (held, releasing) = STORAGE.with_borrow_mut(|s| (s.lock.is_some(), s.releasing.take()));
        if !held {
            if let Some(releasing) = releasing {
                let _ = wasm_bindgen_futures::JsFuture::from(releasing).await;
            }
            let lock = TabLock::acquire(LOCK_NAME, path).await?;
            let known = STORAGE.with_borrow(|s| s.backend);
            let pool = match known {
                Some(Backend::Page) => None,
                _ => match install_pool().await {
                    Ok(pool) => Some(pool),
                    // No sync access handles: a page's main thread (or a shared worker).
                    Err(OpfsSAHError::NotSupported) => None,
                    Err(error) => return Err(refused(error)),
                },
            };
            if let Some(pool) = &pool
                && pool.is_paused()
            {
                pool.resume().await.map_err(refused)?;
            }
            STORAGE.with_borrow_mut(|s| {
                s.lock = Some(lock);
                s.backend = Some(if pool.is_some() {
                    Backend::Pool
                } else {
                    Backend::Page
                });
                s.pool = pool;
            });
        }
        let backend = STORAGE.with_borrow_mut(|s| {
            s.open += 1;
            s.backend.unwrap_or(Backend::Page)
        });
        Ok((Self(()), backend))
    }
}

impl Drop for StorageLease {
    fn drop(&mut self) {
        STORAGE.with_borrow_mut(|s| {
            s.open -= 1;
            if s.open > 0 {
                return;
            }
            if let Some(pool) = &s.pool
                && let Err(error) = pool.pause()
            {
                tracing::warn!(%error, "could not pause the OPFS pool; another tab cannot use it until this one reloads");
            }
            if let Some(lock) = s.lock.take() {
                s.releasing = Some(lock.release());
            }
        });
    }
}

/// Installs the pool, or reuses it when this context installed it before.
async fn install_pool() -> std::result::Result<OpfsSAHPoolUtil, OpfsSAHError> {
    let config = OpfsSAHPoolCfgBuilder::new()
        .vfs_name(VFS_NAME)
        .directory(VFS_DIRECTORY)
        .build();
    install::<sqlite_wasm_rs::WasmOsCallback>(&config, false).await
}

fn refused(error: OpfsSAHError) -> Error {
    Error::StorageUnavailable {
        reason: format!(
            "the browser refused livesync's OPFS storage ({error}); in private browsing or with storage disabled, use Database::in_memory"
        ),
    }
}

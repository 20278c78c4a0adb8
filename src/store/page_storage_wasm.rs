//! Persistence for a database opened on a page's main thread: the whole database kept
//! in memory and saved, after each write, as one file in the origin private file system
//! (OPFS) through its asynchronous API.
//!
//! Why: the OPFS pool of `open_wasm.rs` needs synchronous access handles, which browsers
//! give only to dedicated workers, and a Dioxus or Leptos app renders on the page. The
//! asynchronous OPFS calls work there but SQLite cannot wait on them, so SQLite runs on
//! an in-memory image of the file (loaded with `sqlite3_deserialize` at open) and this
//! module writes the image back (`sqlite3_serialize`) after every transaction that
//! committed. A write's future resolves only once that save has been written, so an
//! awaited write survives a reload or a closed tab as it does in the pool.
//!
//! The cost is proportional to the database's size, not to the change: one copy of the
//! image per save (measured in the README's browser section). Saves are coalesced: while
//! one is being written, later commits wait for the next, which takes the state of the
//! moment it starts. `createWritable` writes to a temporary file that replaces the old
//! one only when it is closed, so a save interrupted by a closed tab leaves the previous
//! image intact: the file always holds some committed state.
//!
//! A failed save (quota exceeded, storage revoked) fails the writes waiting on it; the
//! data stays in memory, readable and writable, and the next commit tries again.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures::channel::oneshot;
use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use send_wrapper::SendWrapper;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::writer::WriterState;
use crate::{Error, Result};

/// The OPFS directory of the page's database files (the pool's files live elsewhere, so
/// a name opened on a page and the same name opened in a worker are two databases).
const DIRECTORY: &str = ".livesync-page";

/// Reads the saved image of `name`; `None` when there is none yet.
pub(crate) async fn load(name: &str) -> Result<Option<Vec<u8>>> {
    let directory = directory().await?;
    let handle = match call(
        &directory,
        "getFileHandle",
        &[file_name(name).into(), Object::new().into()],
    )
    .await
    {
        Ok(handle) => handle,
        Err(error) if dom_name(&error).as_deref() == Some("NotFoundError") => return Ok(None),
        Err(error) => return Err(storage_error("reading the saved database", &error)),
    };
    let file = call(&handle, "getFile", &[])
        .await
        .map_err(|e| storage_error("reading the saved database", &e))?;
    let buffer = call(&file, "arrayBuffer", &[])
        .await
        .map_err(|e| storage_error("reading the saved database", &e))?;
    let bytes = Uint8Array::new(&buffer).to_vec();
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// Saves of one open database: which commits are written, and who waits for which.
pub(crate) struct PageSaves {
    file: String,
    state: Mutex<SaveState>,
}

#[derive(Default)]
struct SaveState {
    /// Commits seen so far (a counter, not SQLite's).
    committed: u64,
    /// The last commit whose state is in the file.
    saved: u64,
    /// A save task is running (it loops while commits are newer than what it saved).
    saving: bool,
    /// Writers waiting for commit `n` to be saved.
    waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
}

impl std::fmt::Debug for PageSaves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageSaves")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl PageSaves {
    pub(crate) fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            file: file_name(name),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SaveState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a commit and makes sure a save of it runs; the receiver answers once the
    /// file holds it (or the save failed).
    pub(crate) fn committed(
        self: &Arc<Self>,
        writer: Weak<Mutex<Option<WriterState>>>,
    ) -> oneshot::Receiver<Result<()>> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.committed += 1;
            let n = state.committed;
            state.waiters.push((n, tx));
            !std::mem::replace(&mut state.saving, true)
        };
        if start {
            wasm_bindgen_futures::spawn_local(Arc::clone(self).save_while_behind(writer));
        }
        rx
    }

    /// Resolves once every commit seen so far is saved or its save failed (for close).
    pub(crate) fn flushed(&self) -> Option<oneshot::Receiver<Result<()>>> {
        let mut state = self.lock();
        if !state.saving {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let n = state.committed;
        state.waiters.push((n, tx));
        Some(rx)
    }

    async fn save_while_behind(self: Arc<Self>, writer: Weak<Mutex<Option<WriterState>>>) {
        loop {
            let target = {
                let mut state = self.lock();
                if state.saved >= state.committed {
                    state.saving = false;
                    return;
                }
                state.committed
            };
            let result = match image(&writer) {
                Ok(Some(image)) => self.write(image).await,
                // Closed: the close waited for this save, nothing newer can come.
                Ok(None) => Err(Error::Closed),
                Err(error) => Err(error),
            };
            let mut state = self.lock();
            let failed = result.is_err();
            if result.is_ok() {
                state.saved = target;
            }
            let (done, waiting): (Vec<_>, Vec<_>) =
                state.waiters.drain(..).partition(|(n, _)| *n <= target);
            state.waiters = waiting;
            if failed {
                // Try again at the next commit rather than in a loop against a full disk.
                state.saving = false;
                if let Err(error) = &result {
                    tracing::warn!(%error, file = %self.file, "could not save the database to browser storage");
                }
            }
            drop(state);
            for (_, waiter) in done {
                let _ = waiter.send(result.clone());
            }
            if failed {
                return;
            }
        }
    }

    async fn write(&self, image: SendWrapper<Uint8Array>) -> Result<()> {
        let what = "saving the database";
        let directory = directory().await?;
        let options = Object::new();
        let _ = Reflect::set(&options, &"create".into(), &JsValue::TRUE);
        let handle = call(
            &directory,
            "getFileHandle",
            &[self.file.as_str().into(), options.into()],
        )
        .await
        .map_err(|e| storage_error(what, &e))?;
        let writable = call(&handle, "createWritable", &[])
            .await
            .map_err(|e| storage_error(what, &e))?;
        if let Err(error) = call(&writable, "write", &[image.take().into()]).await {
            // Drop the temporary file; the saved image stays what it was.
            let _ = call(&writable, "abort", &[]).await;
            return Err(storage_error(what, &error));
        }
        call(&writable, "close", &[])
            .await
            .map_err(|e| storage_error(what, &e))?;
        Ok(())
    }
}

/// A copy of the database image, or `None` once the writer is closed.
fn image(writer: &Weak<Mutex<Option<WriterState>>>) -> Result<Option<SendWrapper<Uint8Array>>> {
    let Some(writer) = writer.upgrade() else {
        return Ok(None);
    };
    let mut guard = writer.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(state) = guard.as_mut() else {
        return Ok(None);
    };
    let data = state.conn.serialize(rusqlite::MAIN_DB)?;
    Ok(Some(SendWrapper::new(Uint8Array::from(&data[..]))))
}

/// A database name as one OPFS file name: characters other than ASCII letters, digits,
/// `.`, `-` and `_` are escaped, so `a/b.db` cannot reach into a subdirectory.
fn file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `navigator.storage.getDirectory()`, then livesync's directory in it.
async fn directory() -> Result<JsValue> {
    let what = "opening the origin private file system";
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into())
        .map_err(|e| storage_error(what, &e))?;
    let storage =
        Reflect::get(&navigator, &"storage".into()).map_err(|e| storage_error(what, &e))?;
    if storage.is_undefined() {
        return Err(Error::StorageUnavailable {
            reason: "this browser has no navigator.storage (OPFS needs a secure context: https or localhost); use Database::in_memory".into(),
        });
    }
    let root = call(&storage, "getDirectory", &[])
        .await
        .map_err(|e| storage_error(what, &e))?;
    let options = Object::new();
    let _ = Reflect::set(&options, &"create".into(), &JsValue::TRUE);
    call(
        &root,
        "getDirectoryHandle",
        &[DIRECTORY.into(), options.into()],
    )
    .await
    .map_err(|e| storage_error(what, &e))
}

/// Calls `target.method(args…)` and awaits the promise it returns.
async fn call(
    target: &JsValue,
    method: &str,
    args: &[JsValue],
) -> std::result::Result<JsValue, JsValue> {
    let function: Function = Reflect::get(target, &method.into())?
        .dyn_into()
        .map_err(|_| JsValue::from_str(&format!("{method} is not a function here")))?;
    let arguments = args.iter().collect::<js_sys::Array>();
    let returned = function.apply(target, &arguments)?;
    match returned.dyn_into::<Promise>() {
        Ok(promise) => JsFuture::from(promise).await,
        Err(value) => Ok(value),
    }
}

/// The `name` of a `DOMException` (`QuotaExceededError`, `NotFoundError`, …).
fn dom_name(error: &JsValue) -> Option<String> {
    Reflect::get(error, &"name".into()).ok()?.as_string()
}

/// Sorts a storage failure: a full quota is [`Error::StorageFull`], anything else
/// [`Error::StorageUnavailable`].
fn storage_error(what: &str, error: &JsValue) -> Error {
    let message = Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"));
    let name = dom_name(error).unwrap_or_default();
    if name == "QuotaExceededError" {
        Error::StorageFull {
            reason: format!("the browser's storage quota for this site, while {what}: {message}"),
        }
    } else {
        Error::StorageUnavailable {
            reason: format!(
                "the browser refused {what} ({name}: {message}); in private browsing or with site storage disabled, use Database::in_memory"
            ),
        }
    }
}

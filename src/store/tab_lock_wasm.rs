//! One tab (or worker) at a time on livesync's browser storage: a Web Lock, the
//! browser's counterpart of the native `process_lock.rs` (`open_wasm.rs` holds it while
//! any database of this context is open).
//!
//! The OPFS pool keeps an exclusive handle on its files, and two connections counting
//! upload ids on their own would collide in `ps_crud`, so a second tab of the app is
//! refused with [`Error::OpenInAnotherTab`]. The browser releases the lock when the
//! holder lets go of it or its tab or worker goes away, however that happens.
//!
//! The lock is requested with `ifAvailable`, so the answer is immediate. Held means: the
//! callback given to `navigator.locks.request` returned a promise that is resolved only
//! when this handle is released or dropped.

use std::path::Path;

use futures::channel::oneshot;
use js_sys::{Function, Object, Promise, Reflect};
use send_wrapper::SendWrapper;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::{Error, Result};

/// The held lock; dropping it releases it.
pub(crate) struct TabLock {
    /// Resolves the promise the lock is held on. (JavaScript values are `!Send`; the
    /// browser build has one thread, and the wrapper checks that it stays on it.)
    release: SendWrapper<Function>,
    /// The request's promise: settles once the browser has released the lock.
    released: SendWrapper<Promise>,
}

impl std::fmt::Debug for TabLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TabLock").finish_non_exhaustive()
    }
}

impl TabLock {
    /// Takes the lock `name` for the database `path` (named in errors).
    pub(crate) async fn acquire(name: &str, path: &Path) -> Result<Self> {
        let unavailable = |what: String| Error::StorageUnavailable {
            reason: format!(
                "this browser context has no Web Locks ({what}), which livesync needs to keep two tabs from opening one database: use a current browser, in a secure context (https or localhost)"
            ),
        };
        let global = js_sys::global();
        let locks = Reflect::get(&global, &"navigator".into())
            .and_then(|navigator| Reflect::get(&navigator, &"locks".into()))
            .map_err(|e| unavailable(format!("{e:?}")))?;
        if locks.is_undefined() || locks.is_null() {
            return Err(unavailable("navigator.locks is missing".into()));
        }
        let request: Function = Reflect::get(&locks, &"request".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| unavailable("navigator.locks.request is missing".into()))?;

        let mut release = None;
        let held = Promise::new(&mut |resolve, _reject| release = Some(resolve));
        let release = release.expect("the Promise constructor runs its executor at once");

        let (granted_tx, granted) = oneshot::channel::<bool>();
        let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
            let granted = !lock.is_null();
            let _ = granted_tx.send(granted);
            // Returning the pending promise keeps the lock until it resolves; without
            // the lock there is nothing to keep.
            if granted {
                held.into()
            } else {
                JsValue::UNDEFINED
            }
        });
        let options = Object::new();
        Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE)
            .map_err(|e| unavailable(format!("{e:?}")))?;
        let released: Promise = request
            .call3(&locks, &name.into(), &options, &callback)
            .map_err(|e| unavailable(format!("{e:?}")))?
            .unchecked_into();
        match granted.await {
            Ok(true) => Ok(Self {
                release: SendWrapper::new(release),
                released: SendWrapper::new(released),
            }),
            Ok(false) => Err(Error::OpenInAnotherTab {
                path: path.to_path_buf(),
            }),
            Err(_) => Err(unavailable("the lock request was dropped".into())),
        }
    }
}

impl TabLock {
    /// Lets go of the lock; the promise settles once the browser has released it (the
    /// release itself is asynchronous, so taking the lock again waits for it).
    pub(crate) fn release(self) -> Promise {
        (*self.released).clone()
    }
}

impl Drop for TabLock {
    fn drop(&mut self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
    }
}

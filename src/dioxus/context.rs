//! The database as Dioxus context.

use dioxus::prelude::{try_consume_context, use_context_provider, use_hook};

use crate::Database;

/// Makes `db` available to this component and its descendants (a hook: call it at the
/// top level of a component). Returns the database for use in the same component.
///
/// ```
/// use dioxus::prelude::*;
///
/// #[component]
/// fn App(db: livesync::Database) -> Element {
///     livesync::dioxus::provide_database(db);
///     rsx! { p { "children can call use_database()" } }
/// }
/// ```
#[track_caller]
pub fn provide_database(db: Database) -> Database {
    use_context_provider(move || db)
}

/// The database an ancestor provided with [`provide_database`] (or
/// `use_context_provider`).
///
/// # Panics
/// When no ancestor provided one: that is a wiring mistake in the app, reported with
/// what to do. [`try_use_database`] returns `None` instead.
///
/// ```
/// use dioxus::prelude::*;
///
/// #[component]
/// fn Count() -> Element {
///     let db = livesync::dioxus::use_database();
///     let _ = db; // db.query(...), db.execute(...)
///     rsx! {}
/// }
/// ```
#[track_caller]
pub fn use_database() -> Database {
    try_use_database().unwrap_or_else(|| {
        panic!(
            "livesync::dioxus::use_database: no Database in context; call \
             livesync::dioxus::provide_database(db) in an ancestor component"
        )
    })
}

/// The database an ancestor provided, or `None`.
///
/// ```
/// use dioxus::prelude::*;
///
/// #[component]
/// fn Status() -> Element {
///     match livesync::dioxus::try_use_database() {
///         Some(_) => rsx! { p { "store ready" } },
///         None => rsx! { p { "no store" } },
///     }
/// }
/// ```
#[track_caller]
pub fn try_use_database() -> Option<Database> {
    use_hook(try_consume_context::<Database>)
}

//! The database handle in Leptos context, so components find it without prop drilling.

use leptos_reactive::{provide_context, use_context};

use crate::Database;

/// Makes `db` available to the current owner and everything below it
/// ([`use_database`]), like `provide_context(db)`.
///
/// Call it once near the root of the app (on the server, typically in the context
/// closure given to `leptos_routes_with_context`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::leptos::{provide_database, use_database};
/// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
/// let runtime = leptos_reactive::create_runtime();
/// provide_database(db.clone());
/// assert!(use_database().is_some());
/// runtime.dispose();
/// # Ok(()) }
/// ```
#[track_caller]
pub fn provide_database(db: Database) {
    provide_context(db);
}

/// The database provided by [`provide_database`] on this owner or one of its ancestors;
/// `None` when there is none (use `.expect(..)` where a missing database is a bug).
///
/// ```
/// let runtime = leptos_reactive::create_runtime();
/// assert!(livesync::leptos::use_database().is_none());
/// runtime.dispose();
/// ```
#[track_caller]
pub fn use_database() -> Option<Database> {
    use_context::<Database>()
}

//! The database handle in Leptos 0.8 context.

use reactive_graph::owner::{provide_context, use_context};

use crate::Database;

/// Makes `db` available to the current owner and everything below it
/// ([`use_database`]), like `provide_context(db)`.
///
/// Call it once near the root of the app; on the server typically in the context
/// closure of `leptos_routes_with_context`, or in the `App` component:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::leptos08::{provide_database, use_database};
/// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
/// let owner = reactive_graph::owner::Owner::new();
/// owner.with(|| {
///     // view! { <App/> } would be built here, reading it with use_database()
///     provide_database(db.clone());
///     assert!(use_database().is_some());
/// });
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
/// let owner = reactive_graph::owner::Owner::new();
/// owner.with(|| assert!(livesync::leptos08::use_database().is_none()));
/// ```
#[track_caller]
pub fn use_database() -> Option<Database> {
    use_context::<Database>()
}

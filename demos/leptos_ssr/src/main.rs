//! A server-rendered Leptos 0.6 page (leptos + leptos_axum, `ssr`) showing a live query
//! inside `<Suspense>`, from a database kept in sync through the embedded
//! PowerSync-protocol test service.
//!
//! Two "devices" sync through the service: device A writes a todo, and the server's own
//! database receives it (with the service's seeded rows) before the page is served. Each
//! request renders the database as it is then: under `ssr` a live resource resolves
//! once from a snapshot, and nothing subscribes to changes on the server.
//!
//! Run with `cargo run -p livesync-demo-leptos-ssr`, then open
//! the printed address. (A client build with `hydrate` would keep the list live in the
//! browser; this example ships no wasm bundle.)

use std::time::Duration;

use leptos::*;
use livesync::leptos::{create_live_query, provide_database, use_database, use_sync_status};
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{Column, Database, Row, Schema, SyncOptions, Table};
use serde::{Deserialize, Serialize};

/// Upper bound for every wait before serving (the example never hangs at start-up).
const WAIT: Duration = Duration::from_secs(10);

#[derive(Row, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Todo {
    id: String,
    description: String,
}

fn schema() -> Schema {
    Schema::new([Table::new("todos", [Column::text("description")])])
}

/// The page: the todos, as a live resource read inside `<Suspense>`, and the sync status.
#[component]
fn App() -> impl IntoView {
    let todos = use_database().map(|db| {
        create_live_query(move || db.query::<Todo>("SELECT id, description FROM todos ORDER BY id"))
    });
    let status = use_sync_status();
    let list = move || {
        todos
            .and_then(|todos| todos.get())
            .map(|result| match result {
                Ok(rows) => view! {
                    <ul id="todos">
                        {rows
                            .into_iter()
                            .map(|todo| view! { <li data-id=todo.id>{todo.description}</li> })
                            .collect_view()}
                    </ul>
                }
                .into_view(),
                Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_view(),
            })
    };
    view! {
        <h1>"Todos"</h1>
        <p id="status">
            {move || if status.get().has_synced { "synced" } else { "not synced yet" }}
        </p>
        <Suspense fallback=|| view! { <p>"Loading todos…"</p> }>{list}</Suspense>
    }
}

/// A client database connected to `service`, once it holds its first checkpoint.
async fn device(service: &TestSyncService, user: &str) -> livesync::Result<Database> {
    let db = Database::in_memory(schema()).await?;
    let options = SyncOptions::default().crud_upload_throttle(Duration::from_millis(10));
    db.connect(service.connector(user), options).await?;
    tokio::time::timeout(WAIT, db.wait_for_first_sync())
        .await
        .map_err(|_| livesync::Error::connector("no first sync within 10 s"))??;
    Ok(db)
}

/// Waits (bounded) until `db` holds `count` todos.
async fn until_todos(db: &Database, count: i64) -> livesync::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while db
        .query::<i64>("SELECT count(*) FROM todos")
        .fetch_one()
        .await?
        != count
    {
        if tokio::time::Instant::now() > deadline {
            return Err(livesync::Error::connector(
                "device A's todo did not reach the server's database in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .start()
        .await?;
    service.upsert_row("todos", "t1", serde_json::json!({"description": "milk"}));
    service.upsert_row("todos", "t2", serde_json::json!({"description": "bread"}));
    service.commit();

    // The database the pages are rendered from, and another device writing to it.
    let db = device(&service, "server").await?;
    let device_a = device(&service, "device-a").await?;
    device_a
        .execute(
            "INSERT INTO todos(id, description) VALUES ('t3', 'coffee (written on device A)')",
            (),
        )
        .await?;
    until_todos(&db, 3).await?;

    let options = LeptosOptions::builder()
        .output_name("livesync_leptos_ssr")
        .build();
    // Each request gets its own reactive runtime; the database goes into its context.
    let render = leptos_axum::render_app_async_with_context(
        options,
        move || provide_database(db.clone()),
        App,
    );
    let app = axum::Router::new().route("/", axum::routing::get(render));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // tests/leptos_ssr.rs reads this line to find the page.
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

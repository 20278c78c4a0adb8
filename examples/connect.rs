//! Connects a file database to a real PowerSync Service (or any service speaking the
//! protocol) with [`livesync::HttpConnector`], prints the sync status as it changes, and
//! runs a small todo list on stdin.
//!
//! Configured by environment variables:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `LIVESYNC_SERVICE_URL` | the service's base URL, e.g. `https://abc.powersync.journeyapps.com` (required) |
//! | `LIVESYNC_TOKEN` | a fixed token, e.g. a development token (this or `LIVESYNC_TOKEN_URL`) |
//! | `LIVESYNC_TOKEN_URL` | your backend's token endpoint: `GET` answers `{"token": "…", "expires_at": <Unix seconds>}` |
//! | `LIVESYNC_UPLOAD_URL` | your backend's upload endpoint: `POST`ed one JSON body per local transaction (required) |
//! | `LIVESYNC_HEADER` | optional `Name: value` sent to the token and upload endpoints (a session cookie, an API key) |
//! | `LIVESYNC_DB` | the database file (default `livesync-connect.db`) |
//! | `LIVESYNC_CHECKPOINTS` | `requests` for checkpoint requests (PowerSync Service 1.24.0 or later; enables `refresh`), `legacy` (the default) |
//!
//! The service needs a `todos` table (`id` text, `description` text, `done` integer) in
//! its source database and a sync config that sends it, for example
//!
//! ```yaml
//! config:
//!   edition: 3
//! streams:
//!   todos:
//!     auto_subscribe: true
//!     query: SELECT * FROM todos
//! ```
//!
//! Commands: `list`, `add <description>`, `toggle <number or id>`, `refresh` (with
//! `LIVESYNC_CHECKPOINTS=requests`: waits until everything the service has is local),
//! `quit` (or end of input). Run with `cargo run --example connect`.

use std::process::ExitCode;

use futures::StreamExt;
use livesync::{
    CheckpointMode, Column, Database, HttpConnector, Row, Schema, SyncOptions, SyncStatus, Table,
};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Row, Debug, Clone)]
struct Todo {
    id: String,
    description: String,
    done: bool,
}

fn schema() -> Schema {
    Schema::new([Table::new(
        "todos",
        [Column::text("description"), Column::integer("done")],
    )])
}

/// The settings read from the environment.
struct Settings {
    service_url: String,
    token: Token,
    upload_url: String,
    header: Option<(String, String)>,
    database: String,
    checkpoints: CheckpointMode,
}

enum Token {
    Fixed(String),
    Endpoint(String),
}

const USAGE: &str = "set LIVESYNC_SERVICE_URL, LIVESYNC_TOKEN or LIVESYNC_TOKEN_URL, and \
                     LIVESYNC_UPLOAD_URL (optional: LIVESYNC_HEADER=\"Name: value\", LIVESYNC_DB, \
                     LIVESYNC_CHECKPOINTS=requests|legacy)";

fn settings() -> Result<Settings, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set: {USAGE}"));
    let token = match (var("LIVESYNC_TOKEN"), var("LIVESYNC_TOKEN_URL")) {
        (Some(_), Some(_)) => {
            return Err("set LIVESYNC_TOKEN or LIVESYNC_TOKEN_URL, not both".into());
        }
        (Some(token), None) => Token::Fixed(token),
        (None, Some(url)) => Token::Endpoint(url),
        (None, None) => return Err(format!("no token: {USAGE}")),
    };
    let header = match var("LIVESYNC_HEADER") {
        None => None,
        Some(header) => {
            let (name, value) = header
                .split_once(':')
                .ok_or("LIVESYNC_HEADER must look like \"Name: value\"")?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        }
    };
    let checkpoints = match var("LIVESYNC_CHECKPOINTS").as_deref().map(str::trim) {
        None | Some("legacy") => CheckpointMode::Legacy,
        Some("requests") => CheckpointMode::Requests,
        Some(other) => {
            return Err(format!(
                "LIVESYNC_CHECKPOINTS must be `requests` or `legacy`, not {other:?}"
            ));
        }
    };
    Ok(Settings {
        checkpoints,
        service_url: required("LIVESYNC_SERVICE_URL")?,
        token,
        upload_url: required("LIVESYNC_UPLOAD_URL")?,
        header,
        database: var("LIVESYNC_DB").unwrap_or_else(|| "livesync-connect.db".into()),
    })
}

fn connector(settings: &Settings) -> livesync::Result<HttpConnector> {
    let mut builder = HttpConnector::builder(&settings.service_url)
        .upload_url(&settings.upload_url)
        .on_rejected(|rejected| {
            println!(
                "rejected by the backend (the change is reverted): {}",
                rejected.error
            );
        });
    builder = match &settings.token {
        Token::Fixed(token) => builder.token(token),
        Token::Endpoint(url) => builder.token_endpoint(url),
    };
    if let Some((name, value)) = &settings.header {
        builder = builder.header(name, value);
    }
    builder.build()
}

fn describe(status: &SyncStatus) -> String {
    let mut parts = vec![
        if status.connected {
            "online"
        } else if status.connecting {
            "connecting"
        } else {
            "offline"
        }
        .to_owned(),
    ];
    if let Some(progress) = &status.downloading {
        parts.push(format!(
            "downloading {}/{}",
            progress.downloaded, progress.total
        ));
    }
    if status.uploading {
        parts.push("uploading".into());
    }
    parts.push(
        if status.has_synced {
            "synced"
        } else {
            "not synced yet"
        }
        .into(),
    );
    if let Some(error) = &status.download_error {
        parts.push(format!("download error: {error}"));
    }
    if let Some(error) = &status.upload_error {
        parts.push(format!("upload error: {error}"));
    }
    parts.join(", ")
}

async fn todos(db: &Database) -> livesync::Result<Vec<Todo>> {
    db.query("SELECT id, description, done FROM todos ORDER BY description, id")
        .fetch_all()
        .await
}

async fn list(db: &Database) -> livesync::Result<()> {
    let todos = todos(db).await?;
    println!("todos: {}", todos.len());
    for (number, todo) in todos.iter().enumerate() {
        let mark = if todo.done { "x" } else { " " };
        println!(
            "{}. [{mark}] {} ({})",
            number + 1,
            todo.description,
            todo.id
        );
    }
    Ok(())
}

async fn add(db: &Database, description: &str) -> livesync::Result<()> {
    let id: String = db
        .query("SELECT lower(hex(randomblob(16)))")
        .fetch_one()
        .await?;
    db.execute(
        "INSERT INTO todos(id, description, done) VALUES (?1, ?2, 0)",
        (id.clone(), description.to_owned()),
    )
    .await?;
    println!("added {description} ({id})");
    Ok(())
}

async fn toggle(db: &Database, which: &str) -> livesync::Result<()> {
    let todos = todos(db).await?;
    let found = match which.parse::<usize>() {
        Ok(number) if (1..=todos.len()).contains(&number) => Some(&todos[number - 1]),
        _ => todos.iter().find(|todo| todo.id == which),
    };
    let Some(todo) = found else {
        println!("no todo {which:?}: `list` shows numbers and ids");
        return Ok(());
    };
    db.execute(
        "UPDATE todos SET done = ?1 WHERE id = ?2",
        (!todo.done, todo.id.clone()),
    )
    .await?;
    let state = if todo.done { "open" } else { "done" };
    println!("{} is {state}", todo.description);
    Ok(())
}

/// Waits until a checkpoint covering everything the service has now is applied.
async fn refresh(db: &Database) -> livesync::Result<()> {
    let request = db.request_checkpoint().await?;
    println!("refreshing (checkpoint request {})", request.id());
    let wait = std::time::Duration::from_secs(30);
    match tokio::time::timeout(wait, request.wait_for_sync()).await {
        Ok(Ok(())) => println!("refreshed: checkpoint request {} is applied", request.id()),
        Ok(Err(error)) => println!("refresh interrupted: {error}"),
        Err(_) => println!("still refreshing after {wait:?}"),
    }
    Ok(())
}

/// Runs one command line; `false` when it was `quit`.
async fn command(db: &Database, line: &str) -> livesync::Result<bool> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match (word, rest.trim()) {
        ("", _) => {}
        ("quit" | "exit", _) => return Ok(false),
        ("list", _) => list(db).await?,
        ("add", "") => println!("usage: add <description>"),
        ("add", description) => add(db, description).await?,
        ("toggle", "") => println!("usage: toggle <number or id>"),
        ("toggle", which) => toggle(db, which).await?,
        ("refresh", _) => refresh(db).await?,
        _ => {
            println!("commands: list | add <description> | toggle <number or id> | refresh | quit")
        }
    }
    Ok(true)
}

async fn run(settings: Settings) -> livesync::Result<()> {
    let connector = connector(&settings)?;
    let db = Database::open(&settings.database, schema()).await?;
    println!("database: {}", settings.database);
    println!("service: {}", settings.service_url);
    let options = SyncOptions::default().checkpoint_mode(settings.checkpoints);
    db.connect(connector, options).await?;

    let mut statuses = db.watch_status();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut last_status = String::new();
    loop {
        tokio::select! {
            status = statuses.next() => {
                let Some(status) = status else { break };
                let text = describe(&status);
                if text != last_status {
                    println!("status: {text}");
                    last_status = text;
                }
            }
            line = lines.next_line() => {
                let line = line.map_err(livesync::Error::connector)?;
                let Some(line) = line else { break };
                match command(&db, &line).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => println!("error: {error}"),
                }
            }
        }
    }
    db.disconnect().await;
    db.close().await;
    println!("bye");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

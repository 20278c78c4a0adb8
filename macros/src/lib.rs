//! Procedural macros for `livesync`.
//!
//! The `#[derive(Row)]` macro arrives with the typed live-query layer; this crate is the
//! workspace member it will live in.

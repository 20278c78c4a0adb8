//! The PowerSync protocol client (in progress): wire types and stream framing so far.
//! The download/upload loops, bucket storage and status build on these.

#![allow(dead_code)] // used by the sync engine, which is being built on top of these

pub(crate) mod lines;
pub(crate) mod protocol;

//! Validated SQL identifiers: the only way a table, view, column or index name reaches SQL text.

use std::fmt;

use crate::{Error, Result};

/// A name that is safe to splice into SQL text: it matches `[A-Za-z_][A-Za-z0-9_]*`.
///
/// Every schema name passes through [`Identifier::parse`] before any SQL is generated, so a
/// name such as `todos; DROP TABLE x` is rejected up front instead of being quoted and hoped
/// for. The original spelling is kept (SQLite compares identifiers case-insensitively).
///
/// ```
/// use livesync::Identifier;
/// assert_eq!(Identifier::parse("column", "done").unwrap().as_str(), "done");
/// assert!(Identifier::parse("column", "1st").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// Checks `name` against the identifier rules; `kind` ("table", "column", ...) names
    /// what it is for in the error message.
    pub fn parse(kind: &'static str, name: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidIdentifier {
            kind,
            name: name.to_owned(),
            reason,
        };
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(invalid("it is empty")),
            Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
                return Err(invalid("it must start with a letter or an underscore"));
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "it may only contain ASCII letters, digits and underscores",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Like [`parse`](Self::parse), and also rejects the `ps_` prefix reserved for
    /// livesync's own objects and the `sqlite_` prefix SQLite reserves for its own
    /// (any case: SQLite compares names case-insensitively).
    pub(crate) fn parse_unreserved(kind: &'static str, name: &str) -> Result<Self> {
        let ident = Self::parse(kind, name)?;
        let folded = name.to_ascii_lowercase();
        let reason = if folded.starts_with("ps_") {
            "the ps_ prefix is reserved for livesync's internal tables"
        } else if super::names::is_sqlite_reserved(name) {
            "the sqlite_ prefix is reserved for SQLite's internal tables"
        } else {
            return Ok(ident);
        };
        Err(Error::InvalidIdentifier {
            kind,
            name: name.to_owned(),
            reason,
        })
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in double quotes, ready for SQL text.
    pub(crate) fn quoted(&self) -> String {
        super::names::quote(&self.0)
    }

    /// The lowercase form SQLite uses to compare identifiers.
    pub(crate) fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_rejects_everything_that_could_break_sql() {
        for ok in ["a", "_x", "Todo_Items2", "order"] {
            assert!(Identifier::parse("table", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a b",
            "a;b",
            "a\"b",
            "a.b",
            "é",
            "a-b",
            "todos; DROP TABLE x",
        ] {
            assert!(Identifier::parse("table", bad).is_err(), "{bad}");
        }
        assert!(Identifier::parse_unreserved("table", "ps_data").is_err());
        assert!(Identifier::parse_unreserved("table", "PS_x").is_err());
        assert!(Identifier::parse_unreserved("table", "psx").is_ok());
        assert!(Identifier::parse_unreserved("table", "sqlite_x").is_err());
        assert!(Identifier::parse_unreserved("view", "SQLite_Stat1").is_err());
        assert!(Identifier::parse_unreserved("table", "sqlitex").is_ok());
    }
}

//! The one home of the names livesync gives SQLite objects: data table prefixes and
//! identifier quoting. Nothing else spells `ps_data__` or quotes an identifier by hand.

/// Prefix of a synced table's data table: `ps_data__todos`.
pub(crate) const SYNCED_PREFIX: &str = "ps_data__";
/// Prefix of a local-only table's data table: `ps_data_local__drafts`.
pub(crate) const LOCAL_PREFIX: &str = "ps_data_local__";
/// `GLOB` pattern matching every synced data table.
pub(crate) const SYNCED_GLOB: &str = "ps_data__*";
/// `GLOB` pattern matching every data table, synced or local-only.
pub(crate) const ANY_DATA_GLOB: &str = "ps_data*__*";

/// The data table of the app table `table`.
pub(crate) fn data_table(table: &str, local_only: bool) -> String {
    let prefix = if local_only {
        LOCAL_PREFIX
    } else {
        SYNCED_PREFIX
    };
    format!("{prefix}{table}")
}

/// The app table a data table stores (`ps_data__todos` → `todos`), or `None` for any
/// other table.
pub(crate) fn app_table(raw: &str) -> Option<&str> {
    raw.strip_prefix(SYNCED_PREFIX)
        .or_else(|| raw.strip_prefix(LOCAL_PREFIX))
}

/// The object type (the sync protocol's row `type`) a synced data table stores.
pub(crate) fn synced_type(raw: &str) -> Option<&str> {
    raw.strip_prefix(SYNCED_PREFIX)
}

/// Whether `raw` names a data table.
pub(crate) fn is_data_table(raw: &str) -> bool {
    app_table(raw).is_some()
}

/// `text` (an SQLite error message, say) with every data table name replaced by its app
/// table: `UNIQUE constraint failed: ps_data__todos.id` reads
/// `UNIQUE constraint failed: todos.id`. Only whole names are rewritten: the prefix must
/// not follow a letter, digit or underscore.
pub(crate) fn with_app_names(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("ps_data") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("ps_data") {
        let (before, candidate) = rest.split_at(at);
        out.push_str(before);
        let starts_name = !out
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let prefix = [LOCAL_PREFIX, SYNCED_PREFIX]
            .into_iter()
            .find(|p| candidate.starts_with(p));
        match prefix {
            Some(prefix) if starts_name => rest = &candidate[prefix.len()..],
            _ => {
                out.push_str("ps_data");
                rest = &candidate["ps_data".len()..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Whether `name` has the `sqlite_` prefix SQLite reserves for its own objects (any case:
/// SQLite compares names case-insensitively).
pub(crate) fn is_sqlite_reserved(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
}

/// `name` as an SQL identifier in double quotes, inner quotes doubled, so any text is
/// safe in SQL text.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal, inner quotes doubled.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_table_names_round_trip() {
        assert_eq!(data_table("todos", false), "ps_data__todos");
        assert_eq!(data_table("drafts", true), "ps_data_local__drafts");
        assert_eq!(app_table("ps_data_local__drafts"), Some("drafts"));
        assert_eq!(app_table("ps_data__todos"), Some("todos"));
        assert_eq!(synced_type("ps_data_local__drafts"), None);
        assert_eq!(app_table("ps_crud"), None);
        assert!(is_data_table("ps_data__x") && !is_data_table("todos"));
        assert!(is_sqlite_reserved("SQLite_Foo") && is_sqlite_reserved("sqlite_schema"));
        assert!(!is_sqlite_reserved("sqlit") && !is_sqlite_reserved("my_sqlite_x"));
    }

    #[test]
    fn messages_name_app_tables() {
        assert_eq!(
            with_app_names("UNIQUE constraint failed: ps_data__todos.id"),
            "UNIQUE constraint failed: todos.id"
        );
        assert_eq!(
            with_app_names("no such table: \"ps_data_local__drafts\" or ps_data__a, ps_data__b"),
            "no such table: \"drafts\" or a, b"
        );
        for unchanged in [
            "xps_data__todos",
            "ps_datum",
            "ps_data",
            "ps_data_x",
            "plain",
        ] {
            assert_eq!(with_app_names(unchanged), unchanged);
        }
    }

    #[test]
    fn quoting_doubles_inner_quotes() {
        assert_eq!(quote("todos"), "\"todos\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}

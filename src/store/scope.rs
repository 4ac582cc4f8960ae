//! The devices a device-limited token may see (README "API tokens and
//! sessions"), as a condition of the store's queries: the rows of other
//! devices are never read, not filtered out after reading. An empty list
//! is every device. On SQLite the list is bound as one JSON array (text),
//! on PostgreSQL as a `text[]`, so a query binds one value however many
//! devices there are.

use super::tokens::devices_text;

/// The SQLite condition that `col` is one of the devices bound, as
/// [`sqlite_value`], to the parameter `param` (`?4`).
pub fn sqlite_clause(col: &str, param: &str) -> String {
    format!("({param} = '[]' OR {col} IN (SELECT value FROM json_each({param})))")
}

/// The value [`sqlite_clause`] binds.
pub fn sqlite_value(devices: &[String]) -> String {
    devices_text(devices)
}

/// The PostgreSQL condition that `col` is one of the devices bound (a
/// `Vec<String>`) to the parameter `param` (`$4`).
pub fn pg_clause(col: &str, param: &str) -> String {
    format!("(cardinality({param}::text[]) = 0 OR {col} = ANY({param}::text[]))")
}

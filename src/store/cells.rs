//! Reading a result row's cells the same way on both backends, so that a
//! row maps to its domain type in one function (the columns are the same
//! names and types on SQLite and PostgreSQL: ARCHITECTURE.md "src/store/").

use super::Result;

/// A value both drivers can read from a cell.
pub(in crate::store) trait Cell:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>> Cell for T {}

/// A result row of either backend.
pub(in crate::store) trait Cells {
    fn cell<T: Cell>(&self, i: usize) -> Result<T>;
}

impl Cells for rusqlite::Row<'_> {
    fn cell<T: Cell>(&self, i: usize) -> Result<T> {
        Ok(self.get(i)?)
    }
}

impl Cells for tokio_postgres::Row {
    fn cell<T: Cell>(&self, i: usize) -> Result<T> {
        Ok(self.try_get(i)?)
    }
}

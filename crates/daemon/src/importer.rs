//! The connection pool to BIOMERO.importer's database, built lazily from the
//! settings in force and rebuilt when `importer_database_url` changes.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// One pool per importer database URL.
#[derive(Default)]
pub struct ImporterCache {
    inner: Mutex<Option<(String, PgPool)>>,
}

impl std::fmt::Debug for ImporterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImporterCache").finish_non_exhaustive()
    }
}

impl ImporterCache {
    /// The pool for `url` (connections are opened when first used).
    pub fn pool(&self, url: &str) -> Result<PgPool, sqlx::Error> {
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((u, p)) = &*c
            && u == url
        {
            return Ok(p.clone());
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(url)?;
        *c = Some((url.to_owned(), pool.clone()));
        Ok(pool)
    }
}

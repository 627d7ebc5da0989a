//! BIOMERO's `sqlalchemy_url` as a PostgreSQL connection URL.
//!
//! BIOMERO reads its store's address in SQLAlchemy's form,
//! `postgresql+psycopg2://user:password@host:5432/database`. Its views use
//! PostgreSQL's UUID type, so the store is PostgreSQL; the driver part
//! (`+psycopg2`, `+psycopg`, …) names a Python driver and is dropped.

use std::fmt;

/// Why a `sqlalchemy_url` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `scheme://…`.
    #[error(
        "`{0}` is not a SQLAlchemy URL (postgresql+psycopg2://user:password@host:5432/database)"
    )]
    NotAUrl(String),
    /// Not PostgreSQL.
    #[error(
        "BIOMERO's event store at `{url}` is `{scheme}`; biomero-stage writes BIOMERO's store on PostgreSQL only (BIOMERO's views use PostgreSQL's UUID type): set [ANALYTICS] sqlalchemy_url to postgresql+psycopg2://…"
    )]
    NotPostgres {
        /// The URL, without its password.
        url: String,
        /// Its scheme.
        scheme: String,
    },
}

/// The store's address, ready for the PostgreSQL driver. Shown without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct TrackerUrl {
    url: String,
}

impl TrackerUrl {
    /// Reads BIOMERO's `sqlalchemy_url`.
    pub fn parse(sqlalchemy_url: &str) -> Result<TrackerUrl, UrlError> {
        let s = sqlalchemy_url.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(UrlError::NotAUrl(stage_common::redact_url(s)));
        };
        let dialect = scheme.split('+').next().unwrap_or(scheme);
        if !matches!(dialect, "postgresql" | "postgres") {
            return Err(UrlError::NotPostgres {
                url: stage_common::redact_url(s),
                scheme: scheme.to_owned(),
            });
        }
        Ok(TrackerUrl {
            url: format!("postgres://{rest}"),
        })
    }

    /// The URL to connect with (holds the password: never log it).
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for TrackerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&stage_common::redact_url(&self.url))
    }
}

impl fmt::Debug for TrackerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackerUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biomeros_forms_become_postgres_urls() {
        let u = TrackerUrl::parse("postgresql+psycopg2://biomero:s3cret@db:5432/biomero")
            .expect("postgres");
        assert_eq!(u.expose(), "postgres://biomero:s3cret@db:5432/biomero");
        assert!(!u.to_string().contains("s3cret"), "{u}");
        assert!(!format!("{u:?}").contains("s3cret"));
        let q = TrackerUrl::parse("postgresql://h/d?sslmode=require").expect("postgres");
        assert_eq!(q.expose(), "postgres://h/d?sslmode=require");
    }

    #[test]
    fn other_databases_are_refused_by_name_without_the_password() {
        let e = TrackerUrl::parse("sqlite:////tmp/x.db").expect_err("sqlite");
        assert!(e.to_string().contains("`sqlite`"), "{e}");
        let e = TrackerUrl::parse("mysql://u:pw@h/d").expect_err("mysql");
        assert!(!e.to_string().contains("pw@"), "{e}");
        assert!(matches!(
            TrackerUrl::parse("just text"),
            Err(UrlError::NotAUrl(_))
        ));
    }
}

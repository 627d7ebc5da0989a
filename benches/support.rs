//! What the benchmarks on PostgreSQL share (included with `#[path]`: a bench has no library).

/// A fresh database on the machine's PostgreSQL (`BIOMERO_STAGE_TEST_PG`, default
/// `postgres://postgres@127.0.0.1:5432/test`), named after `tag` and this process: its URL.
pub(crate) fn fresh_db(tag: &str) -> String {
    let admin = std::env::var("BIOMERO_STAGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("stage_bench_{tag}_{}", std::process::id());
    let ok = std::process::Command::new("psql")
        .args([
            admin.as_str(),
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {name}"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "cannot create a database on {admin}");
    format!("{}/{name}", &admin[..admin.rfind('/').unwrap()])
}

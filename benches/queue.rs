//! Queue benchmark on PostgreSQL: wake-up latency from `INSERT` (+ the NOTIFY
//! trigger) to a successful claim, claims per second with 4 workers, and the queue at
//! scale: 10,000 queued submissions with 100 in flight (the next claim's latency, the
//! status API's page and counts).
//!
//! `cargo bench -p stage-benches --bench queue` (uses the machine's PostgreSQL,
//! `BIOMERO_STAGE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`;
//! a fresh database per run). For comparison, BIOMERO.importer polls every 5 s.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "support.rs"]
mod support;
use support::fresh_db;

use std::time::{Duration, Instant};

use serde_json::json;
use stage_store::{ListFilter, NewSubmission, State, Store, Transition};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let url = fresh_db("queue");
    let store = Store::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();

    // 1. wake-up latency: a worker waits on LISTEN; another program inserts a row
    let mut listener = store.listener().await.unwrap();
    let mut lat = Vec::new();
    for i in 0..300 {
        let id = format!("lat-{i}");
        let inserter = {
            let pool = pool.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let t = Instant::now();
                sqlx::query("INSERT INTO biomero_stage_submissions (id, workflow, request) VALUES ($1, 'w', '{}'::jsonb)")
                    .bind(&id)
                    .execute(&pool)
                    .await
                    .unwrap();
                t
            })
        };
        let claimed = loop {
            store
                .wait_for_work(&mut listener, Duration::from_secs(5))
                .await;
            if let Some(c) = store.claim("bench", Duration::from_secs(30)).await.unwrap() {
                break (Instant::now(), c);
            }
        };
        let sent = inserter.await.unwrap();
        lat.push(claimed.0.duration_since(sent).as_secs_f64() * 1000.0);
        store
            .advance(
                &claimed.1,
                &Transition::succeeded("x", State::Imported, json!({})),
            )
            .await
            .unwrap();
        store.release(&claimed.1).await.unwrap();
    }
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));

    // 2. throughput: 4 workers, 5000 submissions, each claimed, advanced and
    //    released once; three rounds, the median reported (the machine is shared)
    let workers: usize = std::env::var("QUEUE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut rates = Vec::new();
    for round in 0..3 {
        for i in 0..5000 {
            store
                .insert(&NewSubmission {
                    id: format!("t{round}-{i:05}"),
                    workflow: "w".into(),
                    request: json!({}),
                    notices: Vec::new(),
                })
                .await
                .unwrap();
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..workers {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u32;
                let record = std::env::var_os("QUEUE_CLAIM_ONLY").is_none();
                while let Some(c) = s
                    .claim(&format!("w{w}"), Duration::from_mins(5))
                    .await
                    .unwrap()
                {
                    if record {
                        s.advance_and_release(
                            &c,
                            &Transition::succeeded("x", State::Imported, json!({})),
                        )
                        .await
                        .unwrap();
                    }
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 5000);
        rates.push(f64::from(total) / start.elapsed().as_secs_f64());
    }
    let rate = pct(&mut rates.clone(), 0.5);

    // 3. at scale: 10,000 queued, 100 in flight (claimed, leases held); a worker that frees
    //    up claims the next one (claim, record a step, release), and the status API lists a
    //    page and counts states, timed over several hundred calls each
    let scale = fresh_db("queue_scale");
    let big = Store::connect(&scale).await.unwrap();
    let bulk = sqlx::PgPool::connect(&scale).await.unwrap();
    let queued = 10_000;
    let t = Instant::now();
    for chunk in (0..queued).collect::<Vec<_>>().chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(|i| format!("q-{i:05}")).collect();
        sqlx::query("INSERT INTO biomero_stage_submissions (id, workflow, request) SELECT id, 'w', '{}'::jsonb FROM UNNEST($1::text[]) AS id")
            .bind(&ids)
            .execute(&bulk)
            .await
            .unwrap();
    }
    let fill_s = t.elapsed().as_secs_f64();
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            big.claim("in-flight", Duration::from_mins(30))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let mut next = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let c = big
            .claim("free", Duration::from_mins(5))
            .await
            .unwrap()
            .unwrap();
        next.push(t.elapsed().as_secs_f64() * 1000.0);
        big.advance_and_release(&c, &Transition::succeeded("x", State::Imported, json!({})))
            .await
            .unwrap();
    }
    let (mut page, mut page_state, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..300 {
        let t = Instant::now();
        let rows = big
            .list(&ListFilter {
                state: None,
                limit: 100,
                run: None,
                before: None,
            })
            .await
            .unwrap();
        page.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(rows.len(), 100);
        let t = Instant::now();
        let rows = big
            .list(&ListFilter {
                state: Some(State::Received),
                limit: 100,
                run: None,
                before: None,
            })
            .await
            .unwrap();
        page_state.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(rows.len(), 100);
        let t = Instant::now();
        let _ = big.counts_by_state().await.unwrap();
        counts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    assert_eq!(held.len(), 100);
    println!(
        "queue on PostgreSQL ({} cores)",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!(
        "  wake-up, INSERT (+NOTIFY trigger) -> claimed: p50 {p50:.2} ms, p99 {p99:.2} ms over {} trials   (target p99 < 10 ms; BIOMERO.importer polls every 5000 ms: ~{:.0}x faster at p50 than its 2500 ms average)",
        lat.len(),
        2500.0 / p50
    );
    println!(
        "  throughput, {workers} workers: median {rate:.0} claims per second (each claim, record step, release; rounds {:?})   (target >= 1000/s)",
        rates.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!("  at scale, {queued} queued ({fill_s:.1} s to insert) and 100 in flight:");
    println!(
        "    next claim (claim only): p50 {:.2} ms, p99 {:.2} ms over {} claims   (target p99 < 10 ms)",
        pct(&mut next.clone(), 0.5),
        pct(&mut next, 0.99),
        500
    );
    println!(
        "    status API page of 100, newest first: p50 {:.2} ms, p99 {:.2} ms; of one state: p50 {:.2} ms, p99 {:.2} ms; counts by state: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut page.clone(), 0.5),
        pct(&mut page, 0.99),
        pct(&mut page_state.clone(), 0.5),
        pct(&mut page_state, 0.99),
        pct(&mut counts.clone(), 0.5),
        pct(&mut counts, 0.99)
    );
}

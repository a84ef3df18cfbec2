//! Many concurrent idempotent writes, with faults, are all stored exactly once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idempotent_writes_64_at_a_time_are_all_stored_once() {
    let app = Arc::new(spawn_with(|f| f.merge(("upstream.max_retries", 5))).await);
    let prefix = "/api/v1.0/feed/bulk/1/";
    app.fault("POST", prefix, |f| {
        f.status = Some(503);
        f.times = 20;
    });
    app.fault("POST", prefix, |f| {
        f.drop = true;
        f.times = 10;
    });
    app.fault("POST", prefix, |f| {
        f.delay_ms = Some(700);
        f.times = 10;
    });
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let (app, gate) = (app.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            app.post("/feed/bulk/1/", &keyed_activity(n)).await.status
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    assert!(
        statuses.iter().all(|&s| s == 201),
        "{:?}",
        statuses.iter().filter(|&&s| s != 201).collect::<Vec<_>>()
    );
    // Let the delayed first attempts land: they must not add a second copy.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let store = app.emu().store();
    assert_eq!(store.len("bulk:1"), 1000);
    assert_eq!(store.activity_count(), 1000);
    let posts = app.received().iter().filter(|r| r.method == "POST").count();
    // At least one resend per injected fault; a loaded machine may time out a few more
    // attempts, which is the point: resends never store twice (asserted above).
    assert!(
        posts >= 1040,
        "1000 writes plus at least one resend per injected fault: {posts}"
    );
}

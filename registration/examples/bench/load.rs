//! Closed-loop and paced (open-loop) phases over reqwest clients, and the figures they print.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

/// Upper bound on any one phase.
pub const PHASE_DEADLINE: Duration = Duration::from_secs(90);

/// Outcome of one phase.
pub struct Stats {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Latencies of the successful calls, sorted.
    pub latencies: Vec<Duration>,
}

impl Stats {
    pub fn from_results(results: &[(bool, Duration)], elapsed: Duration) -> Self {
        let mut latencies: Vec<Duration> = results.iter().filter(|r| r.0).map(|r| r.1).collect();
        latencies.sort();
        Stats {
            ok: latencies.len(),
            failed: results.len() - latencies.len(),
            elapsed,
            latencies,
        }
    }

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    pub fn ms(&self, p: f64) -> f64 {
        self.pct(p).as_secs_f64() * 1e3
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<46} {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ok, {} failed, {:.1} s)",
            self.rate(),
            self.ms(0.50),
            self.ms(0.99),
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs `n` calls of `f` with `concurrency` in flight; stops starting new ones at the deadline.
pub async fn phase<F, Fut>(n: usize, concurrency: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let results: Vec<(bool, Duration)> = stream::iter(0..n)
        .take_while(|_| futures::future::ready(started.elapsed() < PHASE_DEADLINE))
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                let ok = fut.await;
                (ok, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Stats::from_results(&results, started.elapsed())
}

/// Sends one request on `c`: a POST with a JSON body, or a GET.
pub async fn call(c: &reqwest::Client, url: &str, body: Option<&serde_json::Value>) -> bool {
    let req = match body {
        Some(b) => c.post(url).json(b),
        None => c.get(url),
    };
    match req.send().await {
        // Read the body too, so the connection goes back to the pool for the next call.
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Each client sends `rounds` requests, spaced so the aggregate is `rate` per second.
pub async fn paced_phase(
    clients: &[reqwest::Client],
    url: String,
    body: Option<serde_json::Value>,
    rate: f64,
    rounds: usize,
) -> Stats {
    let n = clients.len().max(1);
    let period = Duration::from_secs_f64(n as f64 / rate);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (c, url, body) = (c.clone(), url.clone(), body.clone());
            let offset = Duration::from_secs_f64(i as f64 / rate);
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(rounds);
                for k in 0..rounds {
                    tokio::time::sleep_until((started + offset + period * k as u32).into()).await;
                    let t = Instant::now();
                    let ok = call(&c, &url, body.as_ref()).await;
                    out.push((ok, t.elapsed()));
                }
                out
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap_or_default());
    }
    Stats::from_results(&results, started.elapsed())
}

//! A loopback HTTP server for one file (the agent binary the bootstrap data downloads),
//! counting the downloads.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use axum::body::Bytes;
use axum::routing::get;

/// Serves `GET /<name>`; stopped on drop.
#[derive(Debug)]
pub struct FileServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    /// Serves the content of `file` as `/<name>` on `127.0.0.1:port`.
    pub async fn start(file: &Path, name: &str, port: u16) -> Result<FileServer> {
        let body = Bytes::from(std::fs::read(file)?);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            &format!("/{name}"),
            get(move || {
                let body = body.clone();
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    body
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FileServer { port, hits, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many times the file was fetched.
    pub fn downloads(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

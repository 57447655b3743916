//! The HTTP endpoint: `/metrics` (Prometheus/OpenMetrics text), `/livez`
//! and `/readyz` (200 or 503, with one line per check), on axum.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::health::render_checks;
use super::Metrics;

/// The content type of [`Metrics::render`]'s output.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes, over one [`Metrics`].
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        // Older name, kept for existing probes: the readiness answer.
        .route("/healthz", get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try /metrics, /livez or /readyz\n") })
        .with_state(metrics)
}

async fn metrics_page(State(m): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], m.render())
}

fn status(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn livez(State(m): State<Metrics>) -> impl IntoResponse {
    let c = m.health.live();
    (status(c.ok), render_checks(&[c]))
}

async fn readyz(State(m): State<Metrics>) -> impl IntoResponse {
    let checks = m.health.checks();
    let ok = checks.iter().all(|c| c.ok);
    m.ready.set(i64::from(ok));
    (status(ok), render_checks(&checks))
}

/// Binds `addr` and serves until the task is dropped.
pub async fn serve(metrics: Metrics, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /livez and /readyz");
    axum::serve(listener, router(metrics)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        for _ in 0..100 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await.unwrap();
                let mut body = String::new();
                s.read_to_string(&mut body).await.unwrap();
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("nothing listening on {addr}");
    }

    #[tokio::test]
    async fn routes_answer_and_probes_can_fail() {
        let m = Metrics::new();
        m.messages.inc();
        m.health.require_group();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let h = tokio::spawn(serve(m.clone(), addr));
        let page = get(addr, "/metrics").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("verbatim_messages_total 1"), "{page}");
        assert!(page.contains("openmetrics-text"), "{page}");

        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(ready.contains("FAIL models: loading"), "{ready}");
        assert!(ready.contains("FAIL group: not joined"), "{ready}");
        assert!(get(addr, "/metrics").await.contains("verbatim_ready 0"));

        m.health.set_models_loaded();
        m.health.set_joined(true);
        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/metrics").await.contains("verbatim_ready 1"));

        m.health.beat();
        assert!(get(addr, "/livez").await.starts_with("HTTP/1.1 200"));
        m.health
            .set_limits(std::time::Duration::ZERO, std::time::Duration::ZERO);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let live = get(addr, "/livez").await;
        assert!(live.starts_with("HTTP/1.1 503"), "{live}");

        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        h.abort();
    }
}

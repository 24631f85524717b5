//! espritctl's socket: one JSON request per line, one JSON answer per line.
//!
//! Requests: `{"cmd":"list-sas"}`, `{"cmd":"list-conns"}`, `{"cmd":"stats"}`,
//! `{"cmd":"terminate","ike":"<initiator SPI in hex>"}` or `{"cmd":"terminate","peer":"<id>"}`,
//! `{"cmd":"reload"}`, `{"cmd":"metrics"}`, and `{"cmd":"trace","peer":ADDR?,"seconds":N?,
//! "dir":PATH?,"max_packets":N?}` (answered when the trace ends). Answers are `{"ok":...}` or
//! `{"error":"..."}`.

use std::path::Path;
use std::sync::mpsc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::oneshot;

/// A request on its way to the core, with where its answer goes.
#[derive(Debug)]
pub struct Request {
    pub body: Value,
    pub reply: oneshot::Sender<Value>,
}

/// Binds the socket (replacing a stale one), mode 0600.
pub fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A live daemon answers; a stale socket file refuses the connection.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use: is another esprit-ike running?", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves the socket until the runtime stops.
pub async fn serve(listener: std::os::unix::net::UnixListener, core: mpsc::Sender<Request>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "control socket unusable");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let core = core.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match serde_json::from_str::<Value>(&line) {
                    Err(e) => json!({ "error": format!("not JSON: {e}") }),
                    Ok(body) => {
                        let (tx, rx) = oneshot::channel();
                        if core.send(Request { body, reply: tx }).is_err() {
                            json!({ "error": "esprit-ike is shutting down" })
                        } else {
                            rx.await.unwrap_or_else(|_| json!({ "error": "no answer" }))
                        }
                    }
                };
                let mut out = answer.to_string();
                out.push('\n');
                if w.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Serves Prometheus scrapes (`GET /metrics`) on `listener`.
pub async fn serve_metrics(listener: std::net::TcpListener, core: mpsc::Sender<Request>) {
    use tokio::io::AsyncReadExt;
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "metrics listener unusable");
            return;
        }
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let core = core.clone();
        tokio::spawn(async move {
            // The request head, at most 8 KiB, within 5 s.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            if !matches!(read, Ok(true)) {
                return;
            }
            let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            let mut parts = first.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let response = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
                let (tx, rx) = oneshot::channel();
                let body = if core.send(Request { body: json!({"cmd": "metrics"}), reply: tx }).is_ok() {
                    rx.await.ok().and_then(|v| v.get("ok").and_then(|s| s.as_str()).map(str::to_string))
                } else {
                    None
                };
                match body {
                    Some(b) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                        b.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                }
            } else {
                let b = "esprit-ike serves /metrics only\n";
                format!("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len())
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

//! The load generator: keep-alive HTTP/1.1 connections on hyper, each
//! driven by its own task in a closed loop (the next request leaves when
//! the last answer is in), latencies in an HDR histogram.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;

/// One keep-alive connection to the server.
pub struct Client {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream =
            tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Self { addr, sender })
    }

    /// Sends one request and reads the whole answer: `(status, body)`.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), String> {
        if self.sender.ready().await.is_err() {
            *self = Self::connect(self.addr).await?;
        }
        let mut request = Request::builder().method(method).uri(path).header("host", "bench");
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default())).map_err(|e| e.to_string())?;
        let response = self.sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body))
    }

    /// Like [`Client::send`], failing unless the status is `expected`.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        expected: u16,
    ) -> Result<Bytes, String> {
        let (status, body) = self.send(method.clone(), path, body).await?;
        if status == expected {
            Ok(body)
        } else {
            Err(format!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        }
    }
}

/// What a run measured.
pub struct Measured {
    /// Latency of each operation, in microseconds.
    pub latency: Histogram<u64>,
    pub errors: u64,
    pub elapsed: Duration,
    /// The first error, to show.
    pub first_error: Option<String>,
}

impl Measured {
    /// Operations answered as expected.
    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    pub fn per_second(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `concurrency` loops of `operation` (given the loop's index and
/// its count so far) for `duration`, and merges what they measured.
pub async fn drive<Op, Fut>(
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
    operation: Op,
) -> Measured
where
    Op: Fn(Client, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (Client, Result<(), String>)> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let loops: Vec<_> = (0..concurrency)
        .map(|index| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let (mut errors, mut first_error) = (0, None);
                let mut client = match Client::connect(addr).await {
                    Ok(client) => client,
                    Err(e) => return (latency, 1, Some(e)),
                };
                let mut count = 0;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let (back, result) = operation(client, index, count).await;
                    client = back;
                    match result {
                        Ok(()) => {
                            let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                            latency.saturating_record(micros.max(1));
                            count += 1;
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (latency, errors, first_error)
            })
        })
        .collect();
    let mut merged =
        Measured { latency: new_histogram(), errors: 0, elapsed: Duration::ZERO, first_error: None };
    for each in loops {
        if let Ok((latency, errors, first_error)) = each.await {
            // Same bounds on both sides: adding cannot fail.
            let _ = merged.latency.add(latency);
            merged.errors += errors;
            if merged.first_error.is_none() {
                merged.first_error = first_error;
            }
        }
    }
    merged.elapsed = started.elapsed();
    merged
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("1 µs to 60 s at 3 digits are valid bounds")
}

//! One HTTP/1.1 exchange over a plain socket, for the tests that run the
//! binary (`cli.rs`, `traces.rs`).

use std::{
    io::{Read, Write},
    time::Duration,
};

/// Sends `method path` with extra header lines (each ending in `\r\n`) and
/// `body`; `(status, body)`, or `(0, "")` when nothing listens on `port`.
pub fn exchange(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

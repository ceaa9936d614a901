//! A tiny blocking HTTP/1.1 client over `TcpStream`: one request per connection, enough to wait for
//! servers, seed the benchmark's data and post the OCR benchmark's images without an HTTP client
//! crate.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// Connect, read and write timeout: these are local servers, so anything slower is stuck.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The values of every header called `name` (case-insensitive), in order.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Fails with the body when the status is not `expected`; `what` names the request.
    pub fn expect_status(self, expected: u16, what: &str) -> Result<Self> {
        ensure!(
            self.status == expected,
            "{what}: expected HTTP {expected}, got {}: {}",
            self.status,
            self.body
        );
        Ok(self)
    }

    /// The string field `field` of the JSON body.
    pub fn json_str(&self, field: &str) -> Result<String> {
        let body: Value = serde_json::from_str(&self.body)
            .with_context(|| format!("parsing the JSON response {}", self.body))?;
        body.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no string field {field:?} in {}", self.body))
    }
}

/// Sends one request with `Connection: close`; a JSON `body` gets its Content-Type.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Response> {
    request_within(address, method, path, headers, body, TIMEOUT)
}

/// [`request`] with its own read timeout, for answers that take long to compute (a model
/// generating text).
pub fn request_within(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
    read_timeout: Duration,
) -> Result<Response> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let json = [("Content-Type", "application/json")];
    let headers = if body.is_empty() {
        headers.to_vec()
    } else {
        [&json[..], headers].concat()
    };
    exchange(
        address,
        method,
        path,
        &headers,
        body.as_bytes(),
        read_timeout,
    )
}

/// Sends one request with `Connection: close` and a raw `body`, whose Content-Type, if any, is
/// among `headers`.
pub fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    exchange(address, method, path, headers, body, TIMEOUT)
}

/// Posts a JSON `body` whose answer is a stream of server-sent events and returns each `data:`
/// line with the instant it was read, so the times show the server's pace token by token. Chunked
/// framing is left in place: its size lines never start with `data:`.
pub fn post_event_stream(
    address: SocketAddr,
    path: &str,
    body: &Value,
    read_timeout: Duration,
) -> Result<Vec<(Instant, String)>> {
    let body = body.to_string();
    let what = || format!("POST http://{address}{path}");
    let mut stream = connect(address, read_timeout, &what)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .with_context(|| format!("sending {}", what()))?;
    let mut lines = BufReader::new(stream).lines();
    let status_line = lines
        .next()
        .transpose()
        .with_context(|| format!("reading the response to {}", what()))?
        .unwrap_or_default();
    ensure!(
        status_line.split(' ').nth(1) == Some("200"),
        "{}: expected HTTP 200, got {status_line:?}",
        what()
    );
    let mut events = Vec::new();
    for line in lines {
        let line = line.with_context(|| format!("reading the events of {}", what()))?;
        if let Some(data) = line.strip_prefix("data: ") {
            events.push((Instant::now(), data.to_owned()));
        }
    }
    Ok(events)
}

/// A connection with `read_timeout` for reading and [`TIMEOUT`] for connecting and writing.
fn connect(
    address: SocketAddr,
    read_timeout: Duration,
    what: &dyn Fn() -> String,
) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&address, TIMEOUT)
        .with_context(|| format!("connecting for {}", what()))?;
    stream
        .set_read_timeout(Some(read_timeout))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .context("setting socket timeouts")?;
    Ok(stream)
}

fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> Result<Response> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");

    let what = || format!("{method} http://{address}{path}");
    let mut stream = connect(address, read_timeout, &what)?;
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .with_context(|| format!("sending {}", what()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the response to {}", what()))?;
    parse_response(&raw).with_context(what)
}

/// Parses a complete response; the body is everything after the head, since the server closes
/// the connection after it.
fn parse_response(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the response has no end of headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let response = Response {
        status,
        headers,
        body: body.to_owned(),
    };
    if response
        .headers("transfer-encoding")
        .any(|value| value.eq_ignore_ascii_case("chunked"))
    {
        bail!("chunked responses are not supported");
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn parses_status_headers_and_body() -> anyhow::Result<()> {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
            set-cookie: a=1; Path=/\r\nSet-Cookie: flashcards_session=fcs_x; HttpOnly\r\n\
            content-length: 11\r\n\r\n{\"id\":\"d1\"}";
        let response = parse_response(raw)?;
        assert_eq!(response.status, 201);
        assert_eq!(
            response.headers("Set-Cookie").collect::<Vec<_>>(),
            ["a=1; Path=/", "flashcards_session=fcs_x; HttpOnly"]
        );
        assert_eq!(response.json_str("id")?, "d1");
        Ok(())
    }

    #[test]
    fn rejects_chunked_bodies_and_garbage() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert!(parse_response(chunked).is_err());
        assert!(parse_response(b"nonsense").is_err());
    }
}

//! A small HTTP/1.1 client over a plain TCP connection, for the dashboard: requests with a
//! cookie and headers, and a Server-Sent Events reader.

use super::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn request_text(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text += &format!("{name}: {value}\r\n");
    }
    text += "\r\n";
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends one request to 127.0.0.1:`port` and reads the whole response.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to the dashboard on {port}: {e}"));
    stream
        .write_all(&request_text(port, method, path, headers, body))
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the dashboard answers within 30 s")
        .unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until the dashboard answers on `port`.
pub async fn wait_http(port: u16) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the dashboard did not start listening on {port}");
}

/// An open Server-Sent Events stream (chunked transfer encoding, as the dashboard sends it).
pub struct EventStream {
    reader: BufReader<tokio::net::TcpStream>,
    /// Decoded text not yet split into events.
    text: String,
}

impl EventStream {
    /// Opens `path` with `headers`; panics unless the answer is a 200 event stream.
    pub async fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream
            .write_all(&request_text(port, "GET", path, headers, b""))
            .await
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let lower = head.to_lowercase();
        assert!(lower.contains("text/event-stream"), "{head}");
        assert!(lower.contains("transfer-encoding: chunked"), "{head}");
        Self {
            reader,
            text: String::new(),
        }
    }

    /// Reads the next chunk into `text`; false at the end of the stream.
    async fn chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).await.unwrap_or(0) == 0 {
            return false;
        }
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return false;
        };
        if n == 0 {
            return false;
        }
        let mut bytes = vec![0u8; n + 2];
        if self.reader.read_exact(&mut bytes).await.is_err() {
            return false;
        }
        self.text.push_str(&String::from_utf8_lossy(&bytes[..n]));
        true
    }

    /// The data of the next event named `name` for which `want` holds.
    pub async fn wait_for(
        &mut self,
        what: &str,
        name: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let next = async {
            loop {
                while let Some(end) = self.text.find("\n\n") {
                    let block: String = self.text.drain(..end + 2).collect();
                    let mut event = "message";
                    let mut data = Vec::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push(v.strip_prefix(' ').unwrap_or(v));
                        }
                    }
                    let data = data.join("\n");
                    if event == name && want(&data) {
                        return data;
                    }
                }
                assert!(
                    self.chunk().await,
                    "the event stream ended while waiting for {what}"
                );
            }
        };
        tokio::time::timeout(timeout, next)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what} on the event stream"))
    }
}

/// `[web]` on 127.0.0.1:`port` with `extra` keys, an engineer `ana` (password `engineer-pass`)
/// and a viewer `vic` (`viewer-pass`).
pub fn dashboard_section(port: u16, extra: &str) -> String {
    let eng = qis_edge::web::hash_password("engineer-pass").unwrap();
    let view = qis_edge::web::hash_password("viewer-pass").unwrap();
    format!(
        "[web]\nenabled = true\nbind = \"127.0.0.1:{port}\"\n{extra}\
         [[web.users]]\nname = \"ana\"\nrole = \"engineer\"\npassword_hash = \"{eng}\"\n\
         [[web.users]]\nname = \"vic\"\nrole = \"viewer\"\npassword_hash = \"{view}\"\n"
    )
}

/// The JSON of the dashboard chart `id` in a page or fragment, if it has one.
pub fn chart_data(html: &str, id: &str) -> Option<serde_json::Value> {
    let marker = format!("id=\"{id}-data\"");
    let start = html.find(&marker)?;
    let start = start + html[start..].find('>')? + 1;
    let end = start + html[start..].find("</script>")?;
    Some(serde_json::from_str(&html[start..end]).expect("a chart's data is JSON"))
}
